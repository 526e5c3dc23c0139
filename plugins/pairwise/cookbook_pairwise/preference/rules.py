"""Programmatic preference models: a hidden property of the text decides, so "better" is
unambiguous and measurable offline.

Each rule scores one completion; the higher score wins and equal scores tie. The score is also
what the `pairwise` env logs as `env/score` (and `env/monitor_score` for a monitor), so a run
shows the property itself going up, not only wins within a group.

- `vowels`: the share of the completion's characters that are vowels (a, e, i, o, u).
- `length`: closeness of the completion's length in characters to a target.
"""

from __future__ import annotations

from abc import abstractmethod

import chz

from cookbook.errors import UserError
from cookbook.preference.types import (
    TIE_TOLERANCE,
    PreferenceModel,
    PreferenceModelBuilder,
    Verdict,
)


class ScoreRule(PreferenceModel):
    """A preference model from a score: the higher-scoring completion wins, equal ones tie."""

    @abstractmethod
    def score(self, prompt: str, text: str) -> float:
        """The hidden property of `text` (higher is better)."""

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        """1 when `first` scores higher, 0 when `second` does, 0.5 when equal."""
        a, b = self.score(prompt, first), self.score(prompt, second)
        if abs(a - b) <= TIE_TOLERANCE:
            return Verdict(0.5)
        return Verdict(1.0 if a > b else 0.0)


class VowelShare(ScoreRule):
    """Prefers the completion with the larger share of vowels (0 for an empty one)."""

    def __init__(self, vowels: str = "aeiou") -> None:
        self.vowels = frozenset(vowels.lower() + vowels.upper())

    def score(self, prompt: str, text: str) -> float:
        """Vowels / characters."""
        if not text:
            return 0.0
        return sum(c in self.vowels for c in text) / len(text)


class TargetLength(ScoreRule):
    """Prefers the completion whose length in characters is closer to `target`."""

    def __init__(self, target: int) -> None:
        self.target = target

    def score(self, prompt: str, text: str) -> float:
        """Minus the distance of the length from the target."""
        return -float(abs(len(text) - self.target))


@chz.chz
class VowelsBuilder(PreferenceModelBuilder):
    """Prefers the completion with the larger share of vowels (a hidden rule for tests and
    benchmarks: an RL policy should learn to write vowels)."""

    vowels: str = chz.field(default="aeiou", doc="The characters that count as vowels.")

    @chz.validate
    def _check(self) -> None:
        if not self.vowels:
            raise UserError("the vowels preference model needs at least one vowel character")

    def __call__(self) -> PreferenceModel:
        """The rule."""
        return VowelShare(self.vowels)


@chz.chz
class LengthBuilder(PreferenceModelBuilder):
    """Prefers the completion whose length in characters is closer to `target` (`length:12`)."""

    arg_field = "target"

    target: int = chz.field(default=10, doc="The preferred length in characters.")

    @chz.validate
    def _check(self) -> None:
        if self.target < 0:
            raise UserError(f"the length preference model's target must be >= 0, got {self.target}")

    def __call__(self) -> PreferenceModel:
        """The rule."""
        return TargetLength(self.target)
