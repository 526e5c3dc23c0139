"""The GPU benchmark script runs end to end at a toy size on CPU (its figures are not checked:
speed is measured by the script, never asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_gpu_benchmark_smoke_run_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        gpu = importlib.import_module("gpu")
        figures = gpu.run("cpu", tiny_shape=True, rounds=1)
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert [(f.section, f.contender) for f in figures] == [
        ("gpu-training", "peft"),
        ("gpu-sampling", "generate"),
        ("gpu-sampling", "generate"),
    ]
    assert all(f.ours > 0 and f.theirs and f.ratio for f in figures)
    out = capsys.readouterr().out
    assert "target >= 10.00x" in out and "H200 anchors" in out
