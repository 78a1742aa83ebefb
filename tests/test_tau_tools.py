"""τ-bench retail tools: schemas, every error string of the spec, and the mutation semantics."""

from __future__ import annotations

import json

import pytest

from polca_nb.benchmarks.tau_retail import TOOLS, db_hash, execute_tool, fresh_db, load_retail, tool_schemas

# Orders chosen from the data for their state; `test_fixture_orders_are_what_the_tests_assume` checks it.
PENDING = "#W2443586"  # aarav_nguyen_7344, paid 591.95 by paypal_7859314; owner has gift_card_2742113 (22)
PENDING_KEYBOARD = "9690244451"  # in PENDING; product 1656367028, 236.51
PENDING_GIFT_PAID = "#W6779827"  # ethan_lopez_6291, paid by gift_card_7219486; owner has credit_card_9789590
PENDING_DUPLICATES = "#W9093821"  # harper_kovacs_8617; backpack 3557711149 at items[0] and items[2]
PROCESSED = "#W2611340"
DELIVERED = "#W9077205"  # amelia_wilson_4614, paid by gift_card_7108145; owner also has paypal_4101143
DELIVERED_PUZZLE = "9370300555"  # in DELIVERED once; product 1808611083

TOOL_ORDER = [
    "calculate", "cancel_pending_order", "exchange_delivered_order_items", "find_user_id_by_email",
    "find_user_id_by_name_zip", "get_order_details", "get_product_details", "get_user_details",
    "list_all_product_types", "modify_pending_order_address", "modify_pending_order_items",
    "modify_pending_order_payment", "modify_user_address", "return_delivered_order_items", "think",
    "transfer_to_human_agents",
]
NEW_ADDRESS = {"address1": "1 Test Way", "address2": "", "city": "Austin", "state": "TX", "country": "USA", "zip": "73301"}


@pytest.fixture(scope="module")
def data():
    return load_retail()


@pytest.fixture
def db(data):
    return fresh_db(data)


def test_fixture_orders_are_what_the_tests_assume(data):
    orders, users = data.pristine["orders"], data.pristine["users"]
    assert orders[PENDING]["status"] == "pending"
    assert orders[PENDING]["payment_history"][0]["payment_method_id"] == "paypal_7859314"
    assert users["aarav_nguyen_7344"]["payment_methods"]["gift_card_2742113"]["balance"] == 22
    assert orders[PENDING_GIFT_PAID]["payment_history"][0]["payment_method_id"] == "gift_card_7219486"
    assert [i["item_id"] for i in orders[PENDING_DUPLICATES]["items"]].count("3557711149") == 2
    assert orders[PROCESSED]["status"] == "processed" and orders[DELIVERED]["status"] == "delivered"
    assert orders[DELIVERED]["payment_history"][0]["payment_method_id"] == "gift_card_7108145"
    assert "paypal_4101143" in users["amelia_wilson_4614"]["payment_methods"]
    keyboard = data.pristine["products"]["1656367028"]["variants"]
    assert not keyboard["1340995114"]["available"] and keyboard["7706410293"]["available"]
    assert keyboard["7706410293"]["price"] - keyboard[PENDING_KEYBOARD]["price"] > 22


def test_schemas_list_16_tools_in_upstream_order_with_all_parameters_required():
    assert list(TOOLS) == TOOL_ORDER
    anthropic, openai = tool_schemas("anthropic"), tool_schemas("openai")
    assert [s["name"] for s in anthropic] == [s["function"]["name"] for s in openai] == TOOL_ORDER
    for schema in anthropic:
        assert set(schema) == {"name", "description", "input_schema"} and schema["description"]
        params = schema["input_schema"]
        assert params["type"] == "object" and params["required"] == list(params["properties"])
    by_name = {s["name"]: s["input_schema"] for s in anthropic}
    assert by_name["list_all_product_types"] == {"type": "object", "properties": {}, "required": []}
    assert by_name["cancel_pending_order"]["properties"]["reason"]["enum"] == ["no longer needed", "ordered by mistake"]
    assert by_name["modify_pending_order_items"]["properties"]["item_ids"]["type"] == "array"
    assert "#" in by_name["get_order_details"]["properties"]["order_id"]["description"]
    assert openai[0]["type"] == "function" and openai[0]["function"]["parameters"] == anthropic[0]["input_schema"]
    with pytest.raises(ValueError, match="style"):
        tool_schemas("gemini")


