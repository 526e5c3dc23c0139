"""The step log: steps written in order on its worker, flushed on demand, errors surfaced."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinker import types as tinker_types

from cookbook.rl.data import groups_to_sequences
from cookbook.rl.rollouts import BatchRollout
from cookbook.rl.step_log import MAX_PENDING, StepLog, StepRecord
from cookbook.rl.types import Trajectory, TrajectoryGroup, Transition
from cookbook.runs.metrics import MetricsLog
from cookbook.runs.progress import RunProgress
from cookbook.tokenizers import ByteTokenizer


def _batch(step: int) -> BatchRollout:
    def trajectory(reward: float) -> Trajectory:
        transition = Transition(
            ob=tinker_types.ModelInput.from_ints(list(b"hi")),
            ac_tokens=list(b"ok"),
            ac_logprobs=[-0.5, -0.25],
            reward=reward,
            episode_done=True,
        )
        return Trajectory([transition], tinker_types.ModelInput.empty())

    group = TrajectoryGroup([trajectory(1.0), trajectory(0.0)], [0.0, 0.0], [{}, {}])
    return BatchRollout([group], [0], num_groups=1, sampler_step=step)


def _record(step: int) -> StepRecord:
    batch = _batch(step)
    advantages = [[0.5, -0.5]]
    sequences = groups_to_sequences(batch.groups_P, advantages)
    train_logprobs = [s.logprobs_T[1:] for s in sequences]  # learner agrees with the sampler
    return StepRecord(
        step,
        batch,
        advantages,
        {"time/step": 0.1},
        sequences,
        train_logprobs,
        transcript_header=f"# step {step}",
    )


def _log(tmp_path: Path, transcripts_dir: Path | None = None) -> StepLog:
    return StepLog(
        MetricsLog(tmp_path / "metrics.jsonl"),
        transcripts_dir or tmp_path / "transcripts",
        ByteTokenizer(),
        transcript_groups=1,
        progress=RunProgress("test", 10, enabled=False),
    )


def test_steps_are_written_in_order_with_their_metrics_and_transcripts(tmp_path: Path) -> None:
    log = _log(tmp_path)
    for step in range(MAX_PENDING + 3):  # more than the worker may lag behind
        log.submit(_record(step))
    last = log.flush()
    records = MetricsLog(tmp_path / "metrics.jsonl").read()
    assert [r["step"] for r in records] == list(range(MAX_PENDING + 3))
    assert last["reward/mean"] == records[-1]["reward/mean"] == 0.5
    assert records[0]["optim/kl_sample_train_v1"] == 0.0
    assert records[0]["time/step"] == 0.1
    transcript = (tmp_path / "transcripts" / "step000002.txt").read_text()
    assert transcript.startswith("# step 2") and "'ok'" in transcript
    log.close()


def test_a_failed_write_is_raised_by_the_next_flush(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    log = _log(tmp_path, transcripts_dir=not_a_dir / "transcripts")
    log.submit(_record(0))
    with pytest.raises(OSError):
        log.close()
