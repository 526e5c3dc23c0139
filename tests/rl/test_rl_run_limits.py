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


@pytest.mark.parametrize("by_time", [False, True])
def test_a_time_limited_decay_ends_at_the_time_limit(
    rl_plugin: Path, tmp_path: Path, by_time: bool
) -> None:
    """The limit is up before the loop starts (model set-up takes longer than a microsecond),
    so the one step run is at the end of a decay that follows the clock, and a resumed run stays
    there; by steps alone it is the first step of ten."""
    from cookbook.rl.train import main

    config = _config(
        tmp_path,
        max_steps=10,
        max_minutes=1e-8,
        learning_rate=1e-3,
        lr_schedule="linear",
        lr_schedule_by_time=by_time,
    )
    summary = main(config)
    assert summary.steps_run == 1 and summary.stopped_by_time
    assert _records(tmp_path)[0]["optim/learning_rate"] == (0.0 if by_time else 1e-3)
    (saved,) = json.loads((tmp_path / "checkpoints.json").read_text())
    assert saved["extra"]["lr_progress"] == (1.0 if by_time else 0.0)
    main(chz.replace(config, max_minutes=0.0, max_steps=2))
    resumed = _records(tmp_path)[1]
    assert resumed["step"] == 1
    assert resumed["optim/learning_rate"] == pytest.approx(0.0 if by_time else 5e-4)


def test_the_decay_clock_takes_the_larger_share_and_never_goes_back(rl_plugin: Path) -> None:
    import time

    from cookbook.rl.train import _DecayClock
    from cookbook.runs.checkpoints import Checkpoint

    config = _config(Path("unused"), lr_schedule="linear", lr_schedule_by_time=True)
    now = time.perf_counter()
    # 60 s of an hour's loop spent: at least 1/60 along, whatever the step
    clock = _DecayClock(config, 1000, now - 60, now + 3540, None)
    assert 60 / 3600 <= clock.progress(0) < 0.5
    assert clock.progress(900) == pytest.approx(0.9)
    # resumed at progress 0.8: the rest of the decay spans the rest of this call's time
    resumed = Checkpoint(step=1, state_path="s", sampler_path=None, extra={"lr_progress": 0.8})
    clock = _DecayClock(config, 1000, now - 1800, now + 1800, resumed)
    assert clock.progress(0) >= 0.9
    # by steps alone a checkpoint's progress is not a floor (max_steps may grow on resume)
    stepwise = chz.replace(config, lr_schedule_by_time=False)
    assert _DecayClock(stepwise, 1000, now, now + 1, resumed).progress(100) == 0.1


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
