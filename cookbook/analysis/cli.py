"""`cookbook report`: tables, plots and comparisons of runs and sweeps.

    cookbook report runs/sweep-rl-tictactoe                  table per run and per group, plots
    cookbook report runs/a runs/b --metric reward/mean,eval/*/win_rate --by run
    cookbook report runs/sweep-rl-tictactoe --json            (or --csv) for other tools
    cookbook report --compare runs/a runs/b                   config and metric differences

Imported for `cookbook --help`: nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cookbook.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from cookbook.analysis.plots import By
    from cookbook.analysis.runs import Run
    from cookbook.analysis.summary import Group, MetricChoice, MetricSummary, Spread

DESCRIPTION = """\
Show the final and best values of metrics for each run of the given run directories, sweep
directories, or directories holding those; runs that differ only in their seed are grouped,
with mean ± standard deviation over the seeds. Plots of each metric against step and wall
time go to PNG files. `--compare A B` shows what differs between two runs' configs next to
their metrics.

Metrics are names or glob patterns (eval/*/win_rate); add :min or :max to say which way is
better (default: min for losses, errors, illegal moves, times; max otherwise). wall_time is
the seconds of training steps so far (the sum of time/step)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"cookbook report: {message} (`cookbook report --help` shows the usage)")


def _parser() -> _Parser:
    parser = _Parser(
        prog="cookbook report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or sweep directories")
    parser.add_argument(
        "--metric",
        action="append",
        metavar="M[,M...]",
        help="metrics to show (default: reward/mean, eval win rates, losses when logged)",
    )
    parser.add_argument(
        "--by",
        choices=["run", "group"],
        help="plot one line per run or per group of seeds (default: group when a group has "
        "several runs)",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of tables")
    out.add_argument("--csv", action="store_true", help="print one CSV row per run")
    parser.add_argument("--plots", metavar="DIR", help="where the PNGs go (default DIR/plots)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument(
        "--compare", action="store_true", help="compare two runs: cookbook report --compare A B"
    )
    return parser


def main(argv: list[str]) -> int:
    """Run `cookbook report` with `argv`; returns the exit status."""
    parser = _parser()
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(parser.format_help().rstrip())
        return 0
    opts = parser.parse_args(argv)
    requested = [m.strip() for item in opts.metric or [] for m in item.split(",") if m.strip()]
    if opts.compare:
        return _compare(opts.dirs, requested, opts.json)
    from cookbook.analysis.runs import load_runs
    from cookbook.analysis.summary import choose_metrics, group_runs

    runs = load_runs(opts.dirs)
    if not runs:
        raise UserError(f"no runs in {', '.join(opts.dirs)} yet (a sweep that has not started?)")
    metrics = choose_metrics(runs, requested)
    groups = group_runs(runs)
    several = any(len(g.runs) > 1 for g in groups)
    by: By = "run" if opts.by == "run" or (opts.by is None and not several) else "group"
    plots: list[Path] = []
    want_plots = not opts.no_plots and (opts.plots is not None or not (opts.json or opts.csv))
    if want_plots and metrics:
        from cookbook.analysis.plots import write_plots

        out_dir = Path(opts.plots) if opts.plots else _default_plot_dir(opts.dirs)
        plots = write_plots(groups, metrics, out_dir, by)
    if opts.json:
        print(json.dumps(_report_json(runs, groups, metrics, plots), indent=2))
    elif opts.csv:
        _write_csv(runs, requested)
    else:
        _print_tables(runs, groups, metrics, plots)
    return 0


def _default_plot_dir(dirs: Sequence[str]) -> Path:
    return Path(dirs[0]) / "plots" if len(dirs) == 1 else Path("plots")


# ----- tables -----


def _print_tables(
    runs: list[Run], groups: list[Group], metrics: list[MetricChoice], plots: list[Path]
) -> None:
    from cookbook.analysis.summary import spread, summarize_run

    console = _console()
    param_keys = _param_keys(runs)
    with_status = any(run.status is not None for run in runs)
    table = _table(f"runs ({len(runs)})")
    table.add_column("run", overflow="fold")
    if with_status:
        table.add_column("status")
    for key in param_keys:
        table.add_column(key, overflow="fold")
    table.add_column("steps", justify="right")
    for choice in metrics:
        arrow = "↑" if choice.mode == "max" else "↓"
        table.add_column(f"{choice.name}\nfinal", justify="right")
        table.add_column(f"{choice.name}\nbest {arrow}", justify="right")
    for run in runs:
        cells = [run.name]
        if with_status:
            cells.append(run.status or "-")
        cells += [run.params.get(key, "-") for key in param_keys]
        cells.append(str(run.steps))
        for choice in metrics:
            summary = summarize_run(run, choice)
            cells += [_num(summary.final if summary else None), _best(summary)]
        table.add_row(*cells)
    console.print(table)

    if any(len(group.runs) > 1 for group in groups):
        group_keys = [k for k in param_keys if any(k in g.params for g in groups)]
        table = _table(f"groups ({len(groups)}): mean ± std over seeds")
        for key in group_keys:
            table.add_column(key, overflow="fold")
        table.add_column("runs", justify="right")
        for choice in metrics:
            arrow = "↑" if choice.mode == "max" else "↓"
            table.add_column(f"{choice.name}\nfinal", justify="right")
            table.add_column(f"{choice.name}\nbest {arrow}", justify="right")
        for group in groups:
            cells = [group.params.get(key, "-") for key in group_keys]
            cells.append(str(len(group.runs)))
            for choice in metrics:
                summaries = [s for r in group.runs if (s := summarize_run(r, choice))]
                cells.append(_spread(spread([s.final for s in summaries])))
                cells.append(_spread(spread([s.best for s in summaries])))
            table.add_row(*cells)
        console.print(table)
    if plots:
        console.print("plots: " + ", ".join(str(p) for p in plots))


def _console() -> Console:
    """Rich output; unwrapped when it goes to a file or a pipe (tables stay one line per row)."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 1000)


def _table(title: str) -> Table:
    from rich import box
    from rich.table import Table

    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def _param_keys(runs: Sequence[Run]) -> list[str]:
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.params))
    return list(keys)


def _num(value: float | None) -> str:
    return "-" if value is None else format(value, ".4g")


def _best(summary: MetricSummary | None) -> str:
    if summary is None:
        return "-"
    return f"{summary.best:.4g} @{summary.best_step}"


def _spread(value: Spread | None) -> str:
    if value is None:
        return "-"
    return f"{value.mean:.4g} ± {value.std:.2g}"


# ----- JSON and CSV -----


def _report_json(
    runs: list[Run], groups: list[Group], metrics: list[MetricChoice], plots: list[Path]
) -> dict[str, object]:
    from dataclasses import asdict

    from cookbook.analysis.summary import spread, summarize_run

    run_records = []
    for run in runs:
        values: dict[str, object] = {}
        for choice in metrics:
            summary = summarize_run(run, choice)
            values[choice.name] = asdict(summary) if summary else None
        run_records.append(
            {
                "run": run.name,
                "path": str(run.path),
                "status": run.status,
                "params": run.params,
                "steps": run.steps,
                "metrics": values,
            }
        )
    group_records = []
    for group in groups:
        stats: dict[str, object] = {}
        for choice in metrics:
            summaries = [s for r in group.runs if (s := summarize_run(r, choice))]
            final, best = spread([s.final for s in summaries]), spread([s.best for s in summaries])
            stats[choice.name] = {
                "final": asdict(final) if final else None,
                "best": asdict(best) if best else None,
            }
        group_records.append(
            {"params": group.params, "runs": [r.name for r in group.runs], "metrics": stats}
        )
    return {
        "metrics": [asdict(m) for m in metrics],
        "runs": run_records,
        "groups": group_records,
        "plots": [str(p) for p in plots],
    }


def _write_csv(runs: list[Run], requested: list[str]) -> None:
    from cookbook.analysis.records import summarize

    rows = summarize(runs, requested or None)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


# ----- compare -----


def _compare(dirs: Sequence[str], requested: list[str], as_json: bool) -> int:
    from cookbook.analysis.runs import config_differences, load_run
    from cookbook.analysis.summary import choose_metrics, summarize_run
    from cookbook.sweep.state import is_sweep_dir

    if len(dirs) != 2:
        raise UserError(f"--compare takes two run directories, got {len(dirs)}")
    for d in dirs:
        if is_sweep_dir(Path(d)):
            raise UserError(f"--compare takes two runs; {d} is a sweep (give two of its runs)")
    a, b = load_run(dirs[0], name="A"), load_run(dirs[1], name="B")
    diffs = config_differences([a, b])
    metrics = choose_metrics([a, b], requested)
    metric_rows = []
    for choice in metrics:
        sa, sb = summarize_run(a, choice), summarize_run(b, choice)
        metric_rows.append(
            {
                "metric": choice.name,
                "mode": choice.mode,
                "a_final": sa.final if sa else None,
                "b_final": sb.final if sb else None,
                "final_diff": sb.final - sa.final if sa and sb else None,
                "a_best": sa.best if sa else None,
                "b_best": sb.best if sb else None,
                "best_diff": sb.best - sa.best if sa and sb else None,
                "a_steps": a.steps,
                "b_steps": b.steps,
            }
        )
    config_rows = [{"key": k, "a": diffs["A"][k], "b": diffs["B"][k]} for k in diffs["A"]]
    if as_json:
        print(
            json.dumps(
                {"a": dirs[0], "b": dirs[1], "config": config_rows, "metrics": metric_rows},
                indent=2,
            )
        )
        return 0
    console = _console()
    console.print(f"A: {dirs[0]}  ({a.steps} steps)\nB: {dirs[1]}  ({b.steps} steps)")
    table = _table(f"config differences ({len(config_rows)})")
    for column in ("key", "A", "B"):
        table.add_column(column, overflow="fold")
    for config_row in config_rows:
        table.add_row(config_row["key"], config_row["a"], config_row["b"])
    if not config_rows:
        table.add_row("(same settings)", "", "")
    console.print(table)
    table = _table("metrics")
    table.add_column("metric", overflow="fold")
    for column in ("A final", "B final", "B - A", "A best", "B best", "B - A"):
        table.add_column(column, justify="right")
    for row in metric_rows:
        table.add_row(
            str(row["metric"]),
            *(_num(_float(row[k])) for k in ("a_final", "b_final")),
            _signed(_float(row["final_diff"])),
            *(_num(_float(row[k])) for k in ("a_best", "b_best")),
            _signed(_float(row["best_diff"])),
        )
    console.print(table)
    return 0


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _signed(value: float | None) -> str:
    return "-" if value is None else format(value, "+.4g")
