"""Chat conversations in JSONL to supervised datums.

Loading checks every line and names the file and line of the first bad one (or skips bad lines
and counts them, when asked). Rendering goes through the model's renderer, so SFT trains on the
same chat format RL samples in. Examples longer than a limit are truncated or dropped, and
counted. The held-out split and the per-epoch order are both derived from seeds, so a resumed run
sees the same batches.

`JsonlDatasetBuilder` is the core's `jsonl` dataset:
`cookbook sft --dataset jsonl dataset.path=my.jsonl`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, cast

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import Message, Role, TrainOnWhat
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer

logger = logging.getLogger(__name__)

ROLES: tuple[Role, ...] = ("system", "user", "assistant")


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Conversations:
    """The usable conversations of one JSONL file."""

    path: Path
    conversations: list[list[Message]]
    """One list of messages per usable line, in file order."""
    line_numbers: list[int]
    """The 1-based line each conversation came from (for error messages)."""
    skipped_lines: int = 0
    """Bad lines skipped because the caller asked to skip them."""
    first_skip_reason: str | None = None
    """Why the first skipped line was bad (`line 7: unknown role ...`)."""


def parse_conversation(obj: object) -> list[Message]:
    """The messages of one decoded JSONL line; `ValueError` with the reason if it is not a
    usable conversation (no `messages`, empty, unknown role, no assistant turn...)."""
    if not isinstance(obj, dict):
        raise ValueError(
            f'expected a JSON object like {{"messages": [...]}}, got {type(obj).__name__}'
        )
    if "messages" not in obj:
        keys = ", ".join(repr(k) for k in list(obj)[:5]) or "none"
        raise ValueError(f'no "messages" key (keys found: {keys})')
    raw = obj["messages"]
    if not isinstance(raw, list):
        raise ValueError(f'"messages" must be a list of messages, got {type(raw).__name__}')
    if not raw:
        raise ValueError('empty conversation ("messages" is [])')
    messages: list[Message] = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            raise ValueError(f'message {i} is not an object with "role" and "content"')
        role = m.get("role")
        if role not in ROLES:
            raise ValueError(
                f"message {i} has unknown role {role!r}; use one of: {', '.join(ROLES)}"
            )
        content = m.get("content")
        if not isinstance(content, str):
            raise ValueError(f'message {i} has no string "content"')
        messages.append(Message(role=cast(Role, role), content=content))
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant message to train on")
    return messages


def load_conversations(
    path: str | Path,
    *,
    skip_bad_lines: bool = False,
    skip_option: str = "dataset.skip_bad_lines",
) -> Conversations:
    """Read `path` (one `{"messages": [...]}` object per line; blank lines are ignored).

    A bad line raises `UserError` naming `path:line` and the fix, unless `skip_bad_lines`, in
    which case it is skipped and counted. `skip_option` is the option name the message suggests.
    """
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"dataset file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise UserError(f"dataset path {path} is a directory; give a .jsonl file") from None
    except OSError as e:
        raise UserError(f"cannot read dataset file {path}: {e.strerror}") from None

    conversations: list[list[Message]] = []
    line_numbers: list[int] = []
    skipped = 0
    first_reason: str | None = None
    for lineno, line_bytes in enumerate(raw_bytes.splitlines(), start=1):
        if not line_bytes.strip():
            continue
        try:
            try:
                line = line_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("not valid UTF-8 text") from None
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
            messages = parse_conversation(obj)
        except ValueError as e:
            if not skip_bad_lines:
                raise UserError(
                    f"{path}:{lineno}: {e}; fix the line or set {skip_option}=true to skip "
                    "bad lines"
                ) from None
            skipped += 1
            if first_reason is None:
                first_reason = f"line {lineno}: {e}"
            continue
        conversations.append(messages)
        line_numbers.append(lineno)

    if not conversations:
        detail = f" ({skipped} bad lines skipped, first: {first_reason})" if skipped else ""
        raise UserError(f"{path} has no usable conversations{detail}")
    if skipped:
        logger.warning(
            "%s: skipped %d bad line(s) of %d (first: %s)",
            path,
            skipped,
            skipped + len(conversations),
            first_reason,
        )
    return Conversations(
        path=path,
        conversations=conversations,
        line_numbers=line_numbers,
        skipped_lines=skipped,
        first_skip_reason=first_reason,
    )


# --------------------------------------------------------------------------- datums


class LongExamples(StrEnum):
    """What to do with an example longer than `max_length` tokens."""

    TRUNCATE = "truncate"
    """Keep its first `max_length` tokens (dropped anyway if no trained token is left)."""
    DROP = "drop"
    """Leave it out."""


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


def datum_weight(datum: tinker_types.Datum) -> float:
    """Sum of the datum's loss weights (the number of trained tokens for 0/1 weights)."""
    return float(sum(datum.loss_fn_inputs["weights"].tolist()))


