"""Read runs and sweeps back for analysis: `cookbook report`, and a small API for notebooks.

    from cookbook.analysis import load_run, load_sweep, load_runs, to_records, to_dataframe

    sweep = load_sweep("runs/sweep-rl-tictactoe")
    df = to_dataframe(sweep)            # one row per (run, step); needs pandas
    df.groupby("learning_rate")["reward/mean"].mean()

Light to import (no pandas, matplotlib or torch until a function needs them).
"""

from cookbook.analysis.records import summarize, to_dataframe, to_records
from cookbook.analysis.runs import Run, Sweep, load_run, load_runs, load_sweep

__all__ = [
    "Run",
    "Sweep",
    "load_run",
    "load_runs",
    "load_sweep",
    "summarize",
    "to_dataframe",
    "to_records",
]