def _items(order, old, new, method):
    return {"order_id": order, "item_ids": old, "new_item_ids": new, "payment_method_id": method}


def _return(order, items, method):
    return {"order_id": order, "item_ids": items, "payment_method_id": method}


GIFT_CARD_SWAP = ("modify_pending_order_payment", {"order_id": PENDING_GIFT_PAID, "payment_method_id": "credit_card_9789590"})
KEYBOARD_SWAP = ("modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], ["3616838507"], "paypal_7859314"))
PUZZLE_RETURN = ("return_delivered_order_items", _return(DELIVERED, [DELIVERED_PUZZLE], "gift_card_7108145"))

# (setup calls that must succeed, tool, kwargs, exact observation)
ERROR_CASES = {
    "calc-characters": ((), "calculate", {"expression": "2 + x"}, "Error: invalid characters in expression"),
    "calc-exception": ((), "calculate", {"expression": "1 / (2 - 2)"}, "Error: division by zero"),
    "email-unknown": ((), "find_user_id_by_email", {"email": "nobody@example.com"}, "Error: user not found"),
    "name-zip-wrong-zip": ((), "find_user_id_by_name_zip", {"first_name": "Aarav", "last_name": "Nguyen", "zip": "00000"}, "Error: user not found"),
    "user-details-unknown": ((), "get_user_details", {"user_id": "nobody_0000"}, "Error: user not found"),
    "user-address-unknown": ((), "modify_user_address", {"user_id": "nobody_0000", **NEW_ADDRESS}, "Error: user not found"),
    "order-without-hash": ((), "get_order_details", {"order_id": PENDING[1:]}, "Error: order not found"),
    "product-is-item-id": ((), "get_product_details", {"product_id": PENDING_KEYBOARD}, "Error: product not found"),
    "cancel-unknown": ((), "cancel_pending_order", {"order_id": "#W0000000", "reason": "no longer needed"}, "Error: order not found"),
    "cancel-processed": ((), "cancel_pending_order", {"order_id": PROCESSED, "reason": "no longer needed"}, "Error: non-pending order cannot be cancelled"),
    "cancel-bad-reason": ((), "cancel_pending_order", {"order_id": PENDING, "reason": "changed my mind"}, "Error: invalid reason"),
    "address-unknown": ((), "modify_pending_order_address", {"order_id": "#W0000000", **NEW_ADDRESS}, "Error: order not found"),
    "address-processed": ((), "modify_pending_order_address", {"order_id": PROCESSED, **NEW_ADDRESS}, "Error: non-pending order cannot be modified"),
    "payment-unknown-order": ((), "modify_pending_order_payment", {"order_id": "#W0000000", "payment_method_id": "paypal_7859314"}, "Error: order not found"),
    "payment-processed": ((), "modify_pending_order_payment", {"order_id": PROCESSED, "payment_method_id": "paypal_7859314"}, "Error: non-pending order cannot be modified"),
    "payment-not-owned": ((), "modify_pending_order_payment", {"order_id": PENDING, "payment_method_id": "credit_card_0000000"}, "Error: payment method not found"),
    "payment-two-payments": ((GIFT_CARD_SWAP,), "modify_pending_order_payment", {"order_id": PENDING_GIFT_PAID, "payment_method_id": "gift_card_7219486"}, "Error: there should be exactly one payment for a pending order"),
    "payment-same-method": ((), "modify_pending_order_payment", {"order_id": PENDING, "payment_method_id": "paypal_7859314"}, "Error: the new payment method should be different from the current one"),
    "payment-gift-card-short": ((), "modify_pending_order_payment", {"order_id": PENDING, "payment_method_id": "gift_card_2742113"}, "Error: insufficient gift card balance to pay for the order"),
    "items-unknown-order": ((), "modify_pending_order_items", _items("#W0000000", [], [], "paypal_7859314"), "Error: order not found"),
    "items-processed": ((), "modify_pending_order_items", _items(PROCESSED, [], [], "paypal_7859314"), "Error: non-pending order cannot be modified"),
    "items-modified-once": ((KEYBOARD_SWAP,), "modify_pending_order_items", _items(PENDING, ["3616838507"], ["8484921793"], "paypal_7859314"), "Error: non-pending order cannot be modified"),
    "items-not-in-order": ((), "modify_pending_order_items", _items(PENDING, ["1151293680"], ["7706410293"], "paypal_7859314"), "Error: 1151293680 not found"),
    "items-listed-twice": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD] * 2, ["7706410293"] * 2, "paypal_7859314"), f"Error: {PENDING_KEYBOARD} not found"),
    "items-length-mismatch": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], [], "paypal_7859314"), "Error: the number of items to be exchanged should match"),
    "items-unavailable": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], ["1340995114"], "paypal_7859314"), "Error: new item 1340995114 not found or available"),
    "items-other-product": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], ["4068787148"], "paypal_7859314"), "Error: new item 4068787148 not found or available"),
    "items-method-not-owned": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], ["7706410293"], "paypal_0000000"), "Error: payment method not found"),
    "items-gift-card-short": ((), "modify_pending_order_items", _items(PENDING, [PENDING_KEYBOARD], ["7706410293"], "gift_card_2742113"), "Error: insufficient gift card balance to pay for the new item"),
    "exchange-unknown": ((), "exchange_delivered_order_items", _items("#W0000000", [], [], "paypal_4101143"), "Error: order not found"),
    "exchange-pending": ((), "exchange_delivered_order_items", _items(PENDING, [], [], "paypal_7859314"), "Error: non-delivered order cannot be exchanged"),
    "exchange-not-in-order": ((), "exchange_delivered_order_items", _items(DELIVERED, ["1111111111"], ["4068787148"], "paypal_4101143"), "Error: 1111111111 not found"),
    "exchange-length-mismatch": ((), "exchange_delivered_order_items", _items(DELIVERED, [DELIVERED_PUZZLE], ["4068787148", "3112842858"], "paypal_4101143"), "Error: the number of items to be exchanged should match"),
    "exchange-unavailable": ((), "exchange_delivered_order_items", _items(DELIVERED, [DELIVERED_PUZZLE], ["3614853563"], "paypal_4101143"), "Error: new item 3614853563 not found or available"),
    "exchange-method-not-owned": ((), "exchange_delivered_order_items", _items(DELIVERED, [DELIVERED_PUZZLE], ["4068787148"], "credit_card_0000000"), "Error: payment method not found"),
    # Test task 106's only gold call, which the spec says fails with this error.
    "exchange-gift-card-short": ((), "exchange_delivered_order_items", _items("#W4316152", ["7292993796"] * 2, ["3761330360", "9647374798"], "gift_card_7245904"), "Error: insufficient gift card balance to pay for the price difference"),
    "return-unknown": ((), "return_delivered_order_items", _return("#W0000000", [], "paypal_4101143"), "Error: order not found"),
    "return-pending": ((), "return_delivered_order_items", _return(PENDING, [], "paypal_7859314"), "Error: non-delivered order cannot be returned"),
    "return-twice": ((PUZZLE_RETURN,), "return_delivered_order_items", _return(DELIVERED, [DELIVERED_PUZZLE], "gift_card_7108145"), "Error: non-delivered order cannot be returned"),
    "return-method-not-owned": ((), "return_delivered_order_items", _return(DELIVERED, [DELIVERED_PUZZLE], "paypal_0000000"), "Error: payment method not found"),
    "return-method-not-original": ((), "return_delivered_order_items", _return(DELIVERED, [DELIVERED_PUZZLE], "paypal_4101143"), "Error: payment method should be either the original payment method or a gift card"),
    "return-listed-twice": ((), "return_delivered_order_items", _return(DELIVERED, [DELIVERED_PUZZLE] * 2, "gift_card_7108145"), "Error: some item not found"),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_strings_and_failed_calls_leave_db_untouched(data, db, case):
    setup, name, kwargs, expected = case
    for setup_name, setup_kwargs in setup:
        assert not execute_tool(db, setup_name, setup_kwargs).startswith("Error"), setup_name
    before = db_hash(db, data)
    assert execute_tool(db, name, kwargs) == expected
    assert db_hash(db, data) == before


