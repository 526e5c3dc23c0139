"""Read runs and sweeps back for analysis: `cookbook report`, and a small API for notebooks.

    from cookbook.analysis import load_run, load_sweep, load_runs, to_records, to_dataframe

    sweep = load_sweep("runs/sweep-rl-tictactoe")
    df = to_dataframe(sweep)            # one row per (run, step); needs pandas
    df.groupby("learning_rate")["reward/mean"].mean()

Importing the package loads nothing (`cookbook --help` looks it up); each name loads its module
on first use, and pandas and matplotlib only load inside the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.analysis.records import summarize, to_dataframe, to_records
    from cookbook.analysis.runs import Run, Sweep, load_run, load_runs, load_sweep

_EXPORTS = {
    "Run": "cookbook.analysis.runs",
    "Sweep": "cookbook.analysis.runs",
    "load_run": "cookbook.analysis.runs",
    "load_runs": "cookbook.analysis.runs",
    "load_sweep": "cookbook.analysis.runs",
    "summarize": "cookbook.analysis.records",
    "to_dataframe": "cookbook.analysis.records",
    "to_records": "cookbook.analysis.records",
}

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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cookbook.analysis' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
