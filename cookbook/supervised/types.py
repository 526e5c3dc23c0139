"""The supervised contracts: a `SupervisedDatasetBuilder` (chz config, what a dataset plugin
registers) builds a `SupervisedDataset` of batches of `tinker.types.Datum` for `cross_entropy`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import chz

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext


class SupervisedDataset(ABC):
    """Batches of datums. Each datum has `loss_fn_inputs` `target_tokens` and `weights`."""

    @abstractmethod
    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        """Batch `index` of the current epoch."""

    @abstractmethod
    def __len__(self) -> int:
        """Batches per epoch."""

    def set_epoch(self, seed: int = 0) -> None:
        """Reshuffle for a new epoch (default: keep the order)."""
        return None


@chz.chz
class SupervisedDatasetBuilder:
    """A chz config whose call builds `(train, test | None)`. Its fields are the dataset's options,
    set on the command line as `dataset.FIELD=value`. Subclass it and override `__call__`."""

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx)")

    def check_inputs(self) -> None:
        """Cheap checks of what the build will read (a file that must exist, ...), run before
        anything heavy and before the run directory is made; raise `UserError` with the fix.
        The default checks nothing."""
        return None
