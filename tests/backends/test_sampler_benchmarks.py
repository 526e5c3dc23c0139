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


def test_run_all_prints_every_sampling_figure_with_ratio_and_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sampler and concurrency sections at toy sizes, through run_all's summary table."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        backend = importlib.import_module("backend")
        run_all = importlib.import_module("run_all")
        from cookbook.backends.local.service import LocalServiceClient

        service = LocalServiceClient(device="cpu", base_dir=tmp_path)
        figures = backend.sampler_vs_bare(service, [1, 3], rounds=1, new_tokens=4)
        figures += backend.concurrency(service, (1, 2), rounds=1, group_size=2)
        run_all.summary(figures)
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert [f.label for f in figures] == ["batch 1", "batch 3", "1 groups", "2 groups"]
    table = capsys.readouterr().out.split("== summary")[1].splitlines()
    rows = [line for line in table if line.startswith(("sampler", "concurrency"))]
    assert len(rows) == 4
    for row in rows[:2] + rows[3:]:  # every figure with a contender has a ratio and a target
        assert "x (" in row and ">= 1.00x" in row and "met" in row, row
