"""`cookbook eval --eval NAME[,NAME...] [KEY=VALUE ...]`: run registered evals on their own.

    cookbook eval --eval arithmetic
    cookbook eval --eval arithmetic,tictactoe-vs-random load_checkpoint_path=runs/rl-tictactoe
    cookbook eval --eval arithmetic eval.num_problems=50        # the eval's own options
    cookbook eval --eval a,b evals.a.num_problems=50 evals.b.num_games=20   # several evals
    cookbook eval --config runs/eval-arithmetic/results.json    # the same eval again

Every `KEY=VALUE` is a field of `cookbook.eval.runner.EvalConfig`. Prints a table and writes the
JSON result (default `runs/eval-<names>/results.json`). Imported for `--help`: nothing heavy at
module level.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.cli import CommandLine


def format_results(metrics: Mapping[str, float], failures: Mapping[str, str]) -> str:
    """The metrics as an aligned `eval  metric  value` table."""
    rows = [("EVAL", "METRIC", "VALUE")]
    for key, value in metrics.items():
        _, name, metric = key.split("/", 2) if key.count("/") >= 2 else ("", key, "")
        rows.append((name, metric, f"{value:.4g}"))
    for name, error in failures.items():
        rows.append((name, "error", error))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}" for r in rows)


def run(line: CommandLine) -> int:
    """Run `cookbook eval` as `line` asks; returns the exit status (1 when an eval failed).
    User mistakes raise `UserError` (the `cookbook` command prints them on one line)."""
    from cookbook.configs import format_config_help

    if line.help and line.name is None and line.config is None:
        from cookbook.eval.runner import EvalConfig

        print(line.help_text + "\n\n" + format_config_help(EvalConfig, "options (KEY=VALUE):"))
        print("\n`cookbook list evals` shows the evals; add --eval NAME --help for its options.")
        return 0
    from cookbook.runs.blueprints import eval_config

    names = [line.name] if line.name else []
    config = eval_config(names, line.overrides, config_file=line.config)
    if line.help:
        title = "options (KEY=VALUE), with this command's values:"
        print(line.help_text + "\n\n" + format_config_help(config, title, skip=("evals",)))
        for name, builder in config.evals.items():
            prefix = "eval." if len(config.evals) == 1 else f"evals.{name}."
            print("\n" + format_config_help(builder, f"eval {name} options:", prefix=prefix))
        return 0
    from cookbook.eval.runner import run_eval

    args = [f"--eval={line.name}"] if line.name else []
    args += [f"--config={line.config}"] if line.config else []
    result = run_eval(config, argv=["cookbook", "eval", *args, *line.overrides])
    print(format_results(result.metrics, result.failures))
    print(f"\nresults written to {config.output_path} ({result.time_s:.1f} s)")
    if result.failures:
        print(
            f"error: {len(result.failures)} eval(s) failed: {', '.join(result.failures)}",
            file=sys.stderr,
        )
        return 1
    return 0
