"""Envs over problem files: `gsm8k-file` (word problems, answer after `####`) and `math-file`
(competition problems, answer in `\\boxed{}`).

Problems come from a local JSONL or Parquet file with configurable field names (by default the
small demo sets shipped with this plugin), or from the Hugging Face hub when `hub_dataset` is set
(needs `datasets` and network; never used by tests). Without a test file, a stable hash of each
question holds out `test_fraction` of the problems.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import Message
from cookbook.rl.types import EnvGroupBuilder, RLDataset, RLDatasetBuilder
from cookbook_math.answers import AnswerMode
from cookbook_math.env import GradingOptions, MathGroupBuilder
from cookbook_math.grader import DEFAULT_TIMEOUT_S
from cookbook_math.records import (
    DEMO_FILES,
    MathRecord,
    load_hub_records,
    load_records,
    split_records,
)

if TYPE_CHECKING:
    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer


WORD_PROBLEM_INSTRUCTION = (
    "Solve step by step, then give the final answer on its own line as #### <number>."
)
COMPETITION_INSTRUCTION = "Solve the problem, then put the final answer in \\boxed{}."


def record_messages(record: MathRecord, instruction: str) -> list[Message]:
    """The prompt conversation: the problem, then the answer-format instruction."""
    content = f"{record.question}\n\n{instruction}" if instruction else record.question
    return [Message(role="user", content=content)]


@chz.chz
class ProblemSource:
    """Where problems come from and how to read them. Subclassed by the env and eval builders
    so both read the same file the same way."""

    path: str | None = chz.field(
        default=None, doc="A .jsonl or .parquet file of problems (default: the bundled demo set)."
    )
    test_path: str | None = chz.field(
        default=None, doc="A separate test file (default: hold out test_fraction of path)."
    )
    test_fraction: float = chz.field(
        default=0.2, doc="Share of problems held out for testing when there is no test_path."
    )
    question_field: str = chz.field(default="question", doc="Field holding the problem text.")
    answer_field: str = chz.field(
        default="answer", doc="Field holding the answer or the solution ending in it."
    )
    hub_dataset: str | None = chz.field(
        default=None, doc="Load from the Hugging Face hub instead (needs `datasets`, network)."
    )
    hub_config: str | None = chz.field(default=None, doc="The hub dataset's config name.")
    hub_split: str = chz.field(default="train", doc="The hub split to train on.")
    hub_test_split: str | None = chz.field(default="test", doc="The hub split to test on.")

    @chz.validate
    def _check_source(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise UserError(f"test_fraction={self.test_fraction} must be in [0, 1)")

    def demo_file(self) -> str:
        """The bundled file used when `path` is not set."""
        return str(DEMO_FILES["word_problems"])

    def load(self) -> tuple[list[MathRecord], list[MathRecord]]:
        """`(train, test)` problems."""
        fields = {"question_field": self.question_field, "answer_field": self.answer_field}
        if self.hub_dataset is not None:
            train = load_hub_records(
                self.hub_dataset, config=self.hub_config, split=self.hub_split, **fields
            )
            test = (
                load_hub_records(
                    self.hub_dataset, config=self.hub_config, split=self.hub_test_split, **fields
                )
                if self.hub_test_split
                else []
            )
            return train, test
        records = load_records(self.path or self.demo_file(), **fields)
        if self.test_path is not None:
            return records, load_records(self.test_path, **fields)
        return split_records(records, self.test_fraction)


@chz.chz
class WordProblemsEnvBuilder(ProblemSource, RLDatasetBuilder):
    """GSM8K-style word problems from a local file; the model ends with `#### <answer>`."""

    instruction: str = chz.field(
        default=WORD_PROBLEM_INSTRUCTION,
        doc="Appended to each problem.",
    )
    answer_mode: AnswerMode = chz.field(
        default="auto", doc="Where the answer is read from: boxed, hash, last_number or auto."
    )
    format_mode: AnswerMode = chz.field(
        default="hash", doc="The answer form that earns the format reward."
    )
    format_reward: float = chz.field(default=0.1, doc="Extra reward for a well-formed reply.")
    symbolic: bool = chz.field(
        default=True, doc="Compare non-numeric answers symbolically (math-verify)."
    )
    grade_timeout_s: float = chz.field(
        default=DEFAULT_TIMEOUT_S, doc="Time limit of one symbolic comparison, in seconds."
    )
    num_epochs: int = chz.field(default=10, doc="Passes over the training problems.")

    def grading(self) -> GradingOptions:
        """The grading options of this env."""
        return GradingOptions(
            self.answer_mode,
            self.format_mode,
            self.format_reward,
            self.symbolic,
            self.grade_timeout_s,
        )

    def tag(self) -> str:
        """The logging tag of this env's groups."""
        return "gsm8k-file"

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """Train: shuffled each epoch by `ctx.seed`, G attempts per problem. Test: one attempt
        per held-out problem."""
        train_records, test_records = self.load()
        if not train_records:
            raise UserError(
                "no training problems left after holding out the test split; lower test_fraction"
            )

        def dataset(records: list[MathRecord], *, train: bool) -> RecordsDataset:
            return RecordsDataset(
                records,
                renderer=ctx.renderer,
                grading=self.grading(),
                instruction=self.instruction,
                seed=ctx.seed if train else 0,
                groups_per_batch=ctx.groups_per_batch,
                group_size=ctx.group_size if train else 1,
                num_epochs=self.num_epochs if train else 1,
                shuffle=train,
                tag=self.tag(),
            )

        train = dataset(train_records, train=True)
        test = dataset(test_records, train=False) if test_records else None
        return train, test


