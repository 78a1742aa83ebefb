"""The kernel-writing proposer (an `LLMProposer` with kernel-aware code extraction) and how a task
appears as the input of proposer and summarizer prompts."""

from __future__ import annotations

from dataclasses import dataclass

from ...roles.parsing import ParsedUpdate
from ...roles.proposer import LLMProposer
from ...types import Example, Params
from .data import KernelTask
from .evaluate import PARAM_NAME
from .sources import _normalized, code_blocks, defines_model_new, extract_kernel_source


@dataclass
class KernelProposer(LLMProposer):
    """`LLMProposer` for the one kernel parameter, with code extraction tuned for kernel replies.

    The base parser's value (tags, JSON or last fence) is refined by `extract_kernel_source`: the last
    code block that defines ModelNew wins, so prose, usage snippets or a separate C++ block after the
    module do not replace it. Everything else (prompt, LLM call, seeds) is LLMProposer's.
    """

    param_name: str = PARAM_NAME

    def parse(self, reply: str, current: Params) -> ParsedUpdate:
        if self.param_name not in current:
            raise ValueError(f"params must contain {self.param_name!r}, got keys {sorted(current)}")
        base = super().parse(reply, current)
        if not base.changes and "echo" in base.rejected.get("reply", ""):
            return base  # the reply repeats our prompt as a whole: any code in it is ours
        source = extract_kernel_source(reply, base.changes.get(self.param_name))
        if source is None:
            return base
        if _normalized(source) == _normalized(current[self.param_name]):
            return ParsedUpdate({}, "none", {**base.rejected, self.param_name: "kernel: unchanged source"})
        if defines_model_new(source) and _normalized(source) in {_normalized(b) for b in code_blocks(self.objective)}:
            # A verbatim copy of the prompt's one-shot ModelNew solves a different problem (elementwise
            # addition): dropping it here saves a build. Copies without ModelNew go on to be screened.
            return ParsedUpdate({}, "none",
                                {**base.rejected, self.param_name: "kernel: copy of code from the task prompt"})
        return ParsedUpdate({**base.changes, self.param_name: source}, base.format if base.changes else "kernel",
                            base.rejected)


def task_input_text(example: Example) -> str:
    """How a task appears as the 'Input' of a proposer or summarizer prompt: a one-line pointer,
    since the full task statement is the proposer's objective already."""
    task = example.data
    if not isinstance(task, KernelTask):
        raise ValueError(f"example.data must be a KernelTask, got {type(task).__name__} (example {example.id!r})")
    return (f"KernelBench level-{task.level} task idx {task.idx} (problem {task.problem_id}: {task.name}); "
            "the full task statement is the goal above.")
