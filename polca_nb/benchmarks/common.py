"""The types every benchmark's `presets.setup` and `experiment.run` return (see README.md here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, TypeVar

from ..problem import PolcaConfig, Problem
from ..protocols import Proposer, Summarizer
from ..state import RunResult

P = TypeVar("P")


def lookup_preset(presets: Mapping[str, P], preset: str | P, benchmark: str) -> P:
    """`preset` itself, or `presets[preset]` for a name; ValueError naming the benchmark's presets otherwise."""
    if not isinstance(preset, str):
        return preset
    if preset not in presets:
        raise ValueError(f"unknown {benchmark} preset {preset!r}; the presets are {sorted(presets)}")
    return presets[preset]


@dataclass(frozen=True)
class BenchmarkSetup:
    """What one POLCA run of a benchmark needs: `polca(setup.problem, setup.proposer, setup.config,
    summarizer=setup.summarizer, ...)`."""

    problem: Problem
    config: PolcaConfig
    proposer: Proposer
    summarizer: Summarizer | None = None


@dataclass(frozen=True)
class ExperimentResult:
    """One RunResult per seed, plus the benchmark's own numbers per seed (test curves, fast_p, ...)."""

    preset: Any
    seeds: Sequence[int]
    runs: Sequence[RunResult]
    per_seed: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
