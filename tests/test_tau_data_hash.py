"""τ-bench retail: data loading, the copy-on-write episode DB and the type-aware DB hash."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from polca_nb.benchmarks.tau_retail import (
    Action,
    canonical_form,
    canonical_text,
    db_hash,
    deep_copy_db,
    execute_tool,
    fresh_db,
    load_retail,
)
from polca_nb.benchmarks.tau_retail.data import parse_task

PRISTINE_HASH = "5a4b2cb59f4d12dea7e4adff24a7f8fada510ead49372ea4a729a82bbb5f49b5"  # spec §10


@pytest.fixture(scope="module")
def data():
    return load_retail()


def reference_hash(value) -> str:
    """The spec's definition, computed the slow way (no memo, no hand-written str())."""
    return hashlib.sha256(str(canonical_form(value)).encode("utf-8")).hexdigest()


def test_counts_match_the_spec(data):
    db = data.pristine
    assert (len(db["users"]), len(db["products"]), len(db["orders"])) == (500, 50, 1000)
    assert (len(data.tasks["test"]), len(data.tasks["dev"])) == (115, 20)
    variants = [v for p in db["products"].values() for v in p["variants"].values()]
    assert (len(variants), sum(v["available"] for v in variants)) == (591, 379)
    assert sum(bool(t.outputs) for t in data.tasks["test"]) == 37
    assert not any(t.outputs for t in data.tasks["dev"])
    assert data.wiki.startswith("# Retail agent policy") and len(data.rules) == 7


def test_numbers_keep_their_json_type(data):
    gift_cards = [
        m for u in data.pristine["users"].values() for m in u["payment_methods"].values() if m["source"] == "gift_card"
    ]
    assert len(gift_cards) == 234 and all(type(m["balance"]) is int for m in gift_cards)
    prices = [v["price"] for p in data.pristine["products"].values() for v in p["variants"].values()]
    assert all(type(price) is float for price in prices)


def test_tasks_parse_into_actions(data):
    task = data.task("test", 0)
    assert (task.id, task.user_id) == ("test/0", "yusuf_rossi_9620")
    assert task.actions[-1].name == "exchange_delivered_order_items"
    assert task.actions[-1].kwargs["order_id"] == "#W2378156"


@pytest.mark.parametrize(
    "split, index, field",
    [("train", 0, "split"), ("test", 115, "index"), ("dev", -1, "index")],
)
def test_task_lookup_rejects_bad_split_or_index(data, split, index, field):
    with pytest.raises(ValueError, match=field):
        data.task(split, index)


def test_parse_task_and_action_validate_fields():
    with pytest.raises(ValueError, match="'outputs'"):
        parse_task({"annotator": "0", "user_id": "u", "instruction": "i", "actions": []}, "test", 3)
    with pytest.raises(ValueError, match="kwargs"):
        Action("think", ["not", "a", "mapping"])
    with pytest.raises(ValueError, match="name"):
        Action("", {})


def test_load_retail_caches_and_reports_missing_data(data, tmp_path):
    assert load_retail() is data
    with pytest.raises(FileNotFoundError, match="tau_retail"):
        load_retail(tmp_path)


def test_pristine_hash_matches_spec_vector(data):
    assert reference_hash(data.pristine) == PRISTINE_HASH
    assert db_hash(fresh_db(data), data) == PRISTINE_HASH


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"a": 1},
        [1],
        [[]],
        {"k": [{"x": 1.5, "y": [True, None]}]},
        {"b": 62, "a": 62.0, "c": -0.0, "d": 1e-7, "e": 218.84000000000015},
        {"s": {"z", "a"}, "q": "it's", "t": "#W1"},
        {"n": {"m": {"l": {}}}},
        {"t": (1,)},
    ],
)
def test_canonical_text_is_str_of_canonical_form(value):
    assert canonical_text(value) == str(canonical_form(value))


def test_hash_is_type_aware_and_value_based():
    base = {"users": {"u": {"balance": 62, "address": {"city": "X", "zip": "1"}}}}
    as_float = {"users": {"u": {"balance": 62.0, "address": {"city": "X", "zip": "1"}}}}
    reordered = {"users": {"u": {"address": {"zip": "1", "city": "X"}, "balance": 62}}}
    extra_key = {"users": {"u": {"balance": 62, "address": {"city": "X", "zip": "1"}, "cancel_reason": "x"}}}
    assert db_hash(base) != db_hash(as_float)
    assert db_hash(base) == db_hash(reordered)
    assert db_hash(base) != db_hash(extra_key)
    assert db_hash({"o": {"h": [1, 2]}}) != db_hash({"o": {"h": [2, 1]}})


def test_memoised_hash_equals_reference_after_writes(data):
    db = fresh_db(data)
    execute_tool(db, "cancel_pending_order", {"order_id": "#W2417020", "reason": "no longer needed"})
    execute_tool(db, "modify_user_address", {
        "user_id": "noah_brown_6181", "address1": "1 A St", "address2": "", "city": "B",
        "state": "CA", "country": "USA", "zip": "00001",
    })
    assert db_hash(db, data) == db_hash(db) == reference_hash(db) != PRISTINE_HASH


def test_fresh_db_is_cheap_and_isolated(data):
    # Best of three batches: one batch caught by a stall of a loaded machine must not fail the bound.
    # (A deep copy takes ~50 ms; fresh_db ~0.1 ms.)
    per_copy = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        dbs = [fresh_db(data) for _ in range(100)]
        per_copy = min(per_copy, (time.perf_counter() - start) / 100)
    assert per_copy < 0.01, f"fresh_db took {per_copy * 1e3:.2f} ms"
    first, second = dbs[0], dbs[1]
    first["orders"]["#NEW"] = {"status": "pending"}
    assert "#NEW" not in second["orders"] and "#NEW" not in data.pristine["orders"]


def test_deep_copy_db_shares_nothing(data):
    copied = deep_copy_db(data)
    copied["users"]["noah_brown_6181"]["name"]["first_name"] = "Changed"
    assert data.pristine["users"]["noah_brown_6181"]["name"]["first_name"] == "Noah"
    again = deep_copy_db(copied)
    assert json.dumps(again) == json.dumps(copied) and again["users"] is not copied["users"]
