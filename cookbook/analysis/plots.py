"""PNG plots of metrics against step and against wall time (matplotlib, Agg backend).

One file per metric, two panels side by side. With `by="run"` each run is a line; with
`by="group"` each group of seeds is its mean line with the mean ± one standard deviation shaded.
Group curves average over the runs that logged each step (and average their wall times).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cookbook.analysis.runs import Run
from cookbook.analysis.summary import Group, MetricChoice

if TYPE_CHECKING:
    from matplotlib.axes import Axes

By = Literal["run", "group"]
_MAX_LEGEND = 12


def write_plots(
    groups: Sequence[Group],
    metrics: Sequence[MetricChoice],
    out_dir: Path,
    by: By,
) -> list[Path]:
    """Write `<out_dir>/<metric>.png` for each metric; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for choice in metrics:
        fig, (ax_step, ax_time) = plt.subplots(1, 2, figsize=(12, 4.5))
        lines = 0
        for index, group in enumerate(groups):
            color = f"C{index % 10}"
            if by == "group":
                lines += _plot_group(ax_step, ax_time, group, choice.name, color)
            else:
                for run in group.runs:
                    lines += _plot_run(ax_step, ax_time, run, choice.name, color, group)
        ax_step.set_xlabel("step")
        ax_time.set_xlabel("wall time (s of training steps)")
        for ax in (ax_step, ax_time):
            ax.set_ylabel(choice.name)
            ax.grid(alpha=0.3)
        if 0 < lines <= _MAX_LEGEND:
            ax_step.legend(fontsize="small")
        fig.suptitle(f"{choice.name} ({'higher' if choice.mode == 'max' else 'lower'} is better)")
        fig.tight_layout()
        path = out_dir / f"{_file_name(choice.name)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _plot_run(ax_step: Axes, ax_time: Axes, run: Run, metric: str, color: str, group: Group) -> int:
    series = run.series(metric)
    if not series:
        return 0
    steps, values = zip(*series, strict=True)
    label = run.name
    ax_step.plot(steps, values, color=color, label=label, alpha=0.85)
    walls = run.wall_times()
    timed = [(walls[s], v) for s, v in series if s in walls]
    if timed:
        times, timed_values = zip(*timed, strict=True)
        ax_time.plot(times, timed_values, color=color, alpha=0.85)
    return 1


def _plot_group(ax_step: Axes, ax_time: Axes, group: Group, metric: str, color: str) -> int:
    by_step: dict[int, list[float]] = {}
    wall_by_step: dict[int, list[float]] = {}
    for run in group.runs:
        walls = run.wall_times()
        for step, value in run.series(metric):
            by_step.setdefault(step, []).append(value)
            if step in walls:
                wall_by_step.setdefault(step, []).append(walls[step])
    if not by_step:
        return 0
    steps = sorted(by_step)
    means = [statistics.fmean(by_step[s]) for s in steps]
    stds = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    low = [m - s for m, s in zip(means, stds, strict=True)]
    high = [m + s for m, s in zip(means, stds, strict=True)]
    label = f"{group.label} (n={len(group.runs)})"
    ax_step.plot(steps, means, color=color, label=label)
    ax_step.fill_between(steps, low, high, color=color, alpha=0.2)
    timed = [i for i, s in enumerate(steps) if s in wall_by_step]
    if timed:
        times = [statistics.fmean(wall_by_step[steps[i]]) for i in timed]
        ax_time.plot(times, [means[i] for i in timed], color=color)
        ax_time.fill_between(
            times, [low[i] for i in timed], [high[i] for i in timed], color=color, alpha=0.2
        )
    return 1


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", metric).strip("_") or "metric"
