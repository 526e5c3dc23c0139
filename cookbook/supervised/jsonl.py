"""The core's `jsonl` dataset: chat conversations from a local JSONL file.

cookbook sft --dataset jsonl dataset.path=my.jsonl
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import TrainOnWhat
from cookbook.supervised.conversations import (
    load_conversations,
    render_conversations,
    sources_of,
)
from cookbook.supervised.datasets import DatumDataset, split_held_out
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext


@chz.chz
class JsonlDatasetBuilder(SupervisedDatasetBuilder):
    """Chat conversations from a local JSONL file, one `{"messages": [{"role": ..., "content":
    ...}, ...]}` per line (roles: system, user, assistant)."""

    path: str | None = chz.field(
        default=None,
        doc="The JSONL file. Default: the demo conversations shipped with cookbook.",
    )
    train_on_what: TrainOnWhat = chz.field(
        default=TrainOnWhat.ALL_ASSISTANT_MESSAGES,
        doc="Which turns carry loss: all_assistant_messages or last_assistant_message.",
    )
    test_fraction: float = chz.field(
        default=0.1, doc="Share of conversations held out for the held-out NLL (0: none)."
    )
    split_seed: int = chz.field(
        default=0, doc="Seed of the held-out split (kept apart from the run seed on purpose)."
    )
    shuffle: bool = chz.field(default=True, doc="Reshuffle the training order every epoch.")
    skip_bad_lines: bool = chz.field(
        default=False, doc="Skip (and count) malformed lines instead of stopping at the first."
    )

    def resolved_path(self) -> Path:
        """The file to read (the shipped demo when `path` is unset)."""
        if self.path is None:
            from cookbook.data import CHAT_DEMO_PATH

            return CHAT_DEMO_PATH
        return Path(self.path).expanduser()

    def check_inputs(self) -> None:
        """The file exists and is a file (before any model loads)."""
        path = self.resolved_path()
        if not path.exists():
            raise UserError(f"dataset file {path} does not exist; check dataset.path")
        if not path.is_file():
            raise UserError(f"dataset path {path} is not a file; give a .jsonl file")
        if not os.access(path, os.R_OK):
            raise UserError(f"dataset file {path} is not readable; check its permissions")

    def load_split(
        self, ctx: BuildContext
    ) -> tuple[list[tinker_types.Datum], list[tinker_types.Datum], dict[str, int]]:
        """Rendered `(train, test)` datums and the counts about them."""
        train, test, counts = self._load(ctx)
        return train.datums_D, (test.datums_D if test else []), counts

    def _load(self, ctx: BuildContext) -> tuple[DatumDataset, DatumDataset | None, dict[str, int]]:
        try:
            train_on_what = TrainOnWhat(self.train_on_what)
        except ValueError:
            choices = ", ".join(t.value for t in TrainOnWhat)
            raise UserError(
                f"train_on_what={self.train_on_what!r} is not one of: {choices}"
            ) from None
        conversations = load_conversations(self.resolved_path(), skip_bad_lines=self.skip_bad_lines)
        datums_D = render_conversations(conversations, ctx.renderer, train_on_what)
        sources_D = sources_of(conversations)
        train_idx, test_idx = split_held_out(len(datums_D), self.test_fraction, self.split_seed)
        counts = {
            "conversations": len(datums_D),
            "skipped_lines": conversations.skipped_lines,
            "train_examples": len(train_idx),
            "test_examples": len(test_idx),
        }
        train = DatumDataset(
            [datums_D[i] for i in train_idx],
            batch_size=ctx.groups_per_batch,
            seed=ctx.seed,
            shuffle=self.shuffle,
            counts=counts,
            sources_D=[sources_D[i] for i in train_idx],
        )
        test = (
            DatumDataset(
                [datums_D[i] for i in test_idx],
                batch_size=ctx.groups_per_batch,
                shuffle=False,
                counts=counts,
                sources_D=[sources_D[i] for i in test_idx],
            )
            if test_idx
            else None
        )
        return train, test, counts

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        train, test, _ = self._load(ctx)
        return train, test
