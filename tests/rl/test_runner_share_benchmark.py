"""run_all.py's runner figure runs the real RL loop through rl_overhead.py at a toy size and
lands in the summary table against its 5% target (the share itself is measured by the script,
never asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_runner_share_is_a_targeted_figure_in_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        run_all = importlib.import_module("run_all")
        figure = run_all.runner_share(groups=2, group_size=2, steps=3)
        assert figure is not None
        run_all.summary([figure])
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert figure.label == "2x2 groups" and figure.share and figure.targeted
    assert figure.ratio is not None and figure.ratio_range is not None
    low, high = figure.ratio_range
    assert 0.0 <= low <= figure.ratio <= high < 1.0
    assert figure.met == (figure.ratio <= 0.05)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("runner "))
    assert "<= 5.0%" in row and "met" in row and "not yet targeted" not in row