@pytest.mark.parametrize(
    "name, kwargs, fragment",
    [
        ("get_order_details", {}, "missing 1 required positional argument: 'order_id'"),
        ("think", {"thought": "x", "mood": "calm"}, "unexpected keyword argument 'mood'"),
        ("return_delivered_order_items", _return(DELIVERED, None, "gift_card_7108145"), "not iterable"),
    ],
)
def test_tool_exceptions_become_error_observations(db, name, kwargs, fragment):
    observation = execute_tool(db, name, kwargs)
    assert observation.startswith("Error: ") and fragment in observation


def test_execute_tool_rejects_unknown_names(db):
    with pytest.raises(ValueError, match="name"):
        execute_tool(db, "respond", {"content": "hi"})


@pytest.mark.parametrize(
    "expression",
    ["2+2", "135.24 - 153.23", "2 ** 3", "7 // 2", " (1 + 2) / 3 ", "-(4.5 * 2)", "10 / 3", "2**0.5", "10**400 / 10**399"],
)
def test_calculate_matches_python_arithmetic_rounded(db, expression):
    expected = str(round(float(eval(expression, {"__builtins__": {}}, {})), 2))  # the spec's oracle
    assert execute_tool(db, "calculate", {"expression": expression}) == expected


@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # eval of "(1)(2)" in the oracle
@pytest.mark.parametrize("expression", ["2 3", "007", "", "()", "(1)(2)", "(-8) ** 0.5 - (-8) ** (1/3)"])
def test_calculate_errors_carry_pythons_message(db, expression):
    try:
        expected = str(round(float(eval(expression, {"__builtins__": {}}, {})), 2))
    except Exception as error:  # noqa: BLE001
        expected = f"Error: {error}"
    assert execute_tool(db, "calculate", {"expression": expression}) == expected


