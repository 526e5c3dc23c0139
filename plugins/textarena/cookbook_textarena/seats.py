"""Which seat the policy takes. Seats are textarena's player ids: 0 moves first, 1 answers.

Against a fixed opponent the env's `seat` option picks the policy's seat per group (a group's
games share a seat, so its advantages compare like with like); an eval's `seat` option picks the
seats its games cycle through.
"""

from __future__ import annotations

ENV_SEATS = ("first", "second", "alternate")
"""Values of an env builder's `seat` field."""

EVAL_SEATS = ("both", "first", "second")
"""Values of an eval builder's `seat` field."""


def policy_seat(mode: str, group_index: int) -> int:
    """The policy's seat in group `group_index` of a run (`mode` is one of `ENV_SEATS`):
    `alternate` takes the first seat in even groups and the second in odd ones."""
    if mode == "first":
        return 0
    if mode == "second":
        return 1
    if mode == "alternate":
        return group_index % 2
    raise ValueError(f"unknown seat mode {mode!r}; expected one of {ENV_SEATS}")


def eval_seats(mode: str) -> tuple[int, ...]:
    """The seats an eval's games cycle through (`mode` is one of `EVAL_SEATS`): game i is played
    in seat `seats[i % len(seats)]`."""
    if mode == "both":
        return (0, 1)
    if mode == "first":
        return (0,)
    if mode == "second":
        return (1,)
    raise ValueError(f"unknown eval seat {mode!r}; expected one of {EVAL_SEATS}")
