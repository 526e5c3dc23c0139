"""Runs as flat records, and as a pandas DataFrame when pandas is installed (it stays optional).

to_records(sweep)          one dict per (run, step): run, path, params, step, wall_time,
                           metrics
to_dataframe(sweep)        the same as a DataFrame (pip install pandas)
summarize(sweep)           one dict per run: params, steps, final and best of each metric
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cookbook.analysis.runs import WALL_TIME, Run, Sweep, load_runs
from cookbook.analysis.summary import choose_metrics, summarize_run
from cookbook.errors import UserError

if TYPE_CHECKING:
    import pandas

Source = Run | Sweep | Sequence[Run] | str | Path | Sequence[str | Path]
"""What the functions here accept: runs, a sweep, or paths to load with `load_runs`."""
Value = str | int | float | None


def as_runs(source: Source) -> list[Run]:
    """The runs of `source`."""
    if isinstance(source, Run):
        return [source]
    if isinstance(source, Sweep):
        return list(source.runs)
    if isinstance(source, str | Path):
        return load_runs([source])
    items = list(source)
    if all(isinstance(item, Run) for item in items):
        return [item for item in items if isinstance(item, Run)]
    return load_runs([item for item in items if isinstance(item, str | Path)])


def to_records(source: Source, metrics: Sequence[str] | None = None) -> list[dict[str, Value]]:
    """One record per (run, step): `run`, `path`, `status`, the run's params, `step`,
    `wall_time` (when logged) and every metric (or those matching `metrics`)."""
    runs = as_runs(source)
    names = [c.name for c in choose_metrics(runs, metrics)] if metrics else None
    out: list[dict[str, Value]] = []
    for run in runs:
        walls = run.wall_times()
        for record in run.records:
            step = record.get("step")
            row: dict[str, Value] = {"run": run.name, "path": str(run.path), "status": run.status}
            row.update(run.params)
            row["step"] = step
            if isinstance(step, int) and step in walls:
                row[WALL_TIME] = walls[step]
            if names is None:
                row.update({k: v for k, v in record.items() if k != "step"})
            else:
                row.update({k: record.get(k) for k in names if k != WALL_TIME})
            out.append(row)
    return out


def to_dataframe(source: Source, metrics: Sequence[str] | None = None) -> pandas.DataFrame:
    """`to_records` as a pandas DataFrame; a `UserError` saying how to install pandas."""
    try:
        import pandas
    except ImportError:
        raise UserError(
            "to_dataframe needs pandas: pip install pandas (or use to_records)"
        ) from None
    return pandas.DataFrame.from_records(to_records(source, metrics))


def summarize(source: Source, metrics: Sequence[str] | None = None) -> list[dict[str, Value]]:
    """One record per run: `run`, `path`, `status`, params, `steps`, and for each metric
    `<metric>:final` and `<metric>:best` (defaults as in `cookbook report`)."""
    runs = as_runs(source)
    choices = choose_metrics(runs, metrics)
    out: list[dict[str, Value]] = []
    for run in runs:
        row: dict[str, Value] = {"run": run.name, "path": str(run.path), "status": run.status}
        row.update(run.params)
        row["steps"] = run.steps
        for choice in choices:
            summary = summarize_run(run, choice)
            row[f"{choice.name}:final"] = summary.final if summary else None
            row[f"{choice.name}:best"] = summary.best if summary else None
        out.append(row)
    return out
