"""The closing summary of `cookbook rl`: where the run started, where it ended, where its files are.

Read back from `metrics.jsonl`, so a resumed run's summary covers its earlier steps too. Any env
works: the rows are `reward/mean` and the env's own `env/*` metrics (averaged over the first and
the last few steps, the samples the policy really played; in search mode the search's returns
instead), then each eval's first (before RL, when the run evaluated then) and last results.
"""

from __future__ import annotations

from pathlib import Path

from cookbook.runs.metrics import MetricsLog, MetricValue

BEFORE_RL = "eval_before_rl/"
"""Prefix of the evals run before the first RL step (in the step-0 line)."""
START_STEPS = 5
"""Steps averaged for the starting level (the policy has barely moved yet)."""
END_STEPS = 10
"""Steps averaged for the final level."""

SEARCH_ROWS = ("search/best_return_mean", "search/return_mean", "search/target_logprob")
"""The rows of a search-mode run (`cookbook/rl/search.py`), which plays no rollouts: the best
and the mean return of the roots' candidates, and the targets' logprob before each update."""

Record = dict[str, MetricValue]


def _mean(records: list[Record], key: str) -> float | None:
    values = [v for r in records if isinstance(v := r.get(key), int | float)]
    return sum(values) / len(values) if values else None


def _steps_label(records: list[Record]) -> str:
    first, last = records[0].get("step"), records[-1].get("step")
    return f"step {first}" if first == last else f"steps {first}-{last}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def summary_text(
    log_dir: str | Path, label: str, steps_run: int, time_s: float, stopped_by_time: bool
) -> str:
    """A few lines for the terminal: the start and end levels of the run in `log_dir`."""
    log_dir = Path(log_dir)
    records = MetricsLog(log_dir / "metrics.jsonl").read()
    why = "time limit (max_minutes) reached" if stopped_by_time else "done"
    lines = [f"rl {label}: {steps_run} steps run in {_duration(time_s)} ({why})"]
    if records:
        start, end = records[:START_STEPS], records[-END_STEPS:]
        keys = [k for k in SEARCH_ROWS if k in records[-1]] or (
            ["reward/mean"] + [k for k in records[-1] if k.startswith("env/")]
        )
        rows: list[tuple[str, str, str]] = [("", _steps_label(start), _steps_label(end))]
        rows += [(k, _fmt(_mean(start, k)), _fmt(_mean(end, k))) for k in keys]
        rows += _eval_rows(records)
        width = max(len(r[0]) for r in rows) + 2
        lines += [f"  {a:<{width}}{b:>14}{c:>16}" for a, b, c in rows]
    lines.append(
        f"outputs in {log_dir}: metrics.jsonl, config.json, transcripts/, checkpoints/ "
        "(the same command resumes; raise max_steps to train on)"
    )
    return "\n".join(lines)


def _value(record: Record, key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, int | float) else None


def _eval_rows(records: list[Record]) -> list[tuple[str, str, str]]:
    """Each eval's first and last results (the `eval/<name>/<metric>` keys); the first is the
    one before RL (`eval_before_rl/<name>/<metric>`, in the step-0 line) when there is one."""
    names: dict[str, None] = {}
    for record in records:
        for key in record:
            if key.startswith(("eval/", BEFORE_RL)) and key.count("/") >= 2:
                names[key.split("/")[1]] = None
    rows: list[tuple[str, str, str]] = []
    for name in names:
        prefix, before = f"eval/{name}/", f"{BEFORE_RL}{name}/"
        evaluated = [r for r in records if any(k.startswith(prefix) for k in r)]
        started = [r for r in records if any(k.startswith(before) for k in r)]
        first: tuple[Record, str, str]
        if started:
            first = (started[0], before, "before RL")
        else:
            first = (evaluated[0], prefix, f"step {evaluated[0].get('step')}")
        last = (evaluated[-1], prefix, f"step {evaluated[-1].get('step')}") if evaluated else first
        rows.append((f"eval {name}", first[2], last[2]))
        metric_names = [k[len(last[1]) :] for k in last[0] if k.startswith(last[1])]
        rows += [
            (f"  {m}", _fmt(_value(first[0], first[1] + m)), _fmt(_value(last[0], last[1] + m)))
            for m in metric_names
        ]
    return rows
