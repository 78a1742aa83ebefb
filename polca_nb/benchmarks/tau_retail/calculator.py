"""The `calculate` tool's arithmetic: Python expression semantics without `eval`.

Upstream filters the characters and then evaluates with Python, so results and error messages are
Python's (true division, `**`, `//`, SyntaxError texts). Walking the parsed tree gives the same
results while refusing powers too large to compute, where `eval` would hang.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from typing import Any, Callable

from ...errors import StopRun

ALLOWED_CHARACTERS = frozenset("0123456789+-*/(). ")
MAX_POWER_DIGITS = 100_000
"""Refuse integer powers with more digits than this; float() of anything above ~309 digits fails anyway."""

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * math.log10(abs(base)) > MAX_POWER_DIGITS:
            raise OverflowError("exponent too large")
    return operator.pow(base, exponent)


def _evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if type(node.op) in _BINARY:
            return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Tuple) and not node.elts:
        return ()
    if isinstance(node, ast.Call):
        # Only numbers, () and ... can appear, none callable: mirror Python's order and message.
        function = _evaluate(node.func)
        for argument in node.args:
            _evaluate(argument.value if isinstance(argument, ast.Starred) else argument)
        raise TypeError(f"'{type(function).__name__}' object is not callable")
    raise ValueError(f"unsupported expression element {type(node).__name__}")


def evaluate_expression(expression: str) -> Any:
    """The Python value of an arithmetic expression (raises what Python would raise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "(1)(2)": Python warns at compile time
        tree = compile(expression.strip(" "), "<string>", "eval", ast.PyCF_ONLY_AST)
    return _evaluate(tree)


def calculate_text(expression: str) -> str:
    """The `calculate` tool's observation, errors included."""
    if not isinstance(expression, str) or not set(expression) <= ALLOWED_CHARACTERS:
        return "Error: invalid characters in expression"
    try:
        return str(round(float(evaluate_expression(expression)), 2))
    except StopRun:
        raise
    except Exception as error:  # noqa: BLE001 -- every failure becomes an observation, as upstream
        return f"Error: {error}"
