"""The seven retail tools that change the database.

Contract shared by all of them: every check runs, in the specified order, before anything is
written, and the first failing check returns its exact `Error: ...` string with the DB untouched.
Writes go through `writable_record` (copy-on-write), never into records shared with the pristine
data. Numbers follow upstream arithmetic exactly (int vs float, unrounded item-price differences)
because the reward hash tells them apart.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any, Sequence

from .data import Db, writable_record

CANCEL_REASONS = ("no longer needed", "ordered by mistake")
ADDRESS_FIELDS = ("address1", "address2", "city", "state", "country", "zip")


def _first_overcounted(item_ids: Sequence[str], order_items: Sequence[dict[str, Any]]) -> str | None:
    """The first id listed more often than the order holds it, or None."""
    held = Counter(item["item_id"] for item in order_items)
    requested = Counter(item_ids)
    for item_id in item_ids:
        if requested[item_id] > held[item_id]:
            return item_id
    return None


def _price_difference(
    db: Db, order: dict[str, Any], item_ids: Sequence[str], new_item_ids: Sequence[str]
) -> tuple[int | float, str | None]:
    """(new minus old price summed pair by pair from int 0, None), or (0, availability error)."""
    difference: int | float = 0
    for old_id, new_id in zip(item_ids, new_item_ids):
        old_item = next(item for item in order["items"] if item["item_id"] == old_id)
        variant = db["products"][old_item["product_id"]]["variants"].get(new_id)
        if variant is None or not variant["available"]:
            return 0, f"Error: new item {new_id} not found or available"
        difference += variant["price"] - old_item["price"]
    return difference, None


def _require_methods(methods: dict[str, Any], method_ids: Sequence[str]) -> None:
    """KeyError (an "Error: '<id>'" observation) before any write, where upstream failed halfway."""
    for method_id in method_ids:
        if method_id not in methods:
            raise KeyError(method_id)


def _new_address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict[str, str]:  # noqa: A002
    return {"address1": address1, "address2": address2, "city": city, "state": state, "country": country, "zip": zip}


def cancel_pending_order(db: Db, order_id: str, reason: str) -> str:
    """Cancel a pending order: refund every payment-history entry (gift cards at once)."""
    order = db["orders"].get(order_id)
    if order is None:
        return "Error: order not found"
    if order["status"] != "pending":
        return "Error: non-pending order cannot be cancelled"
    if reason not in CANCEL_REASONS:
        return "Error: invalid reason"
    refunds = [
        {"transaction_type": "refund", "amount": entry["amount"], "payment_method_id": entry["payment_method_id"]}
        for entry in order["payment_history"]
    ]
    gift_card_refunds = [r for r in refunds if "gift_card" in r["payment_method_id"]]
    owner_methods = db["users"][order["user_id"]]["payment_methods"]
    _require_methods(owner_methods, [refund["payment_method_id"] for refund in gift_card_refunds])
    if gift_card_refunds:
        methods = writable_record(db, "users", order["user_id"])["payment_methods"]
        for refund in gift_card_refunds:
            card = methods[refund["payment_method_id"]]
            card["balance"] = round(card["balance"] + refund["amount"], 2)
    order = writable_record(db, "orders", order_id)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return json.dumps(order)


def modify_pending_order_address(
    db: Db, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str  # noqa: A002
) -> str:
    """Replace a pending order's shipping address."""
    order = db["orders"].get(order_id)
    if order is None:
        return "Error: order not found"
    if order["status"] != "pending":
        return "Error: non-pending order cannot be modified"
    order = writable_record(db, "orders", order_id)
    order["address"] = _new_address(address1, address2, city, state, country, zip)
    return json.dumps(order)


def modify_pending_order_payment(db: Db, order_id: str, payment_method_id: str) -> str:
    """Move a pending order's single payment to another of the owner's methods."""
    order = db["orders"].get(order_id)
    if order is None:
        return "Error: order not found"
    if order["status"] != "pending":
        return "Error: non-pending order cannot be modified"
    owner_methods = db["users"][order["user_id"]]["payment_methods"]
    if payment_method_id not in owner_methods:
        return "Error: payment method not found"
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        return "Error: there should be exactly one payment for a pending order"
    amount, old_method_id = history[0]["amount"], history[0]["payment_method_id"]
    if payment_method_id == old_method_id:
        return "Error: the new payment method should be different from the current one"
    new_method = owner_methods[payment_method_id]
    if new_method["source"] == "gift_card" and new_method["balance"] < amount:
        return "Error: insufficient gift card balance to pay for the order"
    old_is_gift_card = "gift_card" in old_method_id
    if old_is_gift_card:
        _require_methods(owner_methods, [old_method_id])
    if new_method["source"] == "gift_card" or old_is_gift_card:
        methods = writable_record(db, "users", order["user_id"])["payment_methods"]
        if new_method["source"] == "gift_card":
            methods[payment_method_id]["balance"] = round(methods[payment_method_id]["balance"] - amount, 2)
        if old_is_gift_card:
            methods[old_method_id]["balance"] = round(methods[old_method_id]["balance"] + amount, 2)
    order = writable_record(db, "orders", order_id)
    order["payment_history"].append(
        {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id}
    )
    order["payment_history"].append(
        {"transaction_type": "refund", "amount": amount, "payment_method_id": old_method_id}
    )
    return json.dumps(order)


