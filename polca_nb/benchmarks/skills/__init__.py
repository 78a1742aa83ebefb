"""The synthetic skills problem (simulated judge and optimizer roles), in the benchmark shape."""

from .data import SKILLS, download, load_examples, make_examples
from .evaluator import PARAM, SEED_PARAMS, SEED_TEXT, SkillEvaluator, skills_in, true_score
from .experiment import run
from .presets import PRESETS, SkillsPreset, setup, skills_problem
from .roles import FILLERS, ScriptedProposer, SkillsEmbedder, SkillsSummarizer

__all__ = ["FILLERS", "PARAM", "PRESETS", "SEED_PARAMS", "SEED_TEXT", "SKILLS", "ScriptedProposer", "SkillEvaluator",
           "SkillsEmbedder", "SkillsPreset", "SkillsSummarizer", "download", "load_examples", "make_examples", "run",
           "setup", "skills_in", "skills_problem", "true_score"]
