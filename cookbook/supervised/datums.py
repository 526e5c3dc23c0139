"""`cross_entropy` datums: one example's tokens and per-token weights, shifted so position i
predicts token i + 1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinker import types as tinker_types


def datum_from_tokens(tokens_T: Sequence[int], weights_T: Sequence[float]) -> tinker_types.Datum:
    """The `cross_entropy` datum of one example: position i reads `tokens_T[i]` and predicts
    `tokens_T[i + 1]` with weight `weights_T[i + 1]`."""
    if len(tokens_T) != len(weights_T):
        raise ValueError(f"{len(tokens_T)} tokens but {len(weights_T)} weights")
    if len(tokens_T) < 2:
        raise ValueError("an example needs at least 2 tokens")
    return make_datum(list(tokens_T[:-1]), list(tokens_T[1:]), list(weights_T[1:]))


def make_datum(
    input_T: list[int], targets_T: Sequence[int], weights_T: Sequence[float]
) -> tinker_types.Datum:
    """A `cross_entropy` datum from its (already shifted) input, targets and weights."""
    import numpy as np
    from tinker import types as tinker_types

    return tinker_types.Datum(
        model_input=tinker_types.ModelInput.from_ints(input_T),
        loss_fn_inputs={
            "target_tokens": tinker_types.TensorData.from_numpy(
                np.asarray(targets_T, dtype=np.int64)
            ),
            "weights": tinker_types.TensorData.from_numpy(np.asarray(weights_T, dtype=np.float32)),
        },
    )


def datum_length(datum: tinker_types.Datum) -> int:
    """Tokens in the example a datum was built from (its input plus the last target)."""
    return datum.model_input.length + 1
