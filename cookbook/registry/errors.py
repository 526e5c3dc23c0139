"""Wording shared by the registry's user-facing errors: kind names and did-you-mean hints.

Registry errors reach the user as `cookbook.errors.UserError`; `PluginError` is internal and
marks a distribution broken (it never escapes the catalog)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from cookbook.registry.specs import Kind, normalize_distribution

__all__ = [
    "KINDS",
    "PLURALS",
    "PluginError",
    "a_kind",
    "close_matches",
    "did_you_mean",
    "label",
    "normalize_distribution",
]

KINDS: tuple[Kind, ...] = ("env", "dataset", "eval", "preference_model")
"""Every kind, in display order."""

PLURALS: dict[Kind, str] = {
    "env": "envs",
    "dataset": "datasets",
    "eval": "evals",
    "preference_model": "preference-models",
}
"""`cookbook list envs` and friends."""


class PluginError(Exception):
    """A plugin broke the contract (bad spec, wrong hook). Marks its distribution broken."""


def label(kind: Kind) -> str:
    """The kind in prose: `env`, ..., `preference model`."""
    return kind.replace("_", " ")


def a_kind(kind: Kind) -> str:
    """`an env`, `a dataset`, `an eval`, `a preference model`."""
    return f"an {label(kind)}" if kind[0] in "aeiou" else f"a {label(kind)}"


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Candidates that look like a typo of `word`, best first."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, ` (did you mean 'x' or 'y'?)`, or `""` when nothing is close."""
    matches = close_matches(word, candidates)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{m}'" for m in matches) + "?)"