def test_calculate_refuses_huge_powers_quickly(db):
    assert execute_tool(db, "calculate", {"expression": "9**9**9**9"}).startswith("Error: ")


def test_lookups_are_case_insensitive_and_return_bare_ids(data, db):
    user = data.pristine["users"]["aarav_nguyen_7344"]
    assert execute_tool(db, "find_user_id_by_email", {"email": user["email"].upper()}) == "aarav_nguyen_7344"
    name, zip_code = user["name"], user["address"]["zip"]
    found = execute_tool(db, "find_user_id_by_name_zip", {
        "first_name": name["first_name"].lower(), "last_name": name["last_name"].upper(), "zip": zip_code})
    assert found == "aarav_nguyen_7344"


def test_record_tools_return_the_record_as_default_json(data, db):
    observation = execute_tool(db, "get_order_details", {"order_id": PENDING})
    record = data.pristine["orders"][PENDING]
    assert json.loads(observation) == record and list(json.loads(observation)) == list(record)
    assert '", "' in observation and '": ' in observation and "\n" not in observation
    product = json.loads(execute_tool(db, "get_product_details", {"product_id": "1656367028"}))
    assert len(product["variants"]) == 20


def test_list_all_product_types_is_sorted_name_to_id(data, db):
    listing = json.loads(execute_tool(db, "list_all_product_types", {}))
    assert list(listing) == sorted(p["name"] for p in data.pristine["products"].values())
    assert all(data.pristine["products"][pid]["name"] == name for name, pid in listing.items())
    assert len(listing) == 50


def test_think_and_transfer_return_fixed_text(db):
    assert execute_tool(db, "think", {"thought": "hmm"}) == ""
    assert execute_tool(db, "transfer_to_human_agents", {"summary": "s"}) == "Transfer successful"


def test_writes_are_copy_on_write(data, db):
    shared = data.pristine["orders"][PENDING]
    assert db["orders"][PENDING] is shared
    execute_tool(db, "cancel_pending_order", {"order_id": PENDING, "reason": "ordered by mistake"})
    assert db["orders"][PENDING] is not shared and shared["status"] == "pending" and "cancel_reason" not in shared
    assert db["orders"][PENDING]["cancel_reason"] == "ordered by mistake"


