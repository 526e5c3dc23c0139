"""The math learning benchmark (`benchmarks/math_learning.py`) in short: the real supervised and
RL loops run one chunk each and write their metrics, curves, JSON and plot. The budgets are
steps, not seconds, so a busy machine changes nothing but the time it takes. The `slow` tests
check that RL after a brief warm start raises held-out accuracy, and run the `hard` part's
equal-time comparison (run with --runslow).

The benchmark is a script of the repository, imported as `benchmarks.math_learning` (the
repository root is on pytest's path, see pyproject.toml); these tests skip where the plugin is
tested on its own, without the repository around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ml = pytest.importorskip(
    "benchmarks.math_learning", reason="needs the repository's benchmarks/ (not in the plugin)"
)


def _metrics(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_short_benchmark_trains_and_writes_everything(tmp_path: Path) -> None:
    quiet = lambda _: None  # noqa: E731
    easy = ml.run_easy(
        tmp_path,
        task=ml.Task(num_test=40),
        sft=ml.SFTSettings(batch_size=16),
        rl=ml.RLSettings(group_size=4, groups_per_batch=4),
        seed=0,
        # Step budgets, no time: no supervised seconds beyond the warm start, which is one chunk
        # of 5 steps (warm_max_steps; the format is not learned that fast), and no RL seconds,
        # so RL runs the one chunk of 3 steps it always runs.
        sft_seconds=0.0,
        warm_min_accuracy=0.0,
        warm_chunk=5,
        warm_max_steps=5,
        rl_seconds=0.0,
        rl_chunk=3,
        say=quiet,
    )

    # Training ran in both loops: steps logged with losses and rewards, seconds counted.
    sft_records = [r for r in _metrics(tmp_path / "easy-sft") if "train/loss" in r]
    rl_records = [r for r in _metrics(tmp_path / "easy-rl") if "reward/mean" in r]
    assert [r["step"] for r in sft_records] == list(range(5))
    assert [r["step"] for r in rl_records] == list(range(3))
    assert all(r["train/loss"] > 0 for r in sft_records)
    assert [p.step for p in easy.sft.points] == [5]
    assert [(p.phase, p.step) for p in easy.rl.points] == [("sft", 5), ("rl", 3)]
    for curve in (easy.sft, easy.rl):
        seconds = [p.seconds for p in curve.points]
        assert seconds == sorted(seconds) and seconds[-1] > 0
        assert all(0.0 <= p.accuracy <= 1.0 and 0.0 <= p.format_ok <= 1.0 for p in curve.points)
    # The RL curve starts from the supervised checkpoint it loaded.
    assert easy.rl.points[0].checkpoint == easy.sft.points[-1].checkpoint != ""
    assert easy.start_accuracy == easy.sft.points[-1].accuracy

    results = ml.write_results(tmp_path, easy, None, {"note": "ci"})
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["easy"]["sft+rl"]["points"][-1]["step"] == 3 and "hard" not in data
    ml.plot(tmp_path / "plot.png", easy, None)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rl_after_brief_warm_start_raises_heldout_accuracy(tmp_path: Path) -> None:
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


@pytest.mark.slow
def test_hard_part_compares_both_arms_at_one_budget(tmp_path: Path) -> None:
    """The `hard` part is a wall-clock comparison by design: both arms get the same training
    seconds, and the supervised-then-RL arm switches at half of them (or after the first
    supervised chunk, on a machine too busy for one to fit in half the budget)."""
    hard = ml.run_hard(
        tmp_path,
        task=ml.Task(operations="+-*", num_test=40),
        sft=ml.SFTSettings(batch_size=16),
        rl=ml.RLSettings(group_size=4, groups_per_batch=4),
        seed=0,
        budget_s=8.0,
        switch=0.5,
        sft_chunk=5,
        rl_chunk=5,
        say=lambda _: None,
    )
    assert hard.sft.points[-1].seconds >= 8.0
    assert hard.rl.points[0].phase == "sft" and hard.rl.points[-1].phase == "rl"
    assert hard.rl.points[-1].seconds >= 8.0
    assert hard.winner in ("sft", "sft+rl", "tie")
    data = json.loads(ml.write_results(tmp_path, None, hard, {}).read_text(encoding="utf-8"))
    assert data["hard"]["winner"] == hard.winner


def test_hard_task_options_reach_the_data_and_the_clock() -> None:
    """`--hard-sft-examples` sizes the supervised data (RL keeps drawing fresh problems), and
    `--clock cpu` scales seconds by the process's CPU share, which is in (0, 1]."""
    task = ml.Task(operations="+", digits=3, sft_examples=32)
    assert task.sft_builder().num_examples == 32
    assert "32 supervised problems" in task.label and "3-digit" in task.label
    assert ml.Task().sft_builder().num_examples == ml.Task.sft_examples
    with ml._cpu_share() as share:
        sum(i * i for i in range(200_000))  # busy on the CPU: the share cannot be 0
    assert 0.0 < share[0] <= 1.0
