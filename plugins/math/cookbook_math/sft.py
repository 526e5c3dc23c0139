"""`arithmetic-sft`: correct answers to arithmetic problems, for warm-starting a model on the
answer format before RL (pure RL from a random tiny model never sees a reward).

The prompts and the ideal replies are exactly those of the `arithmetic` env (same difficulty
options, same held-out problems excluded), so a warm start trains the format RL then rewards.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook_math.arithmetic import (
    ArithmeticProblem,
    ArithmeticSettings,
    heldout_problems,
    sample_train_problem,
)
from cookbook_math.arithmetic_env import arithmetic_messages, arithmetic_target

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer


def arithmetic_conversation(problem: ArithmeticProblem, is_tiny: bool) -> list[Message]:
    """The prompt and its ideal reply."""
    return [
        *arithmetic_messages(problem, is_tiny),
        Message(role="assistant", content=arithmetic_target(problem, is_tiny)),
    ]


@chz.chz
class ArithmeticSFTBuilder(SupervisedDatasetBuilder):
    """Synthetic correct answers to `arithmetic` problems (training problems only)."""

    operations: str = chz.field(default="+", doc="Operators to draw from, any of +-*/.")
    digits: int = chz.field(default=2, doc="Digits per operand (1-9).")
    num_operands: int = chz.field(default=2, doc="Operands per problem (2-8).")
    allow_negative: bool = chz.field(default=False, doc="Allow negative answers.")
    num_examples: int = chz.field(default=20_000, doc="Training examples per epoch.")
    num_test: int = chz.field(
        default=200, doc="Held-out problems (the test set; same as the arithmetic env's)."
    )

    @chz.validate
    def _check(self) -> None:
        self.settings().validate()
        if self.num_examples < 1 or self.num_test < 0:
            raise UserError("num_examples must be >= 1 and num_test >= 0")

    def settings(self) -> ArithmeticSettings:
        """The difficulty options as one value."""
        return ArithmeticSettings(
            self.operations, self.digits, self.num_operands, self.allow_negative
        )

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Train: `num_examples` problems drawn with `ctx.seed`, never a held-out one. Test: the
        held-out problems. Batches of `ctx.groups_per_batch` examples."""
        settings = self.settings()
        heldout = heldout_problems(settings, self.num_test)
        excluded = frozenset(p.expression for p in heldout)
        rng = random.Random(f"arithmetic-sft:{ctx.seed}")
        train_problems = [
            sample_train_problem(rng, settings, excluded) for _ in range(self.num_examples)
        ]
        batch_size = max(1, ctx.groups_per_batch)
        train = ArithmeticSFTDataset(
            train_problems, ctx.renderer, ctx.is_tiny, batch_size, shuffle_seed=ctx.seed
        )
        test = (
            ArithmeticSFTDataset(heldout, ctx.renderer, ctx.is_tiny, batch_size, shuffle_seed=None)
            if heldout
            else None
        )
        return train, test


class ArithmeticSFTDataset(SupervisedDataset):
    """Datums made on demand from a list of problems, in batches."""

    def __init__(
        self,
        problems: list[ArithmeticProblem],
        renderer: Renderer,
        is_tiny: bool,
        batch_size: int,
        shuffle_seed: int | None,
    ) -> None:
        self.problems = problems
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.batch_size = batch_size
        self.order = list(range(len(problems)))
        self.shuffle_seed = shuffle_seed
        self.set_epoch(0)

    def set_epoch(self, seed: int = 0) -> None:
        """Reshuffle (training set only; the test set keeps its order)."""
        self.order = list(range(len(self.problems)))
        if self.shuffle_seed is not None:
            random.Random(f"arithmetic-sft-epoch:{self.shuffle_seed}:{seed}").shuffle(self.order)

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        """Examples `[index * batch_size, (index + 1) * batch_size)` of the current order."""
        chunk = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        from cookbook.supervised.datums import datum_from_tokens

        data: list[tinker_types.Datum] = []
        for i in chunk:
            conversation = arithmetic_conversation(self.problems[i], self.is_tiny)
            tokens, weights = self.renderer.build_supervised_example(
                conversation, TrainOnWhat.LAST_ASSISTANT_MESSAGE
            )
            data.append(datum_from_tokens(tokens, weights))
        return data

    def __len__(self) -> int:
        return -(-len(self.problems) // self.batch_size)
