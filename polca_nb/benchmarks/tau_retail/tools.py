"""The 16 retail tools as data: schema (what the model sees) plus implementation `fn(db, **kwargs)`.

`TOOLS` keeps the upstream listing order. `tool_schemas("anthropic")` gives Messages-API tool
definitions; `tool_schemas("openai")` the function-calling form upstream sends. Every parameter
is required. Descriptions are written from the behavioural spec, not copied from upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from ...errors import StopRun
from . import read_tools, write_tools
from .data import Db

TERMINATE_TOOLS = frozenset({"transfer_to_human_agents"})

_STRING = {"type": "string"}
_ORDER_ID = {
    "type": "string",
    "description": "The order id, such as '#W0000000'. Be careful: the '#' is part of the id.",
}
_USER_ID = {"type": "string", "description": "The user id, such as 'sara_doe_496'."}
_PAYMENT_METHOD_ID = {
    "type": "string",
    "description": "A payment method id of the user, such as 'gift_card_0000000' or 'credit_card_0000000'.",
}


def _item_list(what: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string"},
        "description": f"{what}, each an item id such as '1008292230'. An id may be listed more than once.",
    }


def _address_properties(whose: str) -> dict[str, Any]:
    return {
        "address1": {"type": "string", "description": f"First line of the {whose} address, such as '123 Main St'."},
        "address2": {"type": "string", "description": f"Second line of the {whose} address, such as 'Apt 1' or ''."},
        "city": {"type": "string", "description": "The city, such as 'San Francisco'."},
        "state": {"type": "string", "description": "The state, such as 'CA'."},
        "country": {"type": "string", "description": "The country, such as 'USA'."},
        "zip": {"type": "string", "description": "The zip code, such as '12345'."},
    }


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its model-facing schema and its implementation `fn(db, **kwargs) -> observation`."""

    name: str
    description: str
    properties: Mapping[str, Any]
    fn: Callable[..., str]
    writes: bool = False

    @property
    def required(self) -> list[str]:
        return list(self.properties)

    def input_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": dict(self.properties), "required": self.required}

    def anthropic_schema(self) -> dict[str, Any]:
        """Messages-API tool definition: {name, description, input_schema}."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema()}

    def openai_schema(self) -> dict[str, Any]:
        """Function-calling tool definition, the form upstream τ-bench sends."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.input_schema()},
        }

    def __call__(self, db: Db, **kwargs: Any) -> str:
        return self.fn(db, **kwargs)


