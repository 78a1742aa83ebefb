"""Pricing a τ-bench run before it happens: token assumptions per call, episodes per run, USD per role."""

from __future__ import annotations

from dataclasses import dataclass

from ...llm.config import Price
from ...search import exploration_batches
from .presets import TauPreset


@dataclass(frozen=True)
class CostModel:
    """Token assumptions for pricing a run before it happens (per call, Claude tokenizer).

    Defaults are our estimates, not measurements: the agent's system prompt (wiki ~1.3k tokens) plus the
    16 tool schemas (~2k) plus a history that grows to a few thousand tokens gives ~6.5k input tokens
    per agent call on average over a ~12-step episode; the customer sees a short prompt. The proposer
    reads two full feedbacks; the summarizer up to five candidates with two trajectories each.

    With prompt caching (the client marks the tools, the system prompt and the conversation's last
    message), each agent or customer call reads everything it sent before from the cache and writes
    only the turns added since (`*_new_tokens_per_call`); the first agent call of an episode also
    writes the wiki and instructions. The proposer's and summarizer's prompts are one-offs.
    """

    agent_calls_per_episode: float = 12.0
    agent_input_tokens: float = 6500.0
    agent_output_tokens: float = 80.0
    user_calls_per_episode: float = 6.0
    user_input_tokens: float = 1000.0
    user_output_tokens: float = 30.0
    proposer_input_tokens: float = 8000.0
    proposer_output_tokens: float = 1500.0
    summarizer_input_tokens: float = 10000.0
    summarizer_output_tokens: float = 1000.0
    agent_new_tokens_per_call: float = 550.0
    agent_system_tokens: float = 1400.0
    user_new_tokens_per_call: float = 150.0

    def episodes(self, preset: TauPreset, table_programs: int = 2) -> int:
        """Episodes of a run whose memory holds K candidates from iteration 1 on: per iteration K*b*m
        exploration + K*m*P validation batches of b*m; the first iteration explores only the seed, with
        m scaled to K*m (a round popping fewer than K costs more: its validation batches grow too);
        plus `table_programs` full passes over the table's tasks."""
        config = preset.config()

        def iteration_episodes(popped: int) -> int:
            m = exploration_batches(config.num_batches, config.num_candidates, popped)
            return (popped * config.batch_size * m
                    + popped * m * config.num_proposals * config.validation_batch(m))

        rest = max(0, preset.iterations - 1) * iteration_episodes(config.num_candidates)
        return iteration_episodes(1) + rest + table_programs * len(preset.test)

    def usd(self, preset: TauPreset, price: Price, table_programs: int = 2, *,
            caching: bool = False) -> dict[str, float]:
        """Estimated USD per role (task, user_sim, proposer, summarizer) and the total, at `price`,
        without or with prompt caching."""
        config = preset.config()
        episodes = self.episodes(preset, table_programs)
        proposals = preset.iterations * config.num_candidates * config.num_batches * config.num_proposals
        summaries = preset.iterations if config.use_summarizer else 0

        def conversation_call(tokens_in: float, tokens_out: float, new: float) -> float:
            if not caching:
                return price.cost(tokens_in, tokens_out)
            new = min(new, tokens_in)
            return price.cost(0, tokens_out, cache_write_tokens=new, cache_read_tokens=tokens_in - new)

        first_write = (price.cache_write - price.cache_read) * self.agent_system_tokens / 1e6
        cost = {
            "task": episodes * (self.agent_calls_per_episode * conversation_call(
                self.agent_input_tokens, self.agent_output_tokens, self.agent_new_tokens_per_call)
                + (first_write if caching else 0.0)),
            "user_sim": episodes * self.user_calls_per_episode * conversation_call(
                self.user_input_tokens, self.user_output_tokens, self.user_new_tokens_per_call),
            "proposer": proposals * price.cost(self.proposer_input_tokens, self.proposer_output_tokens),
            "summarizer": summaries * price.cost(self.summarizer_input_tokens, self.summarizer_output_tokens),
        }
        cost["total"] = sum(cost.values())
        return cost
