"""Procedural arithmetic problems: seeded, with difficulty options, answers computed exactly.

Pure Python (no heavy imports). Problems follow the usual precedence (`*` and `/` before `+` and
`-`, left to right) and every answer is an integer: a dividend is drawn as a multiple of the
divisors of its term, so `/` always divides exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from cookbook.errors import UserError

OPERATIONS = "+-*/"
HELDOUT_SALT = "cookbook-math-arithmetic-heldout"
"""Seeds the held-out problem stream: the same for every run seed, so evals stay comparable."""


@dataclass(frozen=True)
class ArithmeticSettings:
    """The difficulty of a problem family."""

    operations: str = "+"
    """Operators to draw from, any of `+-*/` (e.g. `+-` or `+-*`)."""
    digits: int = 2
    """Digits per operand (dividends of `/` can be longer: they are multiples of the divisor)."""
    num_operands: int = 2
    """Operands per problem."""
    allow_negative: bool = False
    """Allow negative answers (otherwise problems with a negative answer are redrawn)."""

    def validate(self) -> None:
        """Raise `UserError` on settings that cannot make problems."""
        if not self.operations or any(op not in OPERATIONS for op in self.operations):
            raise UserError(
                f"operations={self.operations!r} is not valid; use one or more of {OPERATIONS!r}, e.g. operations=+-"
            )
        if not 1 <= self.digits <= 9:
            raise UserError(f"digits={self.digits} is out of range; use 1 to 9")
        if not 2 <= self.num_operands <= 8:
            raise UserError(f"num_operands={self.num_operands} is out of range; use 2 to 8")

    def space_size(self) -> int:
        """A rough count of distinct problems (for deciding how many can be held out)."""
        lo, hi = operand_range(self.digits)
        return (hi - lo + 1) ** self.num_operands * len(set(self.operations)) ** (
            self.num_operands - 1
        )


@dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: `operands[0] operators[0] operands[1] ...` and its integer answer."""

    operands: tuple[int, ...]
    operators: tuple[str, ...]
    answer: int

    @property
    def expression(self) -> str:
        """Compact form, `23+45`."""
        return self._join("")

    @property
    def spaced_expression(self) -> str:
        """Readable form, `23 + 45`."""
        return self._join(" ")

    def _join(self, sep: str) -> str:
        parts = [str(self.operands[0])]
        for op, x in zip(self.operators, self.operands[1:], strict=True):
            parts += [op, str(x)]
        return sep.join(parts)

    def compact_prompt(self) -> str:
        """The prompt for the tiny model: `23+45=` (every byte costs compute on CPU)."""
        return f"{self.expression}="

    def chat_prompt(self) -> str:
        """The prompt for a chat model."""
        return (
            f"What is {self.spaced_expression}? "
            "Give the final answer as an integer in \\boxed{}, for example \\boxed{42}."
        )


def operand_range(digits: int) -> tuple[int, int]:
    """Smallest and largest operand with `digits` digits (0-9 for one digit)."""
    return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1


def evaluate(operands: tuple[int, ...], operators: tuple[str, ...]) -> Fraction:
    """The exact value of the expression, with `*` `/` binding tighter than `+` `-`."""
    total = Fraction(0)
    sign = 1
    term = Fraction(operands[0])
    for op, x in zip(operators, operands[1:], strict=True):
        if op == "*":
            term *= x
        elif op == "/":
            term /= x
        else:
            total += sign * term
            sign = 1 if op == "+" else -1
            term = Fraction(x)
    return total + sign * term


def _draw(rng: random.Random, settings: ArithmeticSettings) -> ArithmeticProblem:
    lo, hi = operand_range(settings.digits)
    n = settings.num_operands
    operators = tuple(rng.choice(settings.operations) for _ in range(n - 1))
    operands = [rng.randint(lo, hi) for _ in range(n)]
    # Divisors are never zero; each term's first operand becomes a multiple of all its divisors,
    # so every left-to-right division inside the term is exact.
    term_start, divisor_product = 0, 1
    for i, op in enumerate((*operators, "+")):
        if op == "/":
            operands[i + 1] = rng.randint(max(lo, 1), hi)
            divisor_product *= operands[i + 1]
        elif op in "+-":
            if divisor_product > 1:
                operands[term_start] = rng.randint(max(lo, 1), hi) * divisor_product
            term_start, divisor_product = i + 1, 1
    value = evaluate(tuple(operands), operators)
    assert value.denominator == 1, "dividends are multiples of their divisors"
    return ArithmeticProblem(tuple(operands), operators, int(value))


def sample_problem(rng: random.Random, settings: ArithmeticSettings) -> ArithmeticProblem:
    """One problem drawn with `rng` (negative answers redrawn unless allowed)."""
    problem = _draw(rng, settings)
    for _ in range(1000):
        if settings.allow_negative or problem.answer >= 0:
            break
        problem = _draw(rng, settings)
    return problem


def heldout_problems(settings: ArithmeticSettings, count: int) -> list[ArithmeticProblem]:
    """The first `count` distinct problems of the held-out stream (fewer when the problem space
    is small: at most half of it is held out, so training still has problems left)."""
    count = min(count, settings.space_size() // 2)
    rng = random.Random(f"{HELDOUT_SALT}:{settings}")
    seen: set[str] = set()
    problems: list[ArithmeticProblem] = []
    for _ in range(50 * count + 100):
        if len(problems) >= count:
            break
        problem = sample_problem(rng, settings)
        if problem.expression not in seen:
            seen.add(problem.expression)
            problems.append(problem)
    return problems


def sample_train_problem(
    rng: random.Random, settings: ArithmeticSettings, heldout: frozenset[str]
) -> ArithmeticProblem:
    """A problem whose expression is not in `heldout` (redrawn a bounded number of times)."""
    problem = sample_problem(rng, settings)
    for _ in range(100):
        if problem.expression not in heldout:
            break
        problem = sample_problem(rng, settings)
    return problem
