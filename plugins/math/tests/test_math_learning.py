"""The math learning benchmark (`benchmarks/math_learning.py`) in short: the real supervised and
RL loops run a few chunks each and write their metrics, curves, JSON and plot. The `slow` test
checks that RL after a brief warm start raises held-out accuracy (run with --runslow)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "math_learning.py"


def _load_benchmark() -> ModuleType:
    if not BENCHMARK.exists():
        pytest.skip("benchmarks/math_learning.py is not here (plugin installed on its own)")
    spec = importlib.util.spec_from_file_location("math_learning", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["math_learning"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ml() -> ModuleType:
    return _load_benchmark()


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_short_benchmark_trains_and_writes_everything(ml: ModuleType, tmp_path: Path) -> None:
    task = ml.Task(num_test=40)
    rl = ml.RLSettings(group_size=4, groups_per_batch=4)
    quiet = lambda _: None  # noqa: E731
    easy = ml.run_easy(
        tmp_path,
        task=task,
        sft=ml.SFTSettings(batch_size=16),
        rl=rl,
        seed=0,
        sft_seconds=0.2,
        rl_seconds=0.2,
        warm_min_accuracy=0.0,
        warm_chunk=5,
        warm_max_steps=5,
        sft_chunk=5,
        rl_chunk=3,
        say=quiet,
    )
    hard = ml.run_hard(
        tmp_path,
        task=ml.Task(operations="+-*", num_test=40),
        sft=ml.SFTSettings(batch_size=16),
        rl=rl,
        seed=0,
        budget_s=0.2,
        switch=0.0,
        sft_chunk=5,
        rl_chunk=3,
        say=quiet,
    )

    # Training ran in both loops: steps logged with losses and rewards, seconds counted.
    sft_records = [r for r in _metrics(tmp_path / "easy-sft") if "train/loss" in r]
    rl_records = [r for r in _metrics(tmp_path / "easy-rl") if "reward/mean" in r]
    assert len(sft_records) >= 5 and len(rl_records) >= 3
    assert [r["step"] for r in rl_records] == list(range(len(rl_records)))
    assert all(r["train/loss"] > 0 for r in sft_records)
    assert (tmp_path / "hard-rl" / "metrics.jsonl").exists()
    for curve in (easy.sft, easy.rl, hard.sft, hard.rl):
        assert curve.points, curve.label
        seconds = [p.seconds for p in curve.points]
        assert seconds == sorted(seconds) and seconds[-1] > 0
        assert all(0.0 <= p.accuracy <= 1.0 and 0.0 <= p.format_ok <= 1.0 for p in curve.points)
    # The RL curve starts from the supervised checkpoint it loaded.
    assert easy.rl.points[0].checkpoint in [p.checkpoint for p in easy.sft.points]
    assert [p.phase for p in easy.rl.points[1:]] == ["rl"] * (len(easy.rl.points) - 1)
    assert hard.winner in ("sft", "sft+rl", "tie")

    results = ml.write_results(tmp_path, easy, hard, {"note": "ci"})
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["easy"]["sft+rl"]["points"][-1]["step"] == rl_records[-1]["step"] + 1
    assert data["hard"]["winner"] == hard.winner
    ml.plot(tmp_path / "plot.png", easy, hard)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rl_after_brief_warm_start_raises_heldout_accuracy(ml: ModuleType, tmp_path: Path) -> None:
    """Two-digit addition, seed 0: warm start to >= 20% held-out accuracy, then 90 s of RL
    (about +50 points in 45 s when measured; 25 points leave room for a loaded machine)."""
    ml._set_threads(1)
    easy = ml.run_easy(
        tmp_path,
        task=ml.Task(num_test=200),
        sft=ml.SFTSettings(),
        rl=ml.RLSettings(),
        seed=0,
        sft_seconds=0.0,
        rl_seconds=90.0,
        warm_min_accuracy=0.2,
        say=lambda _: None,
    )
    assert easy.start_accuracy < 0.5
    assert easy.best_accuracy >= easy.start_accuracy + 0.25, [
        (round(p.seconds), p.accuracy) for p in easy.rl.points
    ]
