"""The simulated optimizer: an object with the package's `LLM` interface whose behaviour is a stated
stochastic model, not an LLM. It reads whatever prompt it is given (POLCA's proposer or summarizer,
GEPA's reflection, OpenEvolve's rewrite prompt; see `prompts`) and replies in that prompt's format.

Per proposal request, with knobs from `OptimizerModel` (one draw each, in this order):
1. with `duplicate_rate` it only rewrites the wording (a near-duplicate: the paper's duplication
   challenge) and stops;
2. if the prompt holds a summary recommending a skill the program lacks, with `summary_use` it acts
   on that; otherwise it picks one shown feedback item and acts correctly on it with `delta0` (adds
   the named skill, resolves the named conflict, shortens a too-long program): the gamma-strict-
   improvement assumption's delta_0, per piece of feedback. Misleading feedback, acted on correctly,
   adds a skill nobody needed;
3. with `regression_rate` it also makes a harmful edit (drops a skill it had, or adds an unrelated one);
4. with `overfit` it drops a skill none of the shown examples needed (fitting the minibatch);
5. if nothing changed, the reply is a cosmetic rewrite too.
The summarizer counts the skills named in failed runs (plus the previous summary's recommendations)
and recommends the most named ones. MIPROv2's dataset summarizer, shown task inputs and no outcomes,
recommends the skills those inputs need most often (data is evidence too, of a weaker kind: it
cannot name a conflict or a shortfall); its proposer shows no feedback, so only that summary (used
with `summary_use`) and undirected edits can change a program. Every reply is deterministic per
(prompt, sample_id).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..llm.base import LLMReply
from .problem import (CONFLICTS, SEED_TEXT, SKILLS, add_skill, check_probabilities, drop_skill, needs_in_input,
                      skills_in)
from .prompts import (
    ProposalRequest,
    format_proposal,
    prompt_kind,
    dspy_reply,
    prompt_text,
    read_data_request,
    read_proposal_request,
    read_summary_request,
)

LABEL = "simulated optimizer, not an LLM"
FILLERS = ("Please.", "Thanks.", "Be careful.", "Take your time.", "Try harder.", "Think it through.")
_RECOMMEND = "Always include '{}'."
_AVOID = "Never combine '{}' with '{}'."


@dataclass(frozen=True)
class OptimizerModel:
    """The simulated optimizer's behaviour: each knob a probability (see the module docstring)."""

    delta0: float = 0.3
    regression_rate: float = 0.1
    duplicate_rate: float = 0.3
    overfit: float = 0.1
    summary_use: float = 0.5
    top_recommendations: int = 3

    def __post_init__(self) -> None:
        check_probabilities(self, ("delta0", "regression_rate", "duplicate_rate", "overfit", "summary_use"))
        if not isinstance(self.top_recommendations, int) or self.top_recommendations < 1:
            raise ValueError(f"top_recommendations must be a positive int, got {self.top_recommendations!r}")

    @property
    def label(self) -> str:
        return (f"delta0={self.delta0:g}, regress={self.regression_rate:g}, dup={self.duplicate_rate:g}, "
                f"overfit={self.overfit:g}")


