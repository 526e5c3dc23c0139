"""The `arithmetic` env: seeded procedural problems, G attempts per problem.

For the tiny model the prompt is the bare expression (`23+45=`) and the reply must be the bare
number; for chat models the prompt is a sentence and the answer goes in `\\boxed{}`. A fixed
stream of held-out problems (the same for every run seed) is the test set; training never draws
them, so held-out accuracy measures generalisation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import chz

from cookbook.renderers.base import Message
from cookbook.rl.types import EnvGroupBuilder, RLDataset, RLDatasetBuilder
from cookbook_math.arithmetic import (
    ArithmeticProblem,
    ArithmeticSettings,
    heldout_problems,
    sample_train_problem,
)
from cookbook_math.env import GradingOptions, MathGroupBuilder

if TYPE_CHECKING:
    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer

TAG = "arithmetic"


def arithmetic_messages(problem: ArithmeticProblem, is_tiny: bool) -> list[Message]:
    """The prompt conversation for `problem` (compact for the tiny model)."""
    content = problem.compact_prompt() if is_tiny else problem.chat_prompt()
    return [Message(role="user", content=content)]


def arithmetic_target(problem: ArithmeticProblem, is_tiny: bool) -> str:
    """The ideal reply (what supervised warm-starting trains on)."""
    return str(problem.answer) if is_tiny else f"\\boxed{{{problem.answer}}}"


def arithmetic_grading(is_tiny: bool, format_reward: float) -> GradingOptions:
    """Tiny model: the reply must be exactly the number. Chat model: `\\boxed{}` earns the
    format reward, but the last number also counts for correctness."""
    if is_tiny:
        return GradingOptions("last_number", "last_number", format_reward, symbolic=False)
    return GradingOptions("auto", "boxed", format_reward, symbolic=False)


@chz.chz
class ArithmeticEnvBuilder(RLDatasetBuilder):
    """Procedurally generated arithmetic (`23+45=` -> `68`), seeded, single turn."""

    operations: str = chz.field(default="+", doc="Operators to draw from, any of +-*/ (e.g. +-*).")
    digits: int = chz.field(default=2, doc="Digits per operand (1-9).")
    num_operands: int = chz.field(default=2, doc="Operands per problem (2-8).")
    allow_negative: bool = chz.field(default=False, doc="Allow negative answers.")
    format_reward: float = chz.field(
        default=0.1, doc="Extra reward for a well-formed reply (added to 1 for correct)."
    )
    num_test: int = chz.field(
        default=200, doc="Held-out problems (the test set; never drawn for training)."
    )
    num_batches: int = chz.field(default=100_000, doc="Training batches available.")

    @chz.validate
    def _check(self) -> None:
        self.settings().validate()
        if self.num_test < 0 or self.num_batches < 1:
            from cookbook.errors import UserError

            raise UserError("num_test must be >= 0 and num_batches >= 1")

    def settings(self) -> ArithmeticSettings:
        """The difficulty options as one value."""
        return ArithmeticSettings(
            self.operations, self.digits, self.num_operands, self.allow_negative
        )

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """Train: fresh problems per batch, seeded by `ctx.seed`. Test: the held-out set, one
        attempt per problem."""
        settings = self.settings()
        grading = arithmetic_grading(ctx.is_tiny, self.format_reward)
        heldout = heldout_problems(settings, self.num_test)
        train = ArithmeticDataset(
            settings=settings,
            renderer=ctx.renderer,
            is_tiny=ctx.is_tiny,
            grading=grading,
            seed=ctx.seed,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            num_batches=self.num_batches,
            heldout=frozenset(p.expression for p in heldout),
        )
        test = (
            FixedProblemsDataset(heldout, ctx.renderer, ctx.is_tiny, grading, ctx.groups_per_batch)
            if heldout
            else None
        )
        return train, test


def _group(
    problem: ArithmeticProblem,
    renderer: Renderer,
    is_tiny: bool,
    grading: GradingOptions,
    group_size: int,
) -> MathGroupBuilder:
    return MathGroupBuilder(
        messages=arithmetic_messages(problem, is_tiny),
        gold=str(problem.answer),
        renderer=renderer,
        grading=grading,
        group_size=group_size,
        tags=[TAG],
    )


class ArithmeticDataset(RLDataset):
    """Batch `i` is `groups_per_batch` problems drawn from a RNG seeded by (seed, i)."""

    def __init__(
        self,
        *,
        settings: ArithmeticSettings,
        renderer: Renderer,
        is_tiny: bool,
        grading: GradingOptions,
        seed: int,
        groups_per_batch: int,
        group_size: int,
        num_batches: int,
        heldout: frozenset[str],
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.grading = grading
        self.seed = seed
        self.groups_per_batch = groups_per_batch
        self.group_size = group_size
        self.num_batches = num_batches
        self.heldout = heldout

    def problems(self, index: int) -> list[ArithmeticProblem]:
        """The problems of batch `index`."""
        rng = random.Random(f"arithmetic-train:{self.seed}:{index}")
        return [
            sample_train_problem(rng, self.settings, self.heldout)
            for _ in range(self.groups_per_batch)
        ]

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """One group of `group_size` attempts per problem."""
        return [
            _group(p, self.renderer, self.is_tiny, self.grading, self.group_size)
            for p in self.problems(index)
        ]

    def __len__(self) -> int:
        return self.num_batches


class FixedProblemsDataset(RLDataset):
    """A fixed list of problems in batches, one attempt each (a test set)."""

    def __init__(
        self,
        problems: list[ArithmeticProblem],
        renderer: Renderer,
        is_tiny: bool,
        grading: GradingOptions,
        groups_per_batch: int,
    ) -> None:
        self.problems = problems
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.grading = grading
        self.groups_per_batch = max(1, groups_per_batch)

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """Problems `[index * groups_per_batch, (index + 1) * groups_per_batch)`."""
        start = index * self.groups_per_batch
        chunk = self.problems[start : start + self.groups_per_batch]
        return [_group(p, self.renderer, self.is_tiny, self.grading, 1) for p in chunk]

    def __len__(self) -> int:
        return -(-len(self.problems) // self.groups_per_batch)