@chz.chz
class CompetitionEnvBuilder(WordProblemsEnvBuilder):
    """MATH-style competition problems from a local file; the answer goes in `\\boxed{}`."""

    question_field: str = chz.field(default="problem", doc="Field holding the problem text.")
    answer_field: str = chz.field(
        default="solution", doc="Field holding the answer or a solution with \\boxed{answer}."
    )
    instruction: str = chz.field(
        default=COMPETITION_INSTRUCTION,
        doc="Appended to each problem.",
    )
    format_mode: AnswerMode = chz.field(
        default="boxed", doc="The answer form that earns the format reward."
    )

    def demo_file(self) -> str:
        """The bundled competition-style set."""
        return str(DEMO_FILES["competition"])

    def tag(self) -> str:
        """The logging tag of this env's groups."""
        return "math-file"


class RecordsDataset(RLDataset):
    """Batches of `groups_per_batch` problems walking through the records epoch after epoch
    (reshuffled each epoch when `shuffle`)."""

    def __init__(
        self,
        records: list[MathRecord],
        *,
        renderer: Renderer,
        grading: GradingOptions,
        instruction: str,
        seed: int,
        groups_per_batch: int,
        group_size: int,
        num_epochs: int,
        shuffle: bool,
        tag: str,
    ) -> None:
        self.records = records
        self.renderer = renderer
        self.grading = grading
        self.instruction = instruction
        self.seed = seed
        self.groups_per_batch = max(1, groups_per_batch)
        self.group_size = group_size
        self.num_epochs = num_epochs
        self.shuffle = shuffle
        self.tag = tag
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.records)))
            if self.shuffle:
                random.Random(f"records:{self.seed}:{epoch}").shuffle(order)
            self._orders[epoch] = order
        return self._orders[epoch]

    def batch_records(self, index: int) -> list[MathRecord]:
        """The problems of batch `index` (the last batch of the last epoch may be short)."""
        n = len(self.records)
        end = min((index + 1) * self.groups_per_batch, n * self.num_epochs)
        return [
            self.records[self._order(pos // n)[pos % n]]
            for pos in range(index * self.groups_per_batch, end)
        ]

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """One group of `group_size` attempts per problem."""
        return [
            MathGroupBuilder(
                messages=record_messages(r, self.instruction),
                gold=r.answer,
                renderer=self.renderer,
                grading=self.grading,
                group_size=self.group_size,
                tags=[self.tag],
            )
            for r in self.batch_records(index)
        ]

    def __len__(self) -> int:
        return -(-len(self.records) * self.num_epochs // self.groups_per_batch)
