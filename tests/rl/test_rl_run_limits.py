"""Run-level settings of the RL loop: the wall-clock limit, torch's thread count and the closing
summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import chz
import pytest

from cookbook.backends.protocol import SamplingClient
from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.runs.metrics import MetricsLog, MetricValue

if TYPE_CHECKING:
    from cookbook.rl.train import Config


class _ThreadsSeen(Evaluator):
    """Reports torch's intra-op thread count at the moment the loop evaluates."""

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        import torch

        return {"threads": float(torch.get_num_threads())}


@chz.chz
class ThreadsSeenBuilder(EvaluatorBuilder):
    """Builds `_ThreadsSeen`."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        return _ThreadsSeen()


def _records(log_dir: Path) -> list[dict[str, MetricValue]]:
    return MetricsLog(log_dir / "metrics.jsonl").read()


def _config(log_dir: Path, **changes: object) -> Config:
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import Config

    config = Config(
        env=LettersBuilder(test_batches=0),
        log_dir=str(log_dir),
        group_size=4,
        groups_per_batch=2,
        max_tokens=3,
        max_steps=4,
        eval_every=0,
        save_every=0,
        show_progress=False,
    )
    return chz.replace(config, **changes)


def test_time_limit_ends_the_run_with_a_final_eval_and_checkpoint(
    rl_plugin: Path, tmp_path: Path
) -> None:
    from cookbook.rl.train import main

    config = _config(tmp_path, max_minutes=1e-9, evals={"threads": ThreadsSeenBuilder()})
    summary = main(config)
    assert summary.steps_run == 1 and summary.stopped_by_time
    records = _records(tmp_path)
    assert [r["step"] for r in records] == [0]
    assert "eval/threads/threads" in records[0]  # the last step evaluates
    index = json.loads((tmp_path / "checkpoints.json").read_text())
    assert [c["step"] for c in index] == [1]
    # Resuming (the limit may change on resume) goes on from the checkpoint to max_steps.
    again = main(chz.replace(config, max_minutes=0.0))
    assert again.steps_run == 3 and not again.stopped_by_time
    assert [r["step"] for r in _records(tmp_path)] == [0, 1, 2, 3]


@pytest.mark.parametrize(("num_threads", "expected"), [(None, 1), (2, 2)])
def test_torch_threads_are_set_for_the_run_and_restored(
    rl_plugin: Path, tmp_path: Path, num_threads: int | None, expected: int
) -> None:
    import torch

    from cookbook.rl.train import main

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        config = _config(
            tmp_path,
            max_steps=1,
            num_threads=num_threads,
            evals={"threads": ThreadsSeenBuilder()},
        )
        main(config)
        assert _records(tmp_path)[0]["eval/threads/threads"] == expected
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"num_threads": 0}, "num_threads"), ({"max_minutes": -1.0}, "max_minutes")],
)
def test_bad_run_limits_are_user_errors(
    rl_plugin: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    from cookbook.rl.train import main

    config = _config(tmp_path, **change)
    with pytest.raises(UserError, match=message):
        main(config)


def test_summary_shows_start_and_end_levels_and_the_evals(tmp_path: Path) -> None:
    from cookbook.rl.summary import summary_text
    from cookbook.runs.metrics import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(20):
        metrics: dict[str, float] = {"reward/mean": step / 20, "env/win": step / 40, "x": 1.0}
        if step in (9, 19):
            metrics["eval/vs/win_rate"] = step / 100
        log.log(step, metrics)
    text = summary_text(tmp_path, "game", 20, 75.0, stopped_by_time=True)
    lines = text.splitlines()
    assert lines[0] == "rl game: 20 steps run in 1m15s (time limit (max_minutes) reached)"
    assert lines[1].split() == ["steps", "0-4", "steps", "10-19"]
    assert lines[2].split() == ["reward/mean", "0.100", "0.725"]  # means of 0..4 and 10..19
    assert lines[3].split() == ["env/win", "0.050", "0.362"]
    assert lines[4].split() == ["eval", "vs", "step", "9", "step", "19"]
    assert lines[5].split() == ["win_rate", "0.090", "0.190"]
    assert not any(line.split()[0] == "x" for line in lines[1:-1])  # only reward, env, eval
    assert str(tmp_path) in lines[-1]