def fit_datum(
    datum: tinker_types.Datum, max_length: int | None, mode: LongExamples
) -> tinker_types.Datum | None:
    """`datum` if it fits in `max_length` tokens; else truncated or `None` (dropped) by `mode`.
    A truncation that leaves no trained token is also `None`: there is nothing to learn."""
    if max_length is None or datum_length(datum) <= max_length:
        return datum
    if mode == LongExamples.DROP:
        return None
    keep = max(max_length - 1, 1)
    weights_T = datum.loss_fn_inputs["weights"].tolist()[:keep]
    if not any(weights_T):
        return None
    return make_datum(
        datum.model_input.to_ints()[:keep],
        datum.loss_fn_inputs["target_tokens"].tolist()[:keep],
        weights_T,
    )


@dataclass
class LengthReport:
    """What a length limit did to a set of examples."""

    max_length: int
    total: int = 0
    truncated: int = 0
    """Examples cut to `max_length` tokens."""
    dropped: int = 0
    """Examples left out (too long with `drop`, or nothing trained left after cutting)."""

    def describe(self, what: str, mode: LongExamples) -> str:
        """One line for the user, e.g. `3 of 288 train examples ... truncated`."""
        return (
            f"{self.truncated + self.dropped} of {self.total} {what} examples are longer than "
            f"max_length={self.max_length} tokens: {self.truncated} truncated, "
            f"{self.dropped} dropped (long_examples={mode.value})"
        )


def fit_datums(
    datums_D: Sequence[tinker_types.Datum], max_length: int, mode: LongExamples
) -> tuple[list[tinker_types.Datum], LengthReport]:
    """Apply `fit_datum` to each datum; returns the kept ones and the counts."""
    report = LengthReport(max_length=max_length, total=len(datums_D))
    kept: list[tinker_types.Datum] = []
    for datum in datums_D:
        fitted = fit_datum(datum, max_length, mode)
        if fitted is None:
            report.dropped += 1
            continue
        if fitted is not datum:
            report.truncated += 1
        kept.append(fitted)
    return kept, report


# --------------------------------------------------------------------------- datasets


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
    ) -> None:
        if not datums_D:
            raise ValueError("DatumDataset needs at least one datum")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.datums_D = list(datums_D)
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

    def num_tokens(self) -> int:
        """Input tokens in one epoch."""
        return sum(d.model_input.length for d in self.datums_D)


def all_datums(dataset: SupervisedDataset) -> list[tinker_types.Datum]:
    """Every datum of one epoch of `dataset`, batch by batch."""
    if isinstance(dataset, DatumDataset):
        return list(dataset.datums_D)
    return [d for i in range(len(dataset)) for d in dataset.get_batch(i)]


def render_conversations(
    conversations: Conversations, renderer: Renderer, train_on_what: TrainOnWhat
) -> list[tinker_types.Datum]:
    """One datum per conversation, rendered by `renderer` (errors name the file and line)."""
    datums_D: list[tinker_types.Datum] = []
    for messages, lineno in zip(
        conversations.conversations, conversations.line_numbers, strict=True
    ):
        try:
            tokens_T, weights_T = renderer.build_supervised_example(messages, train_on_what)
            datums_D.append(datum_from_tokens(tokens_T, weights_T))
        except ValueError as e:
            raise UserError(f"{conversations.path}:{lineno}: cannot render it: {e}") from None
    return datums_D


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

    def load_split(
        self, ctx: BuildContext
    ) -> tuple[list[tinker_types.Datum], list[tinker_types.Datum], dict[str, int]]:
        """Rendered `(train, test)` datums and the counts about them."""
        try:
            train_on_what = TrainOnWhat(self.train_on_what)
        except ValueError:
            choices = ", ".join(t.value for t in TrainOnWhat)
            raise UserError(
                f"train_on_what={self.train_on_what!r} is not one of: {choices}"
            ) from None
        conversations = load_conversations(self.resolved_path(), skip_bad_lines=self.skip_bad_lines)
        datums_D = render_conversations(conversations, ctx.renderer, train_on_what)
        train_idx, test_idx = split_held_out(len(datums_D), self.test_fraction, self.split_seed)
        counts = {
            "conversations": len(datums_D),
            "skipped_lines": conversations.skipped_lines,
            "train_examples": len(train_idx),
            "test_examples": len(test_idx),
        }
        return [datums_D[i] for i in train_idx], [datums_D[i] for i in test_idx], counts

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        train_D, test_D, counts = self.load_split(ctx)
        train = DatumDataset(
            train_D,
            batch_size=ctx.groups_per_batch,
            seed=ctx.seed,
            shuffle=self.shuffle,
            counts=counts,
        )
        test = (
            DatumDataset(test_D, batch_size=ctx.groups_per_batch, shuffle=False, counts=counts)
            if test_D
            else None
        )
        return train, test


__all__ = [
    "Conversations",
    "DatumDataset",
    "JsonlDatasetBuilder",
    "LengthReport",
    "LongExamples",
    "all_datums",
    "datum_from_tokens",
    "datum_length",
    "datum_weight",
    "fit_datum",
    "fit_datums",
    "load_conversations",
    "make_datum",
    "parse_conversation",
    "render_conversations",
    "split_held_out",
]
