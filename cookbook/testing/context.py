"""The `BuildContext` the contract checks build with: the built-in tiny model, small batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.build_context import BuildContext


def tiny_context(seed: int = 0, group_size: int = 4, groups_per_batch: int = 4) -> BuildContext:
    """A `BuildContext` for the built-in tiny model (byte tokenizer, tiny chat format), with
    small batches: what the checks build with unless given another context."""
    from cookbook.build_context import BuildContext
    from cookbook.tokenizers import ByteTokenizer

    return BuildContext.for_model(
        "tiny", ByteTokenizer(), seed=seed, group_size=group_size, groups_per_batch=groups_per_batch
    )
