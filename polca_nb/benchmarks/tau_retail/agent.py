"""The retail agent: one LLM call per env step, acting through Anthropic tool use or a JSON text protocol.

System prompt = the policy wiki + "## Additional instructions" (the parameter POLCA optimizes; the
section is left out when empty, so the base agent sees the wiki alone, as upstream).

Two modes, same episode semantics (spec §8):
- "tools": the 16 schemas go in `tools=`; the first `tool_use` block of a reply is the action; a
  reply without one is a `respond` with its text. The history keeps the reply's blocks unchanged
  (thinking, text, every call), the first call's tool_result holds the observation and every further
  call gets a tool_result saying it was not executed (the Messages API wants each call answered).
- "text": for backends whose chat template has no tool support (the embedded llama-server). The
  system prompt also lists the tools and asks for either a JSON action `{"name", "arguments"}` or
  plain text for the customer. `parse_text_action` reads the first JSON object naming an action,
  anywhere in the reply; anything else is a `respond` with the raw text. Tool results come back as
  user messages prefixed "API output: " (upstream's act strategy).
`choose_mode("auto")` picks text mode for the embedded local server, tool mode otherwise.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from ...llm.base import LLM, LLMReply
from .data import Action
from .reward import RESPOND
from .tools import TOOLS, tool_schemas

AgentMode = Literal["tools", "text"]
ModeChoice = Literal["auto", "tools", "text"]
ActionSource = Literal["tool_use", "json", "text"]

INSTRUCTIONS_HEADING = "## Additional instructions"
OBSERVATION_PREFIX = "API output: "
EMPTY_MESSAGE = "(no message)"
"""Stands in for an empty text in the LLM history: the Messages API rejects empty text blocks."""
NOT_EXECUTED = ("Not executed: this agent runs one tool call per step (the first of the reply). "
                "Call it again if it is still needed.")
"""The tool_result of every further tool_use block of a reply: the API wants each one answered."""

TEXT_PROTOCOL = """## How to act
You can call these tools:
{catalog}

Each reply does exactly one of two things:
- call one tool: reply with only a JSON object, for example {{"name": "find_user_id_by_email", "arguments": {{"email": "jane@example.com"}}}}
- talk to the customer: reply with plain text and no JSON.
Tool results come back in messages that start with "{prefix}"."""


def is_local_backend(llm: LLM) -> bool:
    """True for an `LLMClient` driving the embedded llama-server (its chat template has no tools)."""
    return getattr(llm, "server", None) is not None


def choose_mode(llm: LLM, mode: ModeChoice = "auto") -> AgentMode:
    """The agent mode for `llm`: `mode` itself unless "auto", which means text for the local server."""
    if mode == "auto":
        return "text" if is_local_backend(llm) else "tools"
    if mode not in ("tools", "text"):
        raise ValueError(f"mode must be 'auto', 'tools' or 'text', got {mode!r}")
    return mode


def tool_catalog(detail: bool = True) -> str:
    """The tools as compact text lines `- name(arg: type, ...): description` for the text protocol;
    with `detail`, each argument's description follows on its own line."""
    lines = []
    for spec in TOOLS.values():
        args = ", ".join(f"{name}: {_type_name(schema)}" for name, schema in spec.properties.items())
        lines.append(f"- {spec.name}({args}): {spec.description}")
        if detail:
            lines += [f"    {name}: {schema['description']}" for name, schema in spec.properties.items()
                      if schema.get("description")]
    return "\n".join(lines)


def _type_name(schema: Mapping[str, Any]) -> str:
    if schema.get("type") == "array":
        return f"list of {schema.get('items', {}).get('type', 'value')}"
    return str(schema.get("type", "value"))


@dataclass(frozen=True)
class AgentStep:
    """One agent decision: the env action, the reply it came from and how the action was read."""

    action: Action
    reply_text: str
    source: ActionSource
    tool_use_id: str | None = None
    reply: LLMReply | None = field(default=None, compare=False, repr=False)


_JSON_START = re.compile(r"[{]")
_ARGUMENT_KEYS = ("arguments", "kwargs", "input", "parameters", "args")


def _as_action(obj: Any) -> Action | None:
    """An Action from a decoded object shaped like {"name": str, "arguments": {...}}, else None."""
    if not isinstance(obj, Mapping):
        return None
    name = obj.get("name", obj.get("action", obj.get("tool")))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
        return None
    arguments: Any = {}
    for key in _ARGUMENT_KEYS:
        if key in obj:
            arguments = obj[key]
            break
    if isinstance(arguments, str):  # OpenAI style: the arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        return None
    return Action(name.strip(), dict(arguments))


def _objects_in(text: str) -> list[Any]:
    """Every JSON (or Python-literal) object that starts at some `{` of `text`, in order."""
    decoder = json.JSONDecoder()
    found = []
    for match in _JSON_START.finditer(text):
        start = match.start()
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            obj = _literal_object(text, start)
            if obj is None:
                continue
        found.append(obj)
    return found


