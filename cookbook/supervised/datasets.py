"""Datasets of fixed datums: batches in an order reshuffled per epoch, and the seeded held-out
split. Both orders are functions of seeds, so a resumed run sees the same batches."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.supervised.types import SupervisedDataset

if TYPE_CHECKING:
    from tinker import types as tinker_types


class DatumDataset(SupervisedDataset):
    """A fixed list of datums served in batches, in an order reshuffled for each epoch.

    There are `max(1, len // batch_size)` batches; the last one takes the remainder, so every
    example is used once per epoch and no batch is tiny. The order of epoch `e` depends only on
    `(seed, e)`, so a resumed run replays the same batches.
    """

    def __init__(
        self,
        datums_D: Sequence[tinker_types.Datum],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        counts: dict[str, int] | None = None,
        sources_D: Sequence[str] | None = None,
    ) -> None:
        if not datums_D:
            raise ValueError("DatumDataset needs at least one datum")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        if sources_D is not None and len(sources_D) != len(datums_D):
            raise ValueError(f"{len(sources_D)} sources for {len(datums_D)} datums")
        self.datums_D = list(datums_D)
        self.sources_D = None if sources_D is None else list(sources_D)
        """Where each datum came from (`file:line`), for errors about it; None: unknown."""
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.counts: dict[str, int] = dict(counts or {})
        """Numbers about how the data was made (skipped lines, truncations...), for logs."""
        self._order = list(range(len(self.datums_D)))
        self.set_epoch(0)

    def __len__(self) -> int:
        return max(1, len(self.datums_D) // self.batch_size)

    def set_epoch(self, seed: int = 0) -> None:
        """Order the examples for epoch `seed` (a function of the dataset seed and `seed`)."""
        self._order = list(range(len(self.datums_D)))
        if self.shuffle:
            # A string seed is hashed deterministically (unlike hash()), across processes too.
            random.Random(f"{self.seed}/{seed}").shuffle(self._order)

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"batch {index} out of range (dataset has {n} batches)")
        start = index * self.batch_size
        end = len(self.datums_D) if index == n - 1 else start + self.batch_size
        return [self.datums_D[i] for i in self._order[start:end]]

    def batch_sources(self, index: int) -> list[str] | None:
        """Where each datum of batch `index` came from (None when unknown)."""
        if self.sources_D is None:
            return None
        start = index * self.batch_size
        end = len(self.datums_D) if index == len(self) - 1 else start + self.batch_size
        return [self.sources_D[i] for i in self._order[start:end]]


def all_datums(dataset: SupervisedDataset) -> list[tinker_types.Datum]:
    """Every datum of one epoch of `dataset`, batch by batch."""
    if isinstance(dataset, DatumDataset):
        return list(dataset.datums_D)
    return [d for i in range(len(dataset)) for d in dataset.get_batch(i)]


def split_held_out(n: int, test_fraction: float, split_seed: int) -> tuple[list[int], list[int]]:
    """Indices `(train, test)` of `n` examples: a seeded random `test_fraction` held out (at
    least one example when the fraction is positive, and never all of them)."""
    if not 0.0 <= test_fraction < 1.0:
        raise UserError(f"test_fraction must be in [0, 1), got {test_fraction}")
    order = list(range(n))
    random.Random(split_seed).shuffle(order)
    n_test = round(n * test_fraction)
    if test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    return sorted(order[n_test:]), sorted(order[:n_test])
