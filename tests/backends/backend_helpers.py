"""Datum builders shared by the local backend tests."""

from __future__ import annotations

import numpy as np
from tinker import types

TEXT = "the quick brown fox jumps over the lazy dog. "


def ce_datum(tokens: list[int], weights: list[float] | None = None) -> types.Datum:
    """A cross-entropy datum for the full sequence `tokens` (input shifted by one)."""
    n = len(tokens) - 1
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": _ints(tokens[1:]),
            "weights": _floats(weights if weights is not None else [1.0] * n),
        },
    )


def rl_datum(
    tokens: list[int], sampling_logprobs: list[float], advantages: list[float]
) -> types.Datum:
    """An RL datum (importance_sampling / ppo / cispo / dro inputs)."""
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": _ints(tokens[1:]),
            "logprobs": _floats(sampling_logprobs),
            "advantages": _floats(advantages),
        },
    )


def random_tokens(rng: np.random.Generator, n: int, vocab: int = 256) -> list[int]:
    """`n` random token ids below `vocab`."""
    return [int(x) for x in rng.integers(0, vocab, size=n)]


def _ints(values: list[int]) -> types.TensorData:
    return types.TensorData.from_numpy(np.asarray(values, dtype=np.int64))


def _floats(values: list[float]) -> types.TensorData:
    return types.TensorData.from_numpy(np.asarray(values, dtype=np.float32))
