"""Datums to padded arrays, validating the whole batch first.

A bad batch fails here, before any tensor is touched, with one line that names the datum and
the field. Arrays are right-padded: padding sits after each row's tokens, so causal attention
alone keeps it away from real positions and the mask only has to drop it from the loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tinker import types

from cookbook.backends.local.losses import LOSS_CONFIG_DEFAULTS, LOSS_INPUTS
from cookbook.errors import UserError


class BadRequestError(UserError, ValueError):
    """A request the local backend refuses (bad datum, unknown loss, bad config); nothing ran."""


@dataclass
class PreparedBatch:
    """A validated batch as right-padded arrays (`B` datums, `T` the longest)."""

    tokens_B_T: np.ndarray
    """Input ids (int64), padding filled with a valid id."""
    targets_B_T: np.ndarray
    """`target_tokens` (int64), padding 0."""
    mask_B_T: np.ndarray
    """True at real positions."""
    lengths_B: list[int]
    """Tokens of each datum."""
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    """Float `loss_fn_inputs` (weights, logprobs, advantages) as `[B, T]` float32, padding 0."""


def resolve_loss_config(
    loss_fn: str, loss_fn_config: Mapping[str, float | str] | None
) -> dict[str, float]:
    """The loss's config with defaults filled in; refuses unknown losses and keys."""
    if loss_fn not in LOSS_INPUTS:
        raise BadRequestError(
            f"unknown loss_fn {loss_fn!r}; the local backend has: {', '.join(LOSS_INPUTS)}"
        )
    allowed = LOSS_CONFIG_DEFAULTS[loss_fn]
    config = dict(allowed)
    for key, value in (loss_fn_config or {}).items():
        if key not in allowed:
            takes = ", ".join(allowed) or "no config"
            raise BadRequestError(f"loss_fn_config key {key!r} is not used by {loss_fn} ({takes})")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise BadRequestError(f"loss_fn_config[{key!r}] must be a finite number, got {value!r}")
        config[key] = float(value)
    if "clip_low_threshold" in config and not (
        0.0 <= config["clip_low_threshold"] <= config["clip_high_threshold"]
    ):
        raise BadRequestError(
            "loss_fn_config needs 0 <= clip_low_threshold <= clip_high_threshold (ratios such "
            f"as 0.8 and 1.2), got {config['clip_low_threshold']} and "
            f"{config['clip_high_threshold']}"
        )
    if config.get("beta", 0.0) < 0:
        raise BadRequestError(f"loss_fn_config['beta'] must be >= 0, got {config['beta']}")
    return config


def prepare_batch(
    data: Sequence[types.Datum],
    required: Sequence[str],
    *,
    accept_extra: bool,
    vocab_size: int,
    context_length: int,
    pad_token_id: int,
    what: str,
) -> PreparedBatch:
    """Validate `data` and pad it.

    `required` are the `loss_fn_inputs` that must be there (1-D, one per token); with
    `accept_extra` other inputs pass through unchecked (custom losses read them), otherwise
    they are refused. `what` names the loss in messages.
    """
    if not data:
        raise BadRequestError(f"{what}: empty batch; pass at least one Datum")
    float_fields = [k for k in required if k != "target_tokens"]
    tokens_D: list[np.ndarray] = []
    columns: dict[str, list[np.ndarray]] = {k: [] for k in required}
    for i, datum in enumerate(data):
        if not isinstance(datum, types.Datum):
            raise BadRequestError(f"{what}: datum {i} is a {type(datum).__name__}, not a Datum")
        try:
            ids = datum.model_input.to_ints()
        except ValueError:
            raise BadRequestError(
                f"{what}: datum {i}: model_input has non-token chunks (images); "
                "the local backend takes token chunks only"
            ) from None
        n = len(ids)
        if n == 0:
            raise BadRequestError(f"{what}: datum {i}: model_input is empty")
        if n > context_length:
            raise BadRequestError(
                f"{what}: datum {i}: {n} tokens exceed the model's context of {context_length}"
            )
        inputs = datum.loss_fn_inputs
        for key in required:
            if key not in inputs:
                raise BadRequestError(
                    f"{what}: datum {i}: loss_fn_inputs lacks {key!r} "
                    f"(this loss needs {', '.join(required)})"
                )
        if not accept_extra:
            for key in inputs:
                if key not in required:
                    raise BadRequestError(
                        f"{what}: datum {i}: loss_fn_inputs[{key!r}] is not an input of this "
                        f"loss (it takes {', '.join(required)})"
                    )
        for key in required:
            arr = inputs[key].to_numpy()
            if arr.ndim != 1 or arr.shape[0] != n:
                raise BadRequestError(
                    f"{what}: datum {i}: loss_fn_inputs[{key!r}] has shape {list(arr.shape)} "
                    f"but model_input has {n} tokens; give one value per input token"
                )
            if key == "target_tokens" and arr.dtype.kind not in "iu":
                raise BadRequestError(
                    f"{what}: datum {i}: loss_fn_inputs['target_tokens'] must be integers, "
                    f"got {arr.dtype}"
                )
            columns[key].append(arr)
        tokens_D.append(np.asarray(ids, dtype=np.int64))

    lengths = [len(t) for t in tokens_D]
    b, t = len(tokens_D), max(lengths)
    tokens = np.full((b, t), pad_token_id, dtype=np.int64)
    targets = np.zeros((b, t), dtype=np.int64)
    mask = np.zeros((b, t), dtype=bool)
    fields = {k: np.zeros((b, t), dtype=np.float32) for k in float_fields}
    for i, n in enumerate(lengths):
        tokens[i, :n] = tokens_D[i]
        mask[i, :n] = True
        if "target_tokens" in columns:
            targets[i, :n] = columns["target_tokens"][i]
        for k in float_fields:
            fields[k][i, :n] = columns[k][i]

    _check_ids(tokens, mask, vocab_size, what, "model_input")
    if "target_tokens" in columns:
        _check_ids(targets, mask, vocab_size, what, "loss_fn_inputs['target_tokens']")
    for k in float_fields:
        bad = ~np.isfinite(fields[k])
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise BadRequestError(f"{what}: datum {i}: loss_fn_inputs[{k!r}] has NaN or inf")
    return PreparedBatch(tokens, targets, mask, lengths, fields)


def _check_ids(ids_B_T: np.ndarray, mask_B_T: np.ndarray, vocab: int, what: str, name: str) -> None:
    bad = mask_B_T & ((ids_B_T < 0) | (ids_B_T >= vocab))
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise BadRequestError(
            f"{what}: datum {i}: {name} has token id {int(ids_B_T[i, j])} at position {j}, "
            f"outside the vocabulary [0, {vocab})"
        )
