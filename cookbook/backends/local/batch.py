"""Datums to padded arrays, validating the whole batch first.

A bad batch fails here, before any tensor is touched, with one line that names the datum and
the field. Arrays are right-padded: padding sits after each row's tokens, so causal attention
alone keeps it away from real positions and the mask only has to drop it from the loss.
Cross-entropy also takes top-K targets: `target_tokens` and `weights` of shape `[N, K]` (K
candidate tokens per position, each with its weight); the batch then carries `[B, T, K]`.

`pack_rows` lays the datums out for the model: several short datums share a row (back to
back, positions restarting at 0 at each) so the forward pass does not compute padding.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tinker import TinkerError, types

from cookbook.backends.local.losses import LOSS_CONFIG_DEFAULTS, LOSS_INPUTS
from cookbook.errors import UserError


class BadRequestError(UserError, ValueError):
    """A request the local backend refuses (bad datum, unknown loss, bad config); nothing ran.
    A `ValueError`, as the SDK raises for arguments it refuses before sending them."""


class UnsupportedError(UserError, TinkerError):
    """An SDK feature the local backend does not have (the SDK's `TinkerError`)."""


@dataclass
class PreparedBatch:
    """A validated batch as right-padded arrays (`B` datums, `T` the longest)."""

    tokens_B_T: np.ndarray
    """Input ids (int64), padding filled with a valid id."""
    targets_B_T_K: np.ndarray
    """`target_tokens` (int64) as `[B, T, K]` (K = 1 for plain targets), padding 0."""
    mask_B_T: np.ndarray
    """True at real positions."""
    lengths_B: list[int]
    """Tokens of each datum."""
    top_k: int | None = None
    """K when the targets are top-K (`[N, K]` per datum), None for plain `[N]` targets."""
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    """Float `loss_fn_inputs` (weights, logprobs, advantages, ...) as `[B, T]` float32 (weights
    `[B, T, K]` with top-K targets), padding 0."""


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
        config[key] = _config_number(key, value)
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


def _config_number(key: str, value: object) -> float:
    """A config value as a float: a number, or a string holding one (the SDK sends both)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadRequestError(
            f"loss_fn_config[{key!r}] must be a finite number (or a string of one), got {value!r}"
        )
    return number


def prepare_batch(
    data: Sequence[types.Datum],
    required: Sequence[str],
    *,
    optional: Sequence[str] = (),
    accept_extra: bool,
    vocab_size: int,
    context_length: int,
    pad_token_id: int,
    what: str,
    allow_top_k: bool = False,
) -> PreparedBatch:
    """Validate `data` and pad it.

    `required` are the `loss_fn_inputs` that must be there and `optional` those that may (one
    value per token); with `accept_extra` other inputs pass through unchecked (custom losses
    read them), otherwise they are refused. `allow_top_k` lets `target_tokens` (and `weights`)
    be `[N, K]`. `what` names the loss in messages.
    """
    if not data:
        raise BadRequestError(f"{what}: empty batch; pass at least one Datum")
    known = (*required, *optional)
    tokens_D: list[np.ndarray] = []
    columns: dict[str, list[np.ndarray]] = {k: [] for k in known}
    top_k: int | None = None
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
                if key not in known:
                    raise BadRequestError(
                        f"{what}: datum {i}: loss_fn_inputs[{key!r}] is not an input of this "
                        f"loss (it takes {', '.join(known)})"
                    )
        for key in known:
            if key not in inputs:
                continue
            arr = _input_array(inputs[key], what, i, key)
            if arr.ndim == 2 and allow_top_k and key in ("target_tokens", "weights"):
                k = arr.shape[1]
                if top_k is None and key == "target_tokens":
                    top_k = k
                if k != top_k or k < 1:
                    raise BadRequestError(
                        f"{what}: datum {i}: loss_fn_inputs[{key!r}] has shape "
                        f"{list(arr.shape)}; top-K targets and weights need the same K in every "
                        f"datum ({top_k})"
                    )
            elif arr.ndim != 1:
                raise BadRequestError(
                    f"{what}: datum {i}: loss_fn_inputs[{key!r}] has shape {list(arr.shape)}; "
                    "give one value per input token"
                    + (" (or [N, K] top-K targets and weights)" if allow_top_k else "")
                )
            if arr.shape[0] != n:
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
    for key in optional:
        if columns[key] and len(columns[key]) != len(data):
            raise BadRequestError(f"{what}: {key!r} is on some datums only; give it on all")
    if top_k is not None and any(a.ndim != 2 for a in columns.get("target_tokens", [])):
        raise BadRequestError(f"{what}: mix of [N] and [N, K] target_tokens; use one shape")

    lengths = [len(t) for t in tokens_D]
    b, t = len(tokens_D), max(lengths)
    k = top_k or 1
    tokens = np.full((b, t), pad_token_id, dtype=np.int64)
    targets = np.zeros((b, t, k), dtype=np.int64)
    mask = np.zeros((b, t), dtype=bool)
    float_fields = [key for key in known if key != "target_tokens" and columns[key]]
    fields: dict[str, np.ndarray] = {}
    for key in float_fields:
        shape = (b, t, k) if key == "weights" and top_k is not None else (b, t)
        fields[key] = np.zeros(shape, dtype=np.float32)
    for i, n in enumerate(lengths):
        tokens[i, :n] = tokens_D[i]
        mask[i, :n] = True
        if columns.get("target_tokens"):
            targets[i, :n] = columns["target_tokens"][i].reshape(n, k)
        for key in float_fields:
            col = columns[key][i]
            fields[key][i, :n] = col if fields[key].ndim == 2 else col.reshape(n, k)

    _check_ids(tokens, mask, vocab_size, what, "model_input")
    if columns.get("target_tokens"):
        _check_ids(targets, mask, vocab_size, what, "loss_fn_inputs['target_tokens']")
    for key in float_fields:
        bad = ~np.isfinite(fields[key])
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise BadRequestError(f"{what}: datum {i}: loss_fn_inputs[{key!r}] has NaN or inf")
    return PreparedBatch(tokens, targets, mask, lengths, top_k, fields)


def _input_array(td: types.TensorData, what: str, i: int, key: str) -> np.ndarray:
    try:
        return np.asarray(td.to_numpy())
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequestError(
            f"{what}: datum {i}: loss_fn_inputs[{key!r}] is unreadable: {exc}"
        ) from None


def _check_ids(ids_B_T: np.ndarray, mask_B_T: np.ndarray, vocab: int, what: str, name: str) -> None:
    if ids_B_T.ndim == 3:  # top-K targets: check every candidate of a real position
        mask_B_T = np.broadcast_to(mask_B_T[:, :, None], ids_B_T.shape)
    bad = mask_B_T & ((ids_B_T < 0) | (ids_B_T >= vocab))
    if bad.any():
        where = tuple(int(x) for x in np.argwhere(bad)[0])
        i, j = where[0], where[1]
        raise BadRequestError(
            f"{what}: datum {i}: {name} has token id {int(ids_B_T[where])} at position {j}, "
            f"outside the vocabulary [0, {vocab})"
        )


PACK_WHEN_SAVING = 0.1
"""Pack only when it removes at least this share of the padded positions (a packed row needs
an attention mask where a padded one has plain causal attention)."""


@dataclass
class RowLayout:
    """Where the real positions of a padded `[B, T]` batch go in the rows the model runs on."""

    rows: int
    width: int
    source_N: np.ndarray
    """Flat index into the padded `[B, T]` arrays of every real position, datum by datum."""
    dest_N: np.ndarray
    """Flat index of the same positions in the `[rows, width]` layout."""
    packed: bool
    """Rows hold several datums (else row i is datum i, as in the padded arrays)."""

    def tokens_and_positions(self, tokens_B_T: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's input ids `[rows, width]` and, when packed, positions (restarting at 0
        where a datum begins; 0 on padding, so a padding position starts a sequence of its
        own and sees nothing but itself)."""
        if not self.packed:
            return tokens_B_T, None
        tokens = np.zeros(self.rows * self.width, dtype=np.int64)
        tokens[self.dest_N] = tokens_B_T.reshape(-1)[self.source_N]
        positions = np.zeros(self.rows * self.width, dtype=np.int64)
        positions[self.dest_N] = self.source_N % tokens_B_T.shape[1]
        shape = (self.rows, self.width)
        return tokens.reshape(shape), positions.reshape(shape)


def pack_rows(lengths_B: Sequence[int], width: int) -> RowLayout:
    """Datums of `lengths_B` tokens in rows of `width` (at least the longest): best-fit
    decreasing, each datum whole in one row; unpacked when packing saves little."""
    lengths = np.asarray(lengths_B, dtype=np.int64)
    b = len(lengths)
    starts_B = np.arange(b, dtype=np.int64) * width
    source_N = _ranges(starts_B, lengths)
    real = int(lengths.sum())
    # A lower bound on the packed rows first: when even it saves too little, skip the search.
    if b < 2 or -(-real // width) * width > (1 - PACK_WHEN_SAVING) * b * width:
        return RowLayout(b, width, source_N, source_N, packed=False)
    free: list[tuple[int, int]] = []  # (room left, row), sorted
    row_B = np.empty(b, dtype=np.int64)
    offset_B = np.empty(b, dtype=np.int64)
    rows = 0
    for i in sorted(range(b), key=lambda j: -lengths_B[j]):
        n = int(lengths[i])
        k = bisect.bisect_left(free, (n, -1))
        if k == len(free):
            row, room = rows, width
            rows += 1
        else:
            room, row = free.pop(k)
        row_B[i], offset_B[i] = row, width - room
        if room - n > 0:
            bisect.insort(free, (room - n, row))
    if rows * width > (1 - PACK_WHEN_SAVING) * b * width:
        return RowLayout(b, width, source_N, source_N, packed=False)
    dest_N = _ranges(row_B * width + offset_B, lengths)
    return RowLayout(rows, width, source_N, dest_N, packed=True)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`concat(arange(s, s + n) for s, n in zip(starts, lengths))`, vectorised."""
    ends = np.cumsum(lengths)
    offsets = np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64)
    return offsets + np.repeat(starts - (ends - lengths), lengths)
