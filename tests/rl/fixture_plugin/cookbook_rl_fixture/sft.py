"""`fixture-sft`: conversations whose assistant reply is 'a' (warm-start data)."""

from __future__ import annotations

import chz
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.renderers.base import TrainOnWhat
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook_rl_fixture.crash import crash_once


class ReplyDataset(SupervisedDataset):
    def __init__(
        self, data: list[tinker_types.Datum], batch_size: int, builder: ReplyDatasetBuilder
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.builder = builder
        self.epoch = 0

    def set_epoch(self, seed: int = 0) -> None:
        self.epoch = seed

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        b = self.builder
        if b.crash_marker and self.epoch * len(self) + index == b.crash_at_batch:
            crash_once(b.crash_marker)
        return self.data[index * self.batch_size : (index + 1) * self.batch_size]

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size


@chz.chz
class ReplyDatasetBuilder(SupervisedDatasetBuilder):
    """`num_examples` conversations."""

    num_examples: int = 16
    """Examples in the dataset."""
    crash_at_batch: int = -1
    """SIGKILL the process when batch N (counted over epochs) is asked for (-1: never)..."""
    crash_marker: str = ""
    """... unless this file exists (it is created at the crash, so a rerun goes on)."""

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        data = []
        for i in range(self.num_examples):
            letter = chr(ord("a") + i % 26)
            tokens, weights = ctx.renderer.build_supervised_example(
                [
                    {"role": "user", "content": f"say {letter}"},
                    {"role": "assistant", "content": letter},
                ],
                TrainOnWhat.LAST_ASSISTANT_MESSAGE,
            )
            data.append(
                tinker_types.Datum(
                    model_input=tinker_types.ModelInput.from_ints(tokens[:-1]),
                    loss_fn_inputs={
                        "target_tokens": tinker_types.TensorData(data=tokens[1:], dtype="int64"),
                        "weights": tinker_types.TensorData(data=weights[1:], dtype="float32"),
                    },
                )
            )
        return ReplyDataset(data, ctx.groups_per_batch, self), None
