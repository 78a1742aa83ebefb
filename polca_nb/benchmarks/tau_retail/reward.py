"""The τ-bench retail reward: final-DB hash vs gold-replay hash, plus the expected-outputs check.

reward = 1.0 iff (a) the DB after the agent hashes like the DB after replaying the task's gold
actions on a pristine copy (failing gold calls included, terminate tools skipped), and (b) every
expected output, lowercased, is a substring of some `respond` content lowercased with commas removed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .data import Action, Db, RetailData, Task, fresh_db
from .hashing import canonical_text, db_hash
from .tools import TERMINATE_TOOLS, TOOLS, execute_tool

RESPOND = "respond"


@dataclass(frozen=True)
class RewardInfo:
    """Why an episode scored what it did. `r_outputs` is None when the task expects no outputs."""

    reward: float
    r_actions: bool
    data_hash: str
    gt_data_hash: str
    r_outputs: bool | None = None
    outputs: Mapping[str, bool] = field(default_factory=dict)

    @property
    def missing_outputs(self) -> tuple[str, ...]:
        return tuple(output for output, found in self.outputs.items() if not found)

    def upstream_info(self) -> dict[str, Any]:
        """The info dict upstream reports: with outputs it *replaces* the r_actions detail."""
        if self.r_outputs is not None:
            return {"r_outputs": float(self.r_outputs), "outputs": dict(self.outputs)}
        return {"r_actions": float(self.r_actions), "gt_data_hash": self.gt_data_hash}

    def to_dict(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "r_actions": self.r_actions,
            "r_outputs": self.r_outputs,
            "outputs": dict(self.outputs),
            "missing_outputs": list(self.missing_outputs),
            "data_hash": self.data_hash,
            "gt_data_hash": self.gt_data_hash,
        }


def replay_actions(db: Db, actions: Sequence[Action]) -> list[str]:
    """Run tool actions on `db` as the env would and return their observations. Terminate tools and
    `respond` are skipped (they do not touch the DB); unknown names observe "Unknown action <name>"."""
    observations = []
    for action in actions:
        if action.name in TERMINATE_TOOLS or action.name == RESPOND:
            continue
        if action.name in TOOLS:
            observations.append(execute_tool(db, action.name, action.kwargs))
        else:
            observations.append(f"Unknown action {action.name}")
    return observations


def replay_gold(task: Task, data: RetailData) -> Db:
    """A pristine DB with the task's gold actions applied: the expected end state."""
    db = fresh_db(data)
    replay_actions(db, task.actions)
    return db


def gold_hash(task: Task, data: RetailData) -> str:
    """Hash of `replay_gold(task, data)`, cached per gold action list (the replay is deterministic)."""
    key = json.dumps([action.to_dict() for action in task.actions], sort_keys=True)
    cached = data.gold_hash_cache.get(key)
    if cached is None:
        cached = data.gold_hash_cache[key] = db_hash(replay_gold(task, data), data)
    return cached


def outputs_found(outputs: Sequence[str], agent_messages: Sequence[str]) -> dict[str, bool]:
    """For each expected output: is it (lowercased) inside some agent message (lowercased, commas removed)?"""
    said = [message.lower().replace(",", "") for message in agent_messages]
    return {output: any(output.lower() in message for message in said) for output in outputs}


def compute_reward(final_db: Db, task: Task, agent_messages: Sequence[str], data: RetailData) -> RewardInfo:
    """Score an episode from its final DB and the contents of its `respond` actions."""
    data_hash = db_hash(final_db, data)
    gt_data_hash = gold_hash(task, data)
    r_actions = data_hash == gt_data_hash
    reward = 1.0 if r_actions else 0.0
    r_outputs, found = None, {}
    if task.outputs:
        found = outputs_found(task.outputs, agent_messages)
        r_outputs = all(found.values())
        if not r_outputs:
            reward = 0.0
    return RewardInfo(reward, r_actions, data_hash, gt_data_hash, r_outputs, found)


def changed_paths(before: Db, after: Db) -> list[str]:
    """Sorted "collection/key/field" paths whose values differ (type-aware: 62 vs 62.0 differ).
    A record or field present on only one side is listed too."""
    paths = []
    for collection in sorted(set(before) | set(after)):
        old_records, new_records = before.get(collection, {}), after.get(collection, {})
        for key in sorted(set(old_records) | set(new_records)):
            old, new = old_records.get(key), new_records.get(key)
            if old is new:
                continue
            if old is None or new is None:
                paths.append(f"{collection}/{key}")
                continue
            for name in sorted(set(old) | set(new)):
                if name not in old or name not in new or canonical_text(old[name]) != canonical_text(new[name]):
                    paths.append(f"{collection}/{key}/{name}")
    return paths


def gold_replay_check(tasks: Sequence[Task], data: RetailData) -> list[dict[str, Any]]:
    """Per task, the episode an oracle agent would have: its gold actions replayed on a pristine DB and
    every expected output said. Each must earn reward 1.0; the fields it changed and the gold hash pin
    the environment (tools, DB, hashing) so that a drift from upstream shows as a changed row."""
    rows = []
    pristine = fresh_db(data)
    for task in tasks:
        final = replay_gold(task, data)
        info = compute_reward(final, task, list(task.outputs), data)
        rows.append({"task": task.id, "gold actions": len(task.actions), "fields changed":
                     len(changed_paths(pristine, final)), "outputs": len(task.outputs), "reward": info.reward,
                     "gold hash": info.gt_data_hash[:16]})
    return rows
