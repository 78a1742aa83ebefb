"""The quickstart's synthetic skills problem: it lives in `polca_nb.benchmarks.skills` (the benchmark
shape); this module keeps the short import path the quickstart and the tests use."""

from .benchmarks.skills import (
    FILLERS,
    SEED_TEXT,
    SKILLS,
    ScriptedProposer,
    SkillEvaluator,
    SkillsEmbedder,
    SkillsSummarizer,
    make_examples,
    skills_in,
    skills_problem,
    true_score,
)
from .protocols import Evaluator

__all__ = ["FILLERS", "SEED_TEXT", "SKILLS", "Evaluator", "ScriptedProposer", "SkillEvaluator", "SkillsEmbedder",
           "SkillsSummarizer", "make_examples", "skills_in", "skills_problem", "true_score"]
