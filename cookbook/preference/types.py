"""The preference-model contract: what a plugin registers with `register_preference_models` and
what pairwise envs and evals (the `cookbook-env-pairwise` plugin) rely on.

A `PreferenceModel` compares two completions of one prompt and returns a `Verdict`: how strongly
it prefers the first (1), the second (0) or neither (0.5). A model that cannot answer for one pair
(an error, an unparseable reply) raises; the caller counts the failure and drops that pair only.

The contract, checked by `cookbook check NAME` (`cookbook/testing/preference_checks.py`):
- symmetric: `compare(p, a, b).p_first` equals `1 - compare(p, b, a).p_first` within a small
  tolerance (a model judge asks in both orders to get there: position bias cancels);
- deterministic: the same comparison gives the same verdict, also from a second build;
- bounded: one comparison returns within the caller's time limit (it is async: never block the
  event loop with long computations).

A `PreferenceModelBuilder` is the chz config that builds one (what a plugin registers); its fields
are the model's options. Only light imports here: plugins import this module while being listed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import chz

TIE_TOLERANCE = 1e-9
"""`p_first` this close to 0.5 is a tie."""


@dataclass(frozen=True)
class Verdict:
    """One comparison of a first and a second completion of the same prompt."""

    p_first: float
    """Preference for the first completion in [0, 1]: 1 first better, 0 second better, 0.5 tie
    (for model judges, the probability that the first is better)."""
    orders_agree: bool | None = None
    """For judges that look at both orders: whether both picked the same winner. `None` for
    models whose answer cannot depend on the order (programmatic rules)."""
    by_order: tuple[float, float] | None = None
    """For two-order judges: the preference for the first completion when it was shown first,
    and when it was shown second (their mean is `p_first`; a gap is position bias)."""

    @property
    def is_tie(self) -> bool:
        """Neither completion is preferred."""
        return abs(self.p_first - 0.5) <= TIE_TOLERANCE

    @property
    def winner(self) -> int:
        """0 when the first wins, 1 when the second wins, -1 for a tie."""
        if self.is_tie:
            return -1
        return 0 if self.p_first > 0.5 else 1

    def swapped(self) -> Verdict:
        """The same verdict seen from the second completion."""
        by_order = None if self.by_order is None else (1 - self.by_order[1], 1 - self.by_order[0])
        return Verdict(1.0 - self.p_first, self.orders_agree, by_order)


class JudgeOutputError(Exception):
    """A judge's reply could not be read as a preference (not A, B or tie)."""


class PreferenceModel(ABC):
    """Compares two completions of one prompt."""

    @abstractmethod
    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        """Which of `first` and `second` answers `prompt` better. Raises when it cannot tell
        (the caller counts that pair as a judge failure)."""


@chz.chz
class PreferenceModelBuilder:
    """A chz config whose call builds a `PreferenceModel` (loading whatever it needs: weights,
    a client). Subclass it and override `__call__`.

    `arg_field` names the field that the short form `NAME:ARG` sets where a preference model is
    named in one string (`trained:runs/judge` sets `path`); `None` when it takes no argument."""

    arg_field: ClassVar[str | None] = None

    def __call__(self) -> PreferenceModel:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__()")
