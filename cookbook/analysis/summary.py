"""Final and best values of metrics per run, and their mean and spread over the seeds of a
group: the numbers `cookbook report` prints.

A metric is chosen by name or glob pattern (`reward/mean`, `eval/*/win_rate`), optionally with
the direction that counts as better (`train/loss:min`); without one, names that read as costs
(loss, nll, error, illegal, time, kl) are minimised and the rest maximised.
"""

from __future__ import annotations

import fnmatch
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cookbook.analysis.runs import WALL_TIME, Run
from cookbook.errors import UserError
from cookbook.registry.errors import did_you_mean

Mode = Literal["max", "min"]

DEFAULT_METRICS = (
    "reward/mean",
    "env/win",
    "train/loss",
    "test/nll",
    "eval/*/win_rate",
    "eval/*/accuracy",
    "test/*/accuracy",
)
"""Shown when no `--metric` is given: those of these patterns some run logged."""
_MAX_DEFAULT = 6
_COST_WORDS = re.compile(r"loss|nll|perplexity|ppl|error|illegal|time|kl|staleness")


@dataclass(frozen=True)
class MetricChoice:
    """A metric to report and which direction is better."""

    name: str
    mode: Mode


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one run."""

    final: float
    """The last logged value."""
    final_step: int
    best: float
    """The best logged value (max or min, by the metric's mode)."""
    best_step: int
    points: int
    """How many records logged it."""


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of a value over the runs of a group."""

    mean: float
    std: float
    """0 for a single run."""
    n: int


@dataclass
class Group:
    """Runs that share every param except their seed."""

    params: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`learning_rate=1e-3 group_size=4` (or `all runs` when nothing sets groups apart)."""
        return " ".join(f"{k}={v}" for k, v in self.params.items()) or "all runs"


def default_mode(name: str) -> Mode:
    """`min` for names that read as costs, else `max`."""
    return "min" if _COST_WORDS.search(name.lower()) else "max"


def is_seed_key(key: str) -> bool:
    """`seed`, `env.seed`: keys that only replicate an experiment."""
    return key.rsplit(".", 1)[-1] == "seed"


def choose_metrics(runs: Sequence[Run], requested: Sequence[str] | None) -> list[MetricChoice]:
    """The metrics to report: the requested names or patterns (`name:min` / `name:max` pick
    the direction), else the defaults some run logged. A name no run logged is a one-line
    `UserError` with a did-you-mean."""
    logged: dict[str, None] = {}
    for run in runs:
        logged.update(dict.fromkeys(run.metric_names()))
    if not requested:
        chosen = [name for pattern in DEFAULT_METRICS for name in _matching(pattern, logged)]
        if not chosen:
            chosen = [n for n in logged if not n.startswith(("time/", "progress/"))][:3]
        return [MetricChoice(name, default_mode(name)) for name in _unique(chosen)[:_MAX_DEFAULT]]
    out: list[MetricChoice] = []
    for item in requested:
        pattern, _, mode_text = item.rpartition(":") if _has_mode(item) else (item, "", "")
        names = _matching(pattern, logged)
        if not names:
            if not logged:
                raise UserError(f"no metric '{pattern}': the runs logged no metrics yet")
            hint = did_you_mean(pattern, logged) or (
                "; logged: " + ", ".join(list(logged)[:8]) + (", ..." if len(logged) > 8 else "")
            )
            raise UserError(f"no run logged a metric '{pattern}'{hint}")
        for name in names:
            mode: Mode = "min" if mode_text == "min" else "max" if mode_text else default_mode(name)
            out.append(MetricChoice(name, mode))
    return list({choice.name: choice for choice in out}.values())


def summarize_run(run: Run, choice: MetricChoice) -> MetricSummary | None:
    """Final and best value of `choice` in `run` (`None` if the run never logged it)."""
    series = run.series(choice.name)
    if not series:
        return None
    final_step, final = series[-1]
    pick = max if choice.mode == "max" else min
    best_step, best = pick(series, key=lambda point: point[1])
    return MetricSummary(
        final=final, final_step=final_step, best=best, best_step=best_step, points=len(series)
    )


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Runs grouped by their params other than seeds, in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], Group] = {}
    for run in runs:
        params = {k: v for k, v in run.params.items() if not is_seed_key(k)}
        key = tuple(params.items())
        groups.setdefault(key, Group(params=params)).runs.append(run)
    return list(groups.values())


def spread(values: Sequence[float]) -> Spread | None:
    """Mean and sample standard deviation (`None` for no values)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return Spread(mean=statistics.fmean(finite), std=std, n=len(finite))


def _has_mode(item: str) -> bool:
    return item.endswith((":min", ":max"))


def _matching(pattern: str, logged: dict[str, None]) -> list[str]:
    if any(ch in pattern for ch in "*?["):
        return [name for name in logged if fnmatch.fnmatchcase(name, pattern)]
    return [pattern] if pattern in logged else []


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


__all__ = [
    "DEFAULT_METRICS",
    "WALL_TIME",
    "Group",
    "MetricChoice",
    "MetricSummary",
    "Spread",
    "choose_metrics",
    "default_mode",
    "group_runs",
    "is_seed_key",
    "spread",
    "summarize_run",
]
