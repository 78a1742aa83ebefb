"""LLM-backed roles of the search: the OptoPrime-style proposer and the incremental summarizer."""

from .parsing import ParsedUpdate, extract_tag, parse_param_updates
from .proposer import LLMProposer
from .summarizer import CONTEXT_PREFIX, LLMSummarizer, SummaryEvidence

__all__ = [
    "CONTEXT_PREFIX",
    "LLMProposer",
    "LLMSummarizer",
    "ParsedUpdate",
    "SummaryEvidence",
    "extract_tag",
    "parse_param_updates",
]
