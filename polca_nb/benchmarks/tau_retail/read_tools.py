"""The read-only retail tools: lookups, product listing, calculator, think, transfer.

Each is `fn(db, **kwargs) -> str`; records come back as `json.dumps` of the stored record (default
separators, ASCII-escaped, insertion key order). None of them writes to `db`.
"""

from __future__ import annotations

import json

from .calculator import calculate_text
from .data import Db

TRANSFER_OBSERVATION = "Transfer successful"


def calculate(db: Db, expression: str) -> str:
    """Arithmetic on numbers, + - * / and parentheses; the result rounded to 2 decimals."""
    return calculate_text(expression)


def find_user_id_by_email(db: Db, email: str) -> str:
    """The bare user id whose email matches case-insensitively."""
    wanted = email.lower()
    for user_id, user in db["users"].items():
        if user["email"].lower() == wanted:
            return user_id
    return "Error: user not found"


def find_user_id_by_name_zip(db: Db, first_name: str, last_name: str, zip: str) -> str:  # noqa: A002
    """The bare user id with this name (case-insensitive) and exactly this zip."""
    first, last = first_name.lower(), last_name.lower()
    for user_id, user in db["users"].items():
        name = user["name"]
        if (
            name["first_name"].lower() == first
            and name["last_name"].lower() == last
            and user["address"]["zip"] == zip
        ):
            return user_id
    return "Error: user not found"


def get_order_details(db: Db, order_id: str) -> str:
    """The order record as JSON."""
    if order_id not in db["orders"]:
        return "Error: order not found"
    return json.dumps(db["orders"][order_id])


def get_product_details(db: Db, product_id: str) -> str:
    """The product record, all variants included, as JSON."""
    if product_id not in db["products"]:
        return "Error: product not found"
    return json.dumps(db["products"][product_id])


def get_user_details(db: Db, user_id: str) -> str:
    """The user record (profile, payment methods, order ids) as JSON."""
    if user_id not in db["users"]:
        return "Error: user not found"
    return json.dumps(db["users"][user_id])


def list_all_product_types(db: Db) -> str:
    """JSON object product name -> product id, sorted by name."""
    names = {product["name"]: product_id for product_id, product in db["products"].items()}
    return json.dumps(dict(sorted(names.items())))


def think(db: Db, thought: str) -> str:
    """A scratchpad: returns nothing and changes nothing."""
    return ""


def transfer_to_human_agents(db: Db, summary: str) -> str:
    """Hand-off to a human; the env ends the episode when this tool is called."""
    return TRANSFER_OBSERVATION
