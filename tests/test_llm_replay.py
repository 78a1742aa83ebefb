"""Recorded replies: the pack format, the cache's read-only replay level, and the committed packs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from polca_nb import record_replies
from polca_nb.llm import LLMCache, LLMClient, ReplayPack, live_calls, reply_sources
from polca_nb.llm.replay import REPLIES_DIR, cache_dir_entries, pack_paths, read_pack, write_pack

from test_llm_cache import CountingCreate

USER = [{"role": "user", "content": "Name a colour."}]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _recorded(tmp_path: Path, n: int = 3) -> tuple[Path, CountingCreate]:
    """Answer `n` requests live into a disk cache and pack it; returns (pack path, the fake that answered)."""
    fake = CountingCreate()
    live = LLMClient(model="claude-haiku-4-5", create=fake, cache=LLMCache(tmp_path / "live"))
    for i in range(n):
        live.complete(system="s", messages=[{"role": "user", "content": f"q{i}"}], role="task")
    pack = tmp_path / "nb.jsonl.gz"
    write_pack(pack, cache_dir_entries(tmp_path / "live"))
    return pack, fake


def _ask(client: LLMClient, n: int) -> list[str]:
    return [client.complete(system="s", messages=[{"role": "user", "content": f"q{i}"}], role="task").text
            for i in range(n)]


def test_a_pack_replays_every_recorded_request_without_calling_the_model(tmp_path):
    pack, fake = _recorded(tmp_path)

    def must_not_be_called(**kwargs):
        raise AssertionError("a recorded request went to the model")

    client = LLMClient(model="claude-haiku-4-5", create=must_not_be_called,
                       cache=LLMCache(tmp_path / "fresh", replay=[ReplayPack(pack)]))
    assert _ask(client, 3) == ["reply 1", "reply 2", "reply 3"]
    assert live_calls(client) == 0 and client.cache.replayed == 3
    assert not list((tmp_path / "fresh").rglob("*.json")), "replayed replies are not copied into the cache"
    line = reply_sources(client)
    assert "answered live by the model: 0" in line and "from recorded replies (" in line and line.endswith(": 0")


def test_a_request_the_pack_did_not_record_goes_live(tmp_path):
    pack, _ = _recorded(tmp_path, n=2)
    fake = CountingCreate()
    client = LLMClient(model="claude-haiku-4-5", create=fake, cache=LLMCache(None, replay=[ReplayPack(pack)]))
    _ask(client, 3)
    assert len(fake.calls) == 1 and live_calls(client) == 1 and client.cache.replayed == 2
    other_model = LLMClient(model="claude-opus-4-5", create=fake, cache=LLMCache(None, replay=[ReplayPack(pack)]))
    _ask(other_model, 1)
    assert live_calls(other_model) == 1, "the key holds the model: another model never replays these replies"


def test_the_local_disk_cache_answers_before_the_pack_and_membership_does_not_count(tmp_path):
    pack, _ = _recorded(tmp_path, n=1)
    key = next(iter(dict(read_pack(pack))))
    LLMCache(tmp_path / "mine").put(key, {"reply": {"text": "my own"}})
    cache = LLMCache(tmp_path / "mine", replay=[ReplayPack(pack)])
    assert cache.get(key) == {"reply": {"text": "my own"}} and cache.replayed == 0
    only_pack = LLMCache(None, replay=[ReplayPack(pack)])
    assert key in only_pack and only_pack.replayed == 0
    only_pack.get(key)
    only_pack.get(key)
    assert only_pack.replayed == 2  # every get served from a pack's value, the memory-promoted one too


def test_packs_are_sorted_byte_identical_and_leave_the_requests_out(tmp_path):
    pack, _ = _recorded(tmp_path)
    again = tmp_path / "again.jsonl.gz"
    write_pack(again, cache_dir_entries(tmp_path / "live"))
    assert pack.read_bytes() == again.read_bytes()
    lines = [json.loads(line) for line in gzip.open(pack, "rt", encoding="utf-8")]
    assert [line["key"] for line in lines] == sorted(line["key"] for line in lines)
    assert all(set(line) == {"key", "reply", "latency_s"} for line in lines)


def test_a_bad_pack_line_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"key": "ab", "reply": {"text": "x"}}) + "\n" + json.dumps({"reply": {}}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz line 2"):
        len(ReplayPack(bad))


def test_replay_setting_default_off_and_explicit_paths(tmp_path):
    pack, _ = _recorded(tmp_path, n=1)
    assert pack_paths(None) == sorted(REPLIES_DIR.glob("*.jsonl.gz"))
    for off in ("off", "0", "", "None"):
        assert pack_paths(off) == []
    assert pack_paths(str(pack)) == [pack] and pack_paths(str(tmp_path)) == [pack]
    with pytest.raises(ValueError, match="no-such-pack"):
        pack_paths(str(tmp_path / "no-such-pack.jsonl.gz"))


def test_default_cache_uses_the_packs_the_environment_names(tmp_path, monkeypatch):
    pack, _ = _recorded(tmp_path, n=1)
    monkeypatch.setenv("POLCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POLCA_LLM_REPLAY", str(pack))
    assert [p.path for p in LLMCache.default().replay] == [pack]
    monkeypatch.setenv("POLCA_LLM_REPLAY", "off")
    assert LLMCache.default().replay == ()


def test_every_notebook_that_asks_an_llm_has_a_valid_committed_pack_and_no_pack_is_orphaned():
    with_llm = record_replies.notebooks_with_llm(NOTEBOOKS)
    assert {p.stem for p in with_llm} >= {"00_quickstart", "10_hotpotqa", "11_tau_bench", "20_ablations"}
    packs = {p.name.removesuffix(".jsonl.gz"): p for p in REPLIES_DIR.glob("*.jsonl.gz")}
    assert set(packs) <= {p.stem for p in with_llm}, "a pack whose notebook no longer asks the model"
    for notebook in with_llm:
        assert notebook.stem in packs, f"{notebook.name} has no recorded replies: python -m polca_nb.record_replies"
        entries = dict(read_pack(packs[notebook.stem]))
        assert entries and all(len(key) == 64 for key in entries)


def test_recording_moves_earlier_runs_aside_instead_of_deleting_them(tmp_path):
    runs = tmp_path / "build" / "runs"
    assert record_replies.move_runs_aside(runs) is None
    (runs / "quickstart-seed0").mkdir(parents=True)
    aside = record_replies.move_runs_aside(runs)
    assert aside is not None and (aside / "quickstart-seed0").is_dir() and not runs.exists()


def test_no_request_is_recorded_in_two_committed_packs():
    """Two recordings of one request disagree (the local model's sampling is not repeatable across server
    sessions), and the first pack would silently win: the recorder reuses other packs' replies instead."""
    seen: dict[str, str] = {}
    for pack in sorted(REPLIES_DIR.glob("*.jsonl.gz")):
        for key, _ in read_pack(pack):
            assert key not in seen, f"{key[:12]}... is recorded in {seen.get(key)} and {pack.name}"
            seen[key] = pack.name
