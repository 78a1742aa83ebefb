"""τ-bench retail episodes: gold replays score 1, the spec's self-check vectors, episode rules, reward."""

from __future__ import annotations

import hashlib

import pytest

from polca_nb.benchmarks.tau_retail import (
    Action,
    ScriptedUser,
    canonical_form,
    changed_paths,
    compute_reward,
    db_hash,
    fresh_db,
    load_retail,
    replay_gold,
    reset,
    step,
)

PRISTINE_HASH = "5a4b2cb59f4d12dea7e4adff24a7f8fada510ead49372ea4a729a82bbb5f49b5"
STOP = "###STOP###"


@pytest.fixture(scope="module")
def data():
    return load_retail()


def say(content: str) -> Action:
    return Action("respond", {"content": content})


def run_episode(data, task, actions, *, say_first: str | None = None):
    """Customer opens, the agent optionally says `say_first`, takes `actions`, then says goodbye and
    the customer stops (unless a terminate tool ended the episode first)."""
    user = ScriptedUser(["Hi, I need help with my orders.", "Okay.", STOP])
    state = reset(data, task, user)
    if say_first is not None:
        step(state, say(say_first))
    else:
        user.lines = ["Hi, I need help with my orders.", STOP]
    for action in actions:
        if state.done:
            break
        step(state, action)
    if not state.done:
        step(state, say("Is there anything else?"))
    return state


def gold_episode(data, task):
    outputs = ", ".join(task.outputs) if task.outputs else None
    return run_episode(data, task, task.actions, say_first=outputs)


ALL_TASKS = [(split, i) for split, n in (("test", 115), ("dev", 20)) for i in range(n)]


@pytest.mark.parametrize("split, index", ALL_TASKS, ids=[f"{s}-{i}" for s, i in ALL_TASKS])
def test_gold_actions_through_the_env_score_one(data, split, index):
    state = gold_episode(data, data.task(split, index))
    assert state.done and not state.truncated
    assert state.reward == 1.0, state.reward_info


def test_gold_replays_leave_the_pristine_data_untouched(data):
    for split in ("test", "dev"):
        for task in data.tasks[split]:
            replay_gold(task, data)
    reference = hashlib.sha256(str(canonical_form(data.pristine)).encode("utf-8")).hexdigest()
    assert reference == PRISTINE_HASH


# Spec §10: task index -> (hash after gold replay, exact set of changed collection/key/field paths).
SELF_CHECKS = {
    40: ("bde91264baafa055b819ba8a42706f6a01259ef8b38932f04685b6c43cd18a24", {"orders/#W4923227/payment_history"}),
    0: ("5ed21c65cf9e8d0c20ad0210721146bb6abad19bedce7c2e08472311dabbeec8", {
        f"orders/#W2378156/{f}" for f in ("status", "exchange_items", "exchange_new_items",
                                           "exchange_payment_method_id", "exchange_price_difference")}),
    22: ("c72b4299c0ccf3410422d51196cdf7d670c899dde8ed15c96084521eba63f621", {"orders/#W9911714/address"}),
    74: ("8fbea1d456a6c2c316b8f45517f95920aa3f83588b2e80fc24a0f83921b2782d", {
        "orders/#W3189752/status", "orders/#W3189752/cancel_reason", "orders/#W3189752/payment_history",
        "orders/#W5166363/items", "orders/#W5166363/payment_history", "orders/#W5166363/status"}),
    2: ("047522a8ae2c144d87970f3579fc39a81e72056269b5f0d647b9e3918b53f448", {
        "orders/#W2378156/status", "orders/#W2378156/return_items", "orders/#W2378156/return_payment_method_id"}),
    69: ("4406fe3c3c844ffa3bc3490681adcd6dab713c4ae850c892af0ed7397ab1511d", {
        "orders/#W2417020/status", "orders/#W2417020/cancel_reason", "orders/#W2417020/payment_history",
        "users/emma_smith_8564/payment_methods"}),
    44: ("951f3d25bb42dbdb7be305c51e2dee0b45e5bfe83e7376a27861a0336f3e5dd1", {
        "orders/#W9300146/items", "orders/#W9300146/payment_history", "orders/#W9300146/status",
        "users/aarav_anderson_8794/payment_methods"}),
    106: (PRISTINE_HASH, set()),
    12: (PRISTINE_HASH, set()),
}


@pytest.mark.parametrize("index", SELF_CHECKS)
def test_self_check_hashes_and_changed_paths(data, index):
    expected_hash, expected_paths = SELF_CHECKS[index]
    replayed = replay_gold(data.task("test", index), data)
    assert db_hash(replayed, data) == expected_hash
    assert set(changed_paths(data.pristine, replayed)) == expected_paths


