"""LLM access: one interface (`LLM`), the real anthropic-SDK client, and test doubles."""

from .base import LLM, LLMReply, ScriptedLLM

__all__ = ["LLM", "LLMReply", "ScriptedLLM"]