def test_payment_change_then_cancel_refunds_every_history_entry(data, db):
    amount = data.pristine["orders"][PENDING_GIFT_PAID]["payment_history"][0]["amount"]
    balance = data.pristine["users"]["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]["balance"]
    execute_tool(db, *GIFT_CARD_SWAP)
    expected_balance = round(balance + amount, 2)  # old method is a gift card: refunded at once
    card = lambda: db["users"]["ethan_lopez_6291"]["payment_methods"]["gift_card_7219486"]  # noqa: E731
    assert card()["balance"] == expected_balance and type(card()["balance"]) is float
    order = json.loads(execute_tool(db, "cancel_pending_order", {"order_id": PENDING_GIFT_PAID, "reason": "no longer needed"}))
    history = [(e["transaction_type"], e["amount"], e["payment_method_id"]) for e in order["payment_history"]]
    assert history == [
        ("payment", amount, "gift_card_7219486"),
        ("payment", amount, "credit_card_9789590"),
        ("refund", amount, "gift_card_7219486"),
        # the quirk: every entry, the earlier refund included, gets a refund
        ("refund", amount, "gift_card_7219486"),
        ("refund", amount, "credit_card_9789590"),
        ("refund", amount, "gift_card_7219486"),
    ]
    for _ in range(2):
        expected_balance = round(expected_balance + amount, 2)
    assert card()["balance"] == expected_balance
    assert list(order)[-1] == "cancel_reason" and order["status"] == "cancelled"


def _backpack_positions(data) -> list[int]:
    items = data.pristine["orders"][PENDING_DUPLICATES]["items"]
    return [i for i, item in enumerate(items) if item["item_id"] == "3557711149"]


def test_modify_items_duplicates_hit_successive_copies(data, db):
    variants = data.pristine["products"]["2524789262"]["variants"]
    order = json.loads(execute_tool(db, "modify_pending_order_items", _items(
        PENDING_DUPLICATES, ["3557711149", "3557711149"], ["7251508981", "5726859009"], "credit_card_7422485")))
    positions = _backpack_positions(data)
    first, second = (order["items"][i] for i in positions)
    assert (first["item_id"], second["item_id"]) == ("7251508981", "5726859009")
    assert first["price"] == variants["7251508981"]["price"] and first["options"] == variants["7251508981"]["options"]
    assert first["name"] == "Backpack" and first["product_id"] == "2524789262"
    difference = 0 + (variants["7251508981"]["price"] - 205.35) + (variants["5726859009"]["price"] - 205.35)
    assert order["payment_history"][-1] == {
        "transaction_type": "payment" if difference > 0 else "refund",
        "amount": abs(difference),
        "payment_method_id": "credit_card_7422485",
    }
    assert order["status"] == "pending (item modified)"


def test_modify_items_identity_pair_is_hit_again_by_the_next_pair(data, db):
    order = json.loads(execute_tool(db, "modify_pending_order_items", _items(
        PENDING_DUPLICATES, ["3557711149", "3557711149"], ["3557711149", "7251508981"], "credit_card_7422485")))
    positions = _backpack_positions(data)
    assert [order["items"][i]["item_id"] for i in positions] == ["7251508981", "3557711149"]


def test_empty_modify_and_exchange_keep_integer_zero(db):
    order = json.loads(execute_tool(db, "modify_pending_order_items", _items(PENDING, [], [], "gift_card_2742113")))
    refund = order["payment_history"][-1]
    assert refund == {"transaction_type": "refund", "amount": 0, "payment_method_id": "gift_card_2742113"}
    assert type(refund["amount"]) is int
    assert type(db["users"]["aarav_nguyen_7344"]["payment_methods"]["gift_card_2742113"]["balance"]) is int
    exchange = json.loads(execute_tool(db, "exchange_delivered_order_items", _items(DELIVERED, [], [], "paypal_4101143")))
    assert exchange["exchange_price_difference"] == 0 and type(exchange["exchange_price_difference"]) is int
    assert exchange["status"] == "exchange requested"


def test_exchange_and_return_sort_ids_so_listing_order_does_not_matter(data):
    order = data.pristine["orders"]["#W1840144"]  # delivered, holds 8590708195 twice
    ids = [item["item_id"] for item in order["items"]][:3]
    method = order["payment_history"][0]["payment_method_id"]
    hashes = set()
    for listing in (ids, ids[::-1]):
        db = fresh_db(data)
        returned = json.loads(execute_tool(db, "return_delivered_order_items", _return("#W1840144", listing, method)))
        assert returned["return_items"] == sorted(ids) and returned["status"] == "return requested"
        assert returned["payment_history"] == order["payment_history"]
        hashes.add(db_hash(db, data))
    assert len(hashes) == 1


def test_address_rewrites_use_the_spec_key_order(db):
    user = json.loads(execute_tool(db, "modify_user_address", {"user_id": "aarav_nguyen_7344", **NEW_ADDRESS}))
    assert list(user["address"]) == ["address1", "address2", "city", "state", "country", "zip"]
    order = json.loads(execute_tool(db, "modify_pending_order_address", {"order_id": PENDING, **NEW_ADDRESS}))
    assert order["address"] == NEW_ADDRESS and order["status"] == "pending"