def _history(order):
    return [(e["transaction_type"], e["amount"], e["payment_method_id"]) for e in order["payment_history"]]


def test_self_check_values(data):
    db = replay_gold(data.task("test", 40), data)
    assert _history(db["orders"]["#W4923227"]) == [
        ("payment", 321.18, "credit_card_8554680"), ("payment", 321.18, "credit_card_8897086"),
        ("refund", 321.18, "credit_card_8554680")]
    assert db["orders"]["#W4923227"]["status"] == "pending"

    order = replay_gold(data.task("test", 0), data)["orders"]["#W2378156"]
    assert order["exchange_items"] == ["1151293680", "4983901480"]
    assert order["exchange_new_items"] == ["7706410293", "7747408585"]
    assert order["exchange_price_difference"] == round((269.16 - 272.33) + (249.01 - 262.47), 2) == -16.63

    address = replay_gold(data.task("test", 22), data)["orders"]["#W9911714"]["address"]
    assert address == {"address1": "101 Highway", "address2": "", "city": "New York", "state": "NY",
                       "country": "USA", "zip": "10001"}

    db = replay_gold(data.task("test", 74), data)
    assert db["orders"]["#W3189752"]["cancel_reason"] == "no longer needed"
    assert _history(db["orders"]["#W3189752"])[-1] == ("refund", 1252.16, "paypal_5914760")
    item = db["orders"]["#W5166363"]["items"][0]
    assert (item["item_id"], item["price"]) == ("3265035808", 2530.72)
    assert item["options"]["color"] == "silver" and item["options"]["storage"] == "256GB SSD"
    assert _history(db["orders"]["#W5166363"])[-1] == ("refund", 218.84000000000015, "credit_card_4466831")
    assert db["orders"]["#W5166363"]["status"] == "pending (item modified)"

    order = replay_gold(data.task("test", 2), data)["orders"]["#W2378156"]
    assert order["return_items"] == ["4202497723", "4602305039", "9408160950"]
    assert order["return_payment_method_id"] == "credit_card_9513926"

    db = replay_gold(data.task("test", 69), data)
    balance = db["users"]["emma_smith_8564"]["payment_methods"]["gift_card_8541487"]["balance"]
    assert balance == 2736.4 and type(balance) is float
    assert _history(db["orders"]["#W2417020"])[-1] == ("refund", 2674.4, "gift_card_8541487")

    db = replay_gold(data.task("test", 44), data)
    assert _history(db["orders"]["#W9300146"])[-1] == ("refund", 17.98999999999998, "gift_card_7245904")
    assert db["users"]["aarav_anderson_8794"]["payment_methods"]["gift_card_7245904"]["balance"] == 34.99


def test_wrong_write_scores_zero(data):
    task = data.task("test", 0)
    exchange = task.actions[-1]
    wrong = Action(exchange.name, {**exchange.kwargs, "new_item_ids": ["1421289881", "7747408585"]})
    state = run_episode(data, task, [*task.actions[:-1], wrong])
    assert state.reward == 0.0 and state.reward_info.r_actions is False
    assert state.reward_info.data_hash != state.reward_info.gt_data_hash


def test_missing_or_extra_write_scores_zero(data):
    task = data.task("test", 0)
    assert run_episode(data, task, task.actions[:-1]).reward == 0.0
    extra = Action("modify_user_address", {"user_id": "yusuf_rossi_9620", "address1": "1 Elm St", "address2": "",
                                           "city": "Philadelphia", "state": "PA", "country": "USA", "zip": "19122"})
    assert run_episode(data, task, [*task.actions, extra]).reward == 0.0


def test_outputs_gate_the_reward(data):
    task = data.task("test", 40)  # outputs ["60", "mastercard"]
    assert task.outputs == ("60", "mastercard")
    missing = run_episode(data, task, task.actions, say_first="Your gift card has 60 dollars.")
    info = missing.reward_info
    assert missing.reward == 0.0 and info.r_actions is True and info.missing_outputs == ("mastercard",)
    assert info.upstream_info() == {"r_outputs": 0.0, "outputs": {"60": True, "mastercard": False}}
    said = run_episode(data, task, task.actions, say_first="Balance: 60. The original card is a MasterCard.")
    assert said.reward == 1.0


def test_outputs_ignore_commas_and_tool_observations(data):
    task = next(t for t in data.tasks["test"] if t.outputs == ("1093.34",))
    assert run_episode(data, task, task.actions, say_first="That comes to $1,093.34.").reward == 1.0
    # The number may well appear in a tool observation; only what the agent says counts.
    assert run_episode(data, task, task.actions, say_first="Done.").reward == 0.0