def _check_item_swap(db: Db, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str,
                     *, status: str, status_error: str, balance_error: str,
                     round_difference: bool) -> str | tuple[dict, float]:
    """The checks shared by modify-items and exchange, in the spec's order: the first error string, or
    (payment method, price difference). Only the exchange rounds the difference before the balance check."""
    order = db["orders"].get(order_id)
    if order is None:
        return "Error: order not found"
    if order["status"] != status:
        return status_error
    missing = _first_overcounted(item_ids, order["items"])
    if missing is not None:
        return f"Error: {missing} not found"
    if len(item_ids) != len(new_item_ids):
        return "Error: the number of items to be exchanged should match"
    difference, error = _price_difference(db, order, item_ids, new_item_ids)
    if error is not None:
        return error
    if round_difference:
        difference = round(difference, 2)
    method = db["users"][order["user_id"]]["payment_methods"].get(payment_method_id)
    if method is None:
        return "Error: payment method not found"
    if method["source"] == "gift_card" and method["balance"] < difference:
        return balance_error
    return method, difference


def modify_pending_order_items(
    db: Db, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for available variants of the same products (once per order)."""
    checked = _check_item_swap(db, order_id, item_ids, new_item_ids, payment_method_id, status="pending",
                               status_error="Error: non-pending order cannot be modified",
                               balance_error="Error: insufficient gift card balance to pay for the new item",
                               round_difference=False)
    if isinstance(checked, str):
        return checked
    method, difference = checked
    order = writable_record(db, "orders", order_id)
    order["payment_history"].append({
        "transaction_type": "payment" if difference > 0 else "refund",
        "amount": abs(difference),
        "payment_method_id": payment_method_id,
    })
    if method["source"] == "gift_card":
        card = writable_record(db, "users", order["user_id"])["payment_methods"][payment_method_id]
        card["balance"] = round(card["balance"] - difference, 2)
    for old_id, new_id in zip(item_ids, new_item_ids):
        # Earlier pairs have renamed their items already, so duplicate old ids reach successive copies.
        item = next(item for item in order["items"] if item["item_id"] == old_id)
        variant = db["products"][item["product_id"]]["variants"][new_id]
        item["item_id"] = new_id
        item["price"] = variant["price"]
        item["options"] = copy.deepcopy(variant["options"])
    order["status"] = "pending (item modified)"
    return json.dumps(order)


def exchange_delivered_order_items(
    db: Db, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Request an exchange of delivered items; only the order's status and exchange fields change."""
    checked = _check_item_swap(db, order_id, item_ids, new_item_ids, payment_method_id, status="delivered",
                               status_error="Error: non-delivered order cannot be exchanged",
                               balance_error="Error: insufficient gift card balance to pay for the price difference",
                               round_difference=True)
    if isinstance(checked, str):
        return checked
    _, difference = checked
    order = writable_record(db, "orders", order_id)
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)  # sorted on its own: the pairing is not kept
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = difference
    return json.dumps(order)


def return_delivered_order_items(db: Db, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Request a return of delivered items, refunded to the original method or a gift card."""
    order = db["orders"].get(order_id)
    if order is None:
        return "Error: order not found"
    if order["status"] != "delivered":
        return "Error: non-delivered order cannot be returned"
    if payment_method_id not in db["users"][order["user_id"]]["payment_methods"]:
        return "Error: payment method not found"
    original_method_id = order["payment_history"][0]["payment_method_id"]
    if "gift_card" not in payment_method_id and payment_method_id != original_method_id:
        return "Error: payment method should be either the original payment method or a gift card"
    if _first_overcounted(item_ids, order["items"]) is not None:
        return "Error: some item not found"

    order = writable_record(db, "orders", order_id)
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return json.dumps(order)


def modify_user_address(
    db: Db, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str  # noqa: A002
) -> str:
    """Replace a user's default address (no status precondition)."""
    if user_id not in db["users"]:
        return "Error: user not found"
    user = writable_record(db, "users", user_id)
    user["address"] = _new_address(address1, address2, city, state, country, zip)
    return json.dumps(user)
