"""The calculator tool: exact arithmetic on text a model wrote, never `eval()`.

The expression is parsed by Python's `ast` in `eval` mode (parsing runs nothing) and walked here:
only numbers, `+ - * /`, unary signs and parentheses are accepted, in exact rational arithmetic
(`fractions.Fraction`). Everything else (names, calls, attributes, `**`, comparisons, strings,
very long input, huge numbers) is refused with a short reason, which the env shows the policy
as the tool's answer.
"""

from __future__ import annotations

import ast
from fractions import Fraction

MAX_CHARS = 80
"""Longest expression accepted."""
MAX_DIGITS = 40
"""Largest magnitude of any intermediate result, in decimal digits."""

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class CalculatorError(ValueError):
    """The expression cannot be computed; the message says why (one short line)."""


def calculate(expression: str) -> Fraction:
    """The exact value of `expression`, or `CalculatorError`."""
    text = expression.strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"expression longer than {MAX_CHARS} characters")
    if not text.isascii():
        raise CalculatorError("non-ASCII characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: null bytes
        raise CalculatorError("not an arithmetic expression") from None
    return _value(tree.body)


def _value(node: ast.expr) -> Fraction:
    constant = node.value if isinstance(node, ast.Constant) else None
    if isinstance(constant, int | float) and not isinstance(constant, bool):
        try:
            value = Fraction(constant)
        except (OverflowError, ValueError):  # inf, nan
            raise CalculatorError("not a finite number") from None
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        value = -inner if isinstance(node.op, ast.USub) else inner
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise CalculatorError("division by zero")
        value = _BINARY[type(node.op)](left, right)
    else:
        what = node.op if isinstance(node, ast.BinOp | ast.UnaryOp) else node
        raise CalculatorError(f"{type(what).__name__} is not allowed (numbers and + - * / only)")
    if abs(value.numerator) >= 10**MAX_DIGITS or value.denominator >= 10**MAX_DIGITS:
        raise CalculatorError(f"a number with more than {MAX_DIGITS} digits")
    return value


def format_number(value: Fraction) -> str:
    """An integer as such (`3920`), any other value as a reduced fraction (`7/3`)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def parse_number(text: str) -> Fraction | None:
    """A number as a model may write one (`3920`, `-12`, `7/3`, `2.5`), or None."""
    stripped = text.strip().replace(",", "")
    if not stripped or len(stripped) > MAX_CHARS or not stripped.isascii():
        return None
    try:
        return Fraction(stripped)
    except (ValueError, ZeroDivisionError):
        return None
