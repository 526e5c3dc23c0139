"""The learning benchmark (`benchmarks/pairwise_learning.py`) in short: both parts run through the
real loops on a few steps and write their curves, JSON and plot. The `slow` test checks the
learning itself, counted in steps (never in seconds: the machine is shared): the rule-trained
policy beats its start, the trained judge is accurate, and RL against it raises the win rate the
hidden rule gives (run with --runslow).

The benchmark is a script of the repository, imported as `benchmarks.pairwise_learning` (the
repository root is on pytest's path); these tests skip where the plugin is tested on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

bench = pytest.importorskip(
    "benchmarks.pairwise_learning", reason="needs the repository's benchmarks/ (not in the plugin)"
)


def _small(out: Path, *extra: str) -> list[str]:
    return [
        "--out",
        str(out),
        "--eval-every",
        "2",
        "--eval-prompts",
        "8",
        "--group-size",
        "4",
        "--groups-per-batch",
        "4",
        "--comparisons",
        "2",
        "--judge-batch",
        "16",
        "--judge-test",
        "16",
        "--bias-pairs",
        "4",
        *extra,
    ]


def test_short_benchmark_runs_both_parts_and_writes_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _small(
        tmp_path,
        "--max-steps",
        "4",
        "--warm-start-steps",
        "5",
        "--judge-steps",
        "4",
        "--judge-eval-every",
        "2",
    )
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "load average before" in out and "load average after" in out
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert (tmp_path / "pairwise_learning.png").stat().st_size > 0
    rule, trained = results["rule"], results["trained"]
    for part in (rule, trained):
        assert part["steps"] == 4
        assert [p["step"] for p in part["points"]] == [2, 4]
        seconds = [p["seconds"] for p in part["points"]]
        assert seconds == sorted(seconds) and seconds[0] > 0
        assert all(0.0 <= p["rule_win_rate"] <= 1.0 for p in part["points"])
        assert set(part["checks"]) and all(isinstance(v, bool) for v in part["checks"].values())
    # The rule part is judged by the rule: the rule's own score is logged with each point.
    assert all(p["score"] is not None and p["judge_win_rate"] is None for p in rule["points"])
    # The trained part: the judge's curve, then both judges on the same RL checkpoints.
    assert [j["step"] for j in trained["judge"]] == [0, 2, 4]
    assert trained["judge_seconds"] > 0
    assert trained["points"][0]["seconds"] > trained["judge_seconds"]
    assert all(0.0 <= p["judge_win_rate"] <= 1.0 for p in trained["points"])
    assert all("env/monitor_agreement" in p["train"] for p in trained["points"])
    assert (tmp_path / "judge" / "checkpoints.json").exists()
    bias = trained["summary"]["judge_length_bias"]
    assert bias["pairs"] == 4 and 0.0 <= bias["prefers_longer"] <= 1.0


@pytest.mark.slow
def test_policy_beats_its_start_by_rule_and_by_trained_judge(tmp_path: Path) -> None:
    # Counted in steps (an hour of allowed wall time never binds on an idle machine).
    args = [
        "--out",
        str(tmp_path),
        "--rule-minutes",
        "60",
        "--trained-minutes",
        "60",
        "--max-steps",
        "60",
        "--eval-every",
        "20",
        "--judge-steps",
        "600",
        "--judge-eval-every",
        "300",
    ]
    assert bench.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["rule"]["points"][-1]["rule_win_rate"] >= 0.75
    trained = results["trained"]
    assert trained["judge"][-1]["accuracy"] >= 0.90
    assert trained["points"][-1]["rule_win_rate"] >= 0.75