def _literal_object(text: str, start: int) -> Any | None:
    """A Python dict literal (single quotes, True/None) from `start` to its matching brace."""
    depth = 0
    for end in range(start, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                try:
                    return ast.literal_eval(text[start:end + 1])
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    return None
    return None


def parse_text_action(text: str) -> tuple[Action, ActionSource]:
    """Read a text-protocol reply: the first object naming an action (a JSON object, also inside
    code fences or after "Action:"; Python dict literals too) becomes that action, with source "json";
    otherwise the whole reply is a `respond` with the raw text (source "text").

    A named `respond` takes its content from arguments["content"] (or "message"/"text").
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    for obj in _objects_in(text):
        action = _as_action(obj)
        if action is None:
            continue
        if action.name == RESPOND:
            content = next((action.kwargs[k] for k in ("content", "message", "text") if k in action.kwargs), None)
            if not isinstance(content, str):
                continue
            return Action(RESPOND, {"content": content}), "json"
        return action, "json"
    return Action(RESPOND, {"content": text.strip()}), "text"


@dataclass
class TauAgent:
    """The tool-calling retail agent over the `LLM` protocol (role "task" in the ledger).

    `mode` "auto" resolves with `choose_mode` when the agent is built. `observation_chars` cuts
    tool results in the *agent's* history to that many characters (None = full, as upstream; the
    local model needs it to stay within its context). `catalog_detail` adds argument descriptions
    to the text-mode tool list.
    """

    llm: LLM
    wiki: str
    mode: ModeChoice = "auto"
    max_tokens: int = 1024
    temperature: float = 0.0
    observation_chars: int | None = None
    catalog_detail: bool = True
    role: str = "task"

    def __post_init__(self) -> None:
        self.mode = choose_mode(self.llm, self.mode)
        if not isinstance(self.wiki, str) or not self.wiki.strip():
            raise ValueError("wiki must be the non-empty policy text")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive int, got {self.max_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if self.observation_chars is not None and (not isinstance(self.observation_chars, int)
                                                   or self.observation_chars < 1):
            raise ValueError(f"observation_chars must be None or a positive int, got {self.observation_chars!r}")
        self._schemas = tool_schemas("anthropic")

    def system_prompt(self, instructions: str) -> str:
        """Wiki, then the additional instructions (if any), then the text protocol (text mode only)."""
        if not isinstance(instructions, str):
            raise ValueError(f"instructions must be a string, got {type(instructions).__name__}")
        parts = [self.wiki.rstrip()]
        if instructions.strip():
            parts.append(f"{INSTRUCTIONS_HEADING}\n{instructions.strip()}")
        if self.mode == "text":
            parts.append(TEXT_PROTOCOL.format(catalog=tool_catalog(self.catalog_detail), prefix=OBSERVATION_PREFIX))
        return "\n\n".join(parts)

    def act(self, system: str, messages: Sequence[dict[str, Any]], seed: int) -> AgentStep:
        """One LLM call -> one action. LLM errors propagate (the episode runner scores them 0)."""
        reply = self.llm.complete(system=system, messages=messages, role=self.role, max_tokens=self.max_tokens,
                                  temperature=float(self.temperature), sample_id=seed,
                                  tools=self._schemas if self.mode == "tools" else None)
        uses = [block for block in reply.tool_uses if isinstance(block.get("name"), str)]
        if uses:
            call = uses[0]
            arguments: Mapping[str, Any] = call["input"] if isinstance(call.get("input"), Mapping) else {}
            return AgentStep(Action(call["name"], dict(arguments)), reply.text, "tool_use",
                             str(call.get("id") or "toolu_0"), reply)
        if self.mode == "text":
            action, source = parse_text_action(reply.text)
            return AgentStep(action, reply.text, source, None, reply)
        return AgentStep(Action(RESPOND, {"content": reply.text}), reply.text, "text", None, reply)

    def record(self, messages: list[dict[str, Any]], step: AgentStep, observation: str) -> None:
        """Append the assistant turn for `step` and the reply to it (tool result or customer line)."""
        if step.action.name == RESPOND:
            messages.append({"role": "assistant", "content": _nonempty(step.action.kwargs["content"])})
            messages.append({"role": "user", "content": _nonempty(observation)})
            return
        shown = observation
        if self.observation_chars is not None and len(shown) > self.observation_chars:
            shown = shown[: self.observation_chars] + f" ...[{len(observation) - self.observation_chars} chars cut]"
        if step.source == "tool_use":
            blocks = _assistant_blocks(step)
            results = [{"type": "tool_result", "tool_use_id": block["id"], "content": _nonempty(shown)}
                       if block["id"] == step.tool_use_id else
                       {"type": "tool_result", "tool_use_id": block["id"], "content": NOT_EXECUTED, "is_error": True}
                       for block in blocks if block.get("type") == "tool_use"]
            messages.append({"role": "assistant", "content": blocks})
            messages.append({"role": "user", "content": results})
            return
        # Text protocol: the canonical JSON (not the raw reply) shows the model the expected format.
        action_json = json.dumps({"name": step.action.name, "arguments": dict(step.action.kwargs)}, ensure_ascii=False)
        messages.append({"role": "assistant", "content": action_json})
        messages.append({"role": "user", "content": OBSERVATION_PREFIX + shown})


def _nonempty(text: str) -> str:
    return text if text.strip() else EMPTY_MESSAGE


def _assistant_blocks(step: AgentStep) -> list[dict[str, Any]]:
    """The assistant turn of a tool_use step: the reply's content blocks as received (thinking blocks
    with their signatures, text, every tool_use), which the Messages API needs back unchanged; only
    blank text blocks, which it rejects, are left out. Without the reply (or with tool calls that carry
    no id), the one executed call is rebuilt."""
    blocks = [dict(b) for b in step.reply.content] if step.reply is not None else []
    uses = [b for b in blocks if b.get("type") == "tool_use"]
    if not uses or any(not isinstance(b.get("id"), str) or not b["id"] for b in uses) \
            or step.tool_use_id not in {b["id"] for b in uses}:
        return [{"type": "tool_use", "id": step.tool_use_id, "name": step.action.name,
                 "input": dict(step.action.kwargs)}]
    return [b for b in blocks if not (b.get("type") == "text" and not str(b.get("text", "")).strip())]
