"""The RL loop's per-step logging, off its critical path.

After a step the loop hands over what happened (the batch, what training returned, its own
numbers) and goes straight on to the next batch; one worker thread turns each step, in order,
into its metrics (`metrics.py`), the metrics line, the transcript and the progress line.
`flush` waits for every step handed over: the loop calls it before a checkpoint (a step's line
goes in before its checkpoint, so a kill between the two reruns the step, never skips its line)
and at the end. An error on the worker is raised by the next `submit` or `flush`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cookbook.rl.metrics import rollout_metrics, train_metrics
from cookbook.rl.transcripts import write_step_transcript

if TYPE_CHECKING:
    from cookbook.rl.data import FloatArray, TrainSequence
    from cookbook.rl.rollouts import BatchRollout
    from cookbook.runs.metrics import MetricsLog
    from cookbook.runs.progress import RunProgress
    from cookbook.tokenizers import Tokenizer

MAX_PENDING = 2
"""Steps the worker may lag behind; `submit` waits beyond that (memory stays bounded)."""


@dataclass
class StepRecord:
    """One step, as the loop hands it over (nothing in it may change afterwards)."""

    step: int
    batch: BatchRollout
    advantages_P_G: list[list[float]]
    """Per trajectory of each finished group (transcripts show them)."""
    metrics: dict[str, float]
    """What the loop measured itself: training, evals, timings."""
    sequences_D: Sequence[TrainSequence] = ()
    """What was trained on, with `train_logprobs_D` the learner's logprobs of each."""
    train_logprobs_D: Sequence[FloatArray] = ()
    transcript_header: str = ""


@dataclass
class StepLog:
    """Writes `StepRecord`s on a worker thread; see the module docstring."""

    metrics_log: MetricsLog
    transcripts_dir: Path
    tokenizer: Tokenizer
    transcript_groups: int
    progress: RunProgress
    last_metrics: dict[str, float] = field(default_factory=dict)
    """The metrics of the last step written."""
    _executor: ThreadPoolExecutor | None = None
    _pending: deque[Future[dict[str, float]]] = field(default_factory=deque)

    def submit(self, record: StepRecord) -> None:
        """Queue `record`; waits only when the worker is `MAX_PENDING` steps behind."""
        self._collect(keep=MAX_PENDING - 1)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="cookbook-step-log")
        self._pending.append(self._executor.submit(self._write, record))

    def flush(self) -> dict[str, float]:
        """Wait until every step handed over is written; returns the last one's metrics."""
        self._collect(keep=0)
        return self.last_metrics

    def close(self) -> None:
        """Flush and stop the worker (the flush's error, if any, is raised)."""
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _collect(self, keep: int) -> None:
        """Wait for the oldest writes until at most `keep` are outstanding (finished ones are
        collected either way, so an error surfaces early)."""
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            self.last_metrics = self._pending.popleft().result()

    def _write(self, record: StepRecord) -> dict[str, float]:
        metrics = rollout_metrics(record.batch, train_step=record.step)
        if record.sequences_D:
            metrics.update(train_metrics(record.sequences_D, record.train_logprobs_D))
        metrics.update(record.metrics)
        self.metrics_log.log(record.step, metrics)
        write_step_transcript(
            self.transcripts_dir,
            record.step,
            record.batch.groups_P,
            record.batch.group_indices_P,
            record.advantages_P_G,
            self.tokenizer,
            self.transcript_groups,
            header=record.transcript_header,
        )
        self.progress.update(record.step, metrics)
        return metrics