def recommendations(context: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The skills a summary says to include and the pairs it says never to combine, in its order."""
    include = re.findall(r"Always include '(\w+)'", context)
    avoid = [(a, b) for a, b in re.findall(r"Never combine '(\w+)' with '(\w+)'", context)]
    return include, avoid


def cosmetic(text: str, rng: np.random.Generator) -> str:
    """The same instructions in other words: a filler sentence added or swapped (mu unchanged)."""
    filler = FILLERS[int(rng.integers(len(FILLERS)))]
    for old in FILLERS:
        if old in text:
            return text.replace(old, filler, 1) if old != filler else text.replace(old, "", 1).strip() or SEED_TEXT
    return f"{text.rstrip()} {filler}"


def act_on(item: str, text: str, rng: np.random.Generator) -> str:
    """The correct edit for one feedback item (which may itself be misleading)."""
    have = skills_in(text)
    if m := re.search(r"skill '(\w+)'", item):
        return add_skill(text, m.group(1)) if m.group(1) not in have else text
    if m := re.search(r"instructions '(\w+)' and '(\w+)'", item):
        pair = [s for s in m.groups() if s in have]
        return drop_skill(text, pair[int(rng.integers(len(pair)))]) if pair else text
    if "too long" in item and have:
        ordered = sorted(have)
        return drop_skill(text, ordered[int(rng.integers(len(ordered)))])
    return text


@dataclass
class SimulatedOptimizerLLM:
    """Implements `LLM` (complete) with `OptimizerModel`'s behaviour; labelled everywhere as simulated.

    `calls` counts requests per prompt kind. Thread-safe: every reply depends only on its request."""

    model: OptimizerModel = field(default_factory=OptimizerModel)
    skills: tuple[str, ...] = SKILLS
    conflicts: tuple[tuple[str, str], ...] = CONFLICTS
    label: str = LABEL
    calls: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _rng(self, text: str, sample_id: int) -> np.random.Generator:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        return np.random.default_rng([int.from_bytes(digest, "little"), int(sample_id) & 0xFFFFFFFFFFFF])

    def complete(self, *, system: str, messages: Sequence[dict[str, Any]], role: str, max_tokens: int = 1024,
                 temperature: float = 0.0, sample_id: int = 0, tools: Any = None, stop: Any = None) -> LLMReply:
        text = prompt_text(system, messages)
        kind = prompt_kind(text)
        rng = self._rng(text, sample_id)
        with self._lock:
            self.calls[kind] += 1
        if kind == "polca_summarizer":
            reply = self.summarize(text)
        elif kind == "dspy_data":
            reply = self.describe_data(text)
        else:
            reply = self.propose(read_proposal_request(text), rng)
        return LLMReply(text=reply, content=({"type": "text", "text": reply},), model=self.label,
                        input_tokens=len(text) // 4, output_tokens=len(reply) // 4)

    def propose(self, request: ProposalRequest, rng: np.random.Generator) -> str:
        """A reply to a proposal prompt (the module docstring's steps 1-5)."""
        m = self.model
        text = request.program or SEED_TEXT
        u_dup, u_act, u_regress, u_overfit = rng.random(4)
        if u_dup < m.duplicate_rate:
            return format_proposal(request.kind, cosmetic(text, rng), "Rephrased for clarity.")
        new = text
        include, avoid = recommendations(request.context)
        todo = [s for s in include if s not in skills_in(new)]
        clash = [(a, b) for a, b in avoid if a in skills_in(new) and b in skills_in(new)]
        if (todo or clash) and rng.random() < m.summary_use:
            new = drop_skill(new, clash[0][1]) if clash else add_skill(new, todo[0])
        elif request.feedback and u_act < m.delta0:
            new = act_on(request.feedback[int(rng.integers(len(request.feedback)))], new, rng)
        if u_regress < m.regression_rate:
            have = sorted(skills_in(new))
            if have and rng.random() < 0.5:
                new = drop_skill(new, have[int(rng.integers(len(have)))])
            else:
                new = add_skill(new, self.skills[int(rng.integers(len(self.skills)))])
        if u_overfit < m.overfit and request.shown_needs:
            shown = frozenset().union(*request.shown_needs)
            unused = sorted(skills_in(new) - shown)
            if unused:
                new = drop_skill(new, unused[int(rng.integers(len(unused)))])
        if new == text:
            new = cosmetic(text, rng)
        return format_proposal(request.kind, new, "Acted on the feedback.")

    def describe_data(self, text: str) -> str:
        """A reply to MIPROv2's dataset summarizer: the skills the shown inputs need most often (plus the
        earlier observations' recommendations, by rank), in ChatAdapter format."""
        field_name, examples, earlier = read_data_request(text)
        counts: Counter = Counter()
        old_include, _ = recommendations(earlier)
        for rank, skill in enumerate(old_include):
            counts[skill] += len(old_include) - rank
        for needs in needs_in_input(examples.replace('\\"', '"')):
            counts.update(needs)
        top = sorted(counts, key=lambda s: (-counts[s], s))[: self.model.top_recommendations]
        body = " ".join(_RECOMMEND.format(s) for s in top) or "The tasks vary; no skill stands out."
        return dspy_reply({field_name: f"The tasks name the skills they need. {body}"})

    def summarize(self, text: str) -> str:
        """A reply to POLCA's summarizer prompt: the most-named missing skills and conflicts."""
        request = read_summary_request(text)
        counts: Counter = Counter()
        clashes: Counter = Counter()
        old_include, old_avoid = recommendations(request.previous)
        for rank, skill in enumerate(old_include):
            counts[skill] += len(old_include) - rank  # the earlier evidence, by its rank
        for pair in old_avoid:
            clashes[pair] += 1
        for item in request.feedback:
            if m := re.search(r"skill '(\w+)'", item):
                counts[m.group(1)] += 2
            elif m := re.search(r"instructions '(\w+)' and '(\w+)'", item):
                clashes[(m.group(1), m.group(2))] += 2
        if not counts and not clashes:
            return ("<reasoning>No failed run names a cause.</reasoning>\n<summary>\n- Keep the instructions "
                    "of the best-scoring candidates.\n</summary>")
        top = sorted(counts, key=lambda s: (-counts[s], s))[: self.model.top_recommendations]
        lines = [_RECOMMEND.format(s) for s in top] + [_AVOID.format(a, b) for a, b in sorted(clashes)]
        return ("<reasoning>Counted the causes the failed runs name.</reasoning>\n<summary>\n"
                + "\n".join(f"- {line}" for line in lines) + "\n</summary>")