def test_reward_without_outputs_reports_r_actions(data):
    task = data.task("test", 0)
    info = compute_reward(replay_gold(task, data), task, [], data)
    assert info.reward == 1.0 and info.r_outputs is None
    assert info.upstream_info() == {"r_actions": 1.0, "gt_data_hash": SELF_CHECKS[0][0]}


def test_transfer_ends_the_episode_and_scores_it(data):
    task = data.task("test", 12)  # ends with transfer_to_human_agents; its write call fails on purpose
    state = reset(data, task, ScriptedUser(["Hello."]))
    for action in task.actions:
        result = step(state, action)
    assert result.done and result.source == "transfer_to_human_agents"
    assert result.observation == "Transfer successful" and result.reward == 1.0
    with pytest.raises(ValueError, match="finished"):
        step(state, say("Still there?"))


def test_stop_token_is_matched_as_a_substring(data):
    user = ScriptedUser(["Hi.", "Great, thanks! ###STOP### bye"])
    state = reset(data, data.task("dev", 0), user)
    result = step(state, say("Anything else?"))
    assert result.done and result.source == "user" and user.heard == ["Anything else?"]
    assert result.reward == 0.0 and state.reward_info is not None  # dev/0 needs writes, none were made


def test_step_limit_truncates_with_reward_zero(data):
    state = reset(data, data.task("test", 0), ScriptedUser(["Hi."]), max_steps=30)
    results = [step(state, Action("think", {"thought": str(i)})) for i in range(30)]
    assert not any(r.done for r in results[:-1])
    assert results[-1].done and results[-1].truncated and results[-1].reward == 0.0
    assert state.reward_info is None and state.reward == 0.0 and state.steps == 30
    with pytest.raises(ValueError):
        step(state, Action("think", {"thought": "one more"}))


def test_unknown_actions_and_tool_errors_are_observations(data):
    state = reset(data, data.task("test", 0), ScriptedUser(["Hi."]))
    result = step(state, {"name": "refund_everything", "kwargs": {}})
    assert (result.observation, result.done) == ("Unknown action refund_everything", False)
    result = step(state, Action("get_order_details", {"id": "#W2378156"}))
    assert result.observation.startswith("Error: ") and result.source == "get_order_details"
    assert [a.name for a in state.actions] == ["refund_everything", "get_order_details"]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_steps": 0}, "max_steps"), ({"task": "test/0"}, "task")],
)
def test_reset_validates_arguments(data, kwargs, match):
    arguments = {"data": data, "task": data.task("test", 0), **kwargs}
    with pytest.raises(ValueError, match=match):
        reset(**arguments)


def test_respond_needs_a_user_and_string_content(data):
    state = reset(data, data.task("test", 0))
    with pytest.raises(ValueError, match="user simulator"):
        step(state, say("hello"))
    with pytest.raises(ValueError, match="content"):
        step(reset(data, data.task("test", 0), ScriptedUser(["Hi."])), Action("respond", {"text": "hello"}))


def test_episodes_never_share_mutations(data):
    task = data.task("test", 69)  # cancels a gift-card order: order and user records both change
    card_path = ("users", "emma_smith_8564")
    first = gold_episode(data, task)
    second = reset(data, task, ScriptedUser(["Hi."]))
    assert first.reward == 1.0
    balance_in = lambda db: db[card_path[0]][card_path[1]]["payment_methods"]["gift_card_8541487"]["balance"]  # noqa: E731
    assert balance_in(first.db) == 2736.4
    assert balance_in(second.db) == 62 and type(balance_in(second.db)) is int
    assert balance_in(data.pristine) == 62 and "cancel_reason" not in data.pristine["orders"]["#W2417020"]
    assert db_hash(second.db, data) == PRISTINE_HASH
    assert changed_paths(fresh_db(data), second.db) == []


def test_gold_replay_check_rows_earn_one_and_pin_the_end_state(data):
    from polca_nb.benchmarks.tau_retail import gold_hash, gold_replay_check

    tasks = [data.task("test", i) for i in range(12)]
    rows = gold_replay_check(tasks, data)
    assert [r["task"] for r in rows] == [t.id for t in tasks]
    assert all(r["reward"] == 1.0 for r in rows)
    assert any(r["outputs"] for r in rows)  # the outputs check is exercised too
    assert rows[0]["fields changed"] > 0 and rows[0]["gold hash"] == gold_hash(tasks[0], data)[:16]
