"""What a length limit does to examples: each one longer than `max_length` tokens is truncated
or dropped, and both are counted, so the user is told what was cut."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from cookbook.supervised.datums import datum_length, make_datum

if TYPE_CHECKING:
    from tinker import types as tinker_types


class LongExamples(StrEnum):
    """What to do with an example longer than `max_length` tokens."""

    TRUNCATE = "truncate"
    """Keep its first `max_length` tokens (dropped anyway if no trained token is left)."""
    DROP = "drop"
    """Leave it out."""


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
    kept: list[int] = field(default_factory=list)
    """Index of each kept example among the examples given."""

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
    for i, datum in enumerate(datums_D):
        fitted = fit_datum(datum, max_length, mode)
        if fitted is None:
            report.dropped += 1
            continue
        if fitted is not datum:
            report.truncated += 1
        kept.append(fitted)
        report.kept.append(i)
    return kept, report