_SPECS = (
    ToolSpec(
        "calculate",
        "Calculate the result of an arithmetic expression made of numbers, the operators + - * /, "
        "parentheses and spaces. The result is rounded to 2 decimals.",
        {"expression": {"type": "string", "description": "The expression, such as '2 + 2' or '(135.24 - 153.23) * 2'."}},
        read_tools.calculate,
    ),
    ToolSpec(
        "cancel_pending_order",
        "Cancel a pending order, only after the user explicitly confirms the details (yes). Gift-card "
        "payments are refunded at once; other payment methods are refunded within 5 to 7 business days. "
        "Returns the order details after the cancellation.",
        {
            "order_id": _ORDER_ID,
            "reason": {
                "type": "string",
                "enum": list(write_tools.CANCEL_REASONS),
                "description": "Why the order is cancelled: 'no longer needed' or 'ordered by mistake'.",
            },
        },
        write_tools.cancel_pending_order,
        writes=True,
    ),
    ToolSpec(
        "exchange_delivered_order_items",
        "Exchange items of a delivered order for other available variants of the same products, only "
        "after the user explicitly confirms the details (yes). A delivered order can be returned or "
        "exchanged only once, so include every item to exchange in this one call. The status becomes "
        "'exchange requested' and the user receives a follow-up email.",
        {
            "order_id": _ORDER_ID,
            "item_ids": _item_list("The items of the order to exchange"),
            "new_item_ids": _item_list(
                "The replacement items, position by position: the i-th new item replaces the i-th item "
                "and must be a variant of the same product"
            ),
            "payment_method_id": {
                **_PAYMENT_METHOD_ID,
                "description": _PAYMENT_METHOD_ID["description"] + " It pays or receives the price difference.",
            },
        },
        write_tools.exchange_delivered_order_items,
        writes=True,
    ),
    ToolSpec(
        "find_user_id_by_email",
        "Find a user's id from their email address. Returns an error if no user has this email.",
        {"email": {"type": "string", "description": "The email, such as 'something@example.com'."}},
        read_tools.find_user_id_by_email,
    ),
    ToolSpec(
        "find_user_id_by_name_zip",
        "Find a user's id from their first name, last name and zip code. Prefer the email lookup; use "
        "this one only when the user cannot give an email or the email lookup failed.",
        {
            "first_name": {"type": "string", "description": "The first name, such as 'John'."},
            "last_name": {"type": "string", "description": "The last name, such as 'Doe'."},
            "zip": {"type": "string", "description": "The zip code, such as '12345'."},
        },
        read_tools.find_user_id_by_name_zip,
    ),
    ToolSpec(
        "get_order_details",
        "Get the status and details of an order.",
        {"order_id": _ORDER_ID},
        read_tools.get_order_details,
    ),
    ToolSpec(
        "get_product_details",
        "Get the inventory details of a product type, with all its variant items. The product id is "
        "not the same as an item id.",
        {"product_id": {"type": "string", "description": "The product id, such as '6086499569'."}},
        read_tools.get_product_details,
    ),
    ToolSpec(
        "get_user_details",
        "Get a user's details: name, address, email, payment methods and orders.",
        {"user_id": _USER_ID},
        read_tools.get_user_details,
    ),
    ToolSpec(
        "list_all_product_types",
        "List the name and product id of every product type. There are 50 product types.",
        {},
        read_tools.list_all_product_types,
    ),
    ToolSpec(
        "modify_pending_order_address",
        "Change the shipping address of a pending order, only after the user explicitly confirms the "
        "details (yes).",
        {"order_id": _ORDER_ID, **_address_properties("shipping")},
        write_tools.modify_pending_order_address,
        writes=True,
    ),
    ToolSpec(
        "modify_pending_order_items",
        "Modify items of a pending order to other available variants of the same products, only after "
        "the user explicitly confirms the details (yes). This can be done only once per order, so "
        "include every item to change in this one call.",
        {
            "order_id": _ORDER_ID,
            "item_ids": _item_list("The items of the order to modify"),
            "new_item_ids": _item_list(
                "The new items, position by position: the i-th new item replaces the i-th item and must "
                "be a variant of the same product"
            ),
            "payment_method_id": {
                **_PAYMENT_METHOD_ID,
                "description": _PAYMENT_METHOD_ID["description"] + " It pays or receives the price difference.",
            },
        },
        write_tools.modify_pending_order_items,
        writes=True,
    ),
    ToolSpec(
        "modify_pending_order_payment",
        "Change the payment method of a pending order, only after the user explicitly confirms the "
        "details (yes).",
        {"order_id": _ORDER_ID, "payment_method_id": _PAYMENT_METHOD_ID},
        write_tools.modify_pending_order_payment,
        writes=True,
    ),
    ToolSpec(
        "modify_user_address",
        "Change a user's default address, only after the user explicitly confirms the details (yes).",
        {"user_id": _USER_ID, **_address_properties("default")},
        write_tools.modify_user_address,
        writes=True,
    ),
    ToolSpec(
        "return_delivered_order_items",
        "Return items of a delivered order, only after the user explicitly confirms the details (yes). "
        "The status becomes 'return requested' and the user receives a follow-up email about how and "
        "where to send the items back.",
        {
            "order_id": _ORDER_ID,
            "item_ids": _item_list("The items of the order to return"),
            "payment_method_id": {
                **_PAYMENT_METHOD_ID,
                "description": _PAYMENT_METHOD_ID["description"]
                + " It receives the refund and must be the original payment method or a gift card.",
            },
        },
        write_tools.return_delivered_order_items,
        writes=True,
    ),
    ToolSpec(
        "think",
        "Think about something or take notes. This gets no new information and changes nothing; use it "
        "for reasoning that needs a scratchpad.",
        {"thought": {"type": "string", "description": "The thought."}},
        read_tools.think,
    ),
    ToolSpec(
        "transfer_to_human_agents",
        "Transfer the user to a human agent, with a summary of the issue. Only do this when the user "
        "explicitly asks for a human agent, or when the request cannot be handled with the other tools.",
        {"summary": {"type": "string", "description": "A summary of the user's issue."}},
        read_tools.transfer_to_human_agents,
    ),
)

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in _SPECS}
"""Tool name -> spec, in upstream listing order."""


def tool_schemas(style: Literal["anthropic", "openai"] = "anthropic") -> list[dict[str, Any]]:
    """All 16 tool definitions in listing order, for the Messages API or the OpenAI function format."""
    if style == "anthropic":
        return [spec.anthropic_schema() for spec in TOOLS.values()]
    if style == "openai":
        return [spec.openai_schema() for spec in TOOLS.values()]
    raise ValueError(f"style must be 'anthropic' or 'openai', got {style!r}")


def execute_tool(db: Db, name: str, kwargs: Mapping[str, Any]) -> str:
    """The observation of one tool call: its return value, or "Error: <exception message>" for any
    exception (bad or missing kwargs included). `name` must be a known tool."""
    if name not in TOOLS:
        raise ValueError(f"name must be one of the {len(TOOLS)} retail tools, got {name!r}")
    try:
        return TOOLS[name].fn(db, **kwargs)
    except StopRun:
        raise
    except Exception as error:  # noqa: BLE001 -- upstream turns every tool failure into an observation
        return f"Error: {error}"
