"""Evaluators of the RL loop: the one it builds from an env's test split (roll the test batches
out with the current weights, report rewards and env metrics), and a wrapper that runs another
evaluator on a wall-clock schedule (for learning curves against time)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import chz

from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.rl.metrics import group_metrics
from cookbook.rl.rollouts import SamplingPolicy, do_batch_rollout, mix_seed
from cookbook.rl.types import RLDataset

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext


class RLTestSetEvaluator(Evaluator):
    """Rolls out (up to `max_batches` of) an RL test dataset, same seeds every time, so two
    evaluations differ only through the weights."""

    def __init__(
        self,
        dataset: RLDataset,
        max_tokens: int,
        temperature: float,
        seed: int = 0,
        step_timeout_s: float | None = None,
        max_batches: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.step_timeout_s = step_timeout_s
        self.num_batches = len(dataset) if max_batches is None else min(len(dataset), max_batches)

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Reward mean (overall and per tag), env metrics, and lost groups."""
        policy = SamplingPolicy(sampling_client, self.max_tokens, self.temperature)
        batches = await asyncio.gather(
            *(
                do_batch_rollout(
                    self.dataset.get_batch(i),
                    policy,
                    seed=mix_seed(self.seed, 0x7E57, i),
                    sampler_step=0,
                    step_timeout_s=self.step_timeout_s,
                )
                for i in range(self.num_batches)
            )
        )
        groups = [g for b in batches for g in b.groups_P]
        metrics = group_metrics(groups)
        metrics["groups"] = float(len(groups))
        metrics["lost_groups"] = float(sum(b.lost for b in batches))
        return metrics


@chz.chz
class TimedEvaluatorBuilder(EvaluatorBuilder):
    """Runs `inner` at most once per `every_s` seconds of the run's own time, for a learning curve
    against wall time. Use it with `eval_every=1`: when no point is due it returns no metrics
    (nothing is logged). Its own evaluations are not counted as run time, so the curve's clock
    (`wall_s`) is the time a run without it would have taken."""

    inner: EvaluatorBuilder
    """The evaluator to run."""
    every_s: float = 15.0
    """Seconds of run time between two evaluations."""
    started_at: float = 0.0
    """`time.time()` when the run started (0: when this builder is called)."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The scheduling wrapper around `inner(ctx)`."""
        started_at = self.started_at or time.time()
        return TimedEvaluator(self.inner(ctx), self.every_s, started_at)


class TimedEvaluator(Evaluator):
    """See `TimedEvaluatorBuilder`. Adds `wall_s` (run time at the evaluation) and `eval_s` (what
    the evaluation itself took) to the inner metrics."""

    def __init__(self, inner: Evaluator, every_s: float, started_at: float) -> None:
        self.inner = inner
        self.every_s = every_s
        self.started_at = started_at
        self.own_s = 0.0
        """Seconds spent in the inner evaluator so far (left out of the run's clock)."""
        self.next_due_s = 0.0
        """Run time at which the next evaluation is due (the first call always evaluates)."""

    def run_time_s(self) -> float:
        """Seconds since the start, less the time spent evaluating."""
        return time.time() - self.started_at - self.own_s

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """The inner metrics when a point is due, else nothing."""
        wall_s = self.run_time_s()
        if wall_s < self.next_due_s:
            return {}
        self.next_due_s = wall_s + self.every_s  # points every_s apart, however long steps are
        t0 = time.time()
        metrics = await self.inner(sampling_client)
        eval_s = time.time() - t0
        self.own_s += eval_s
        return {**metrics, "wall_s": wall_s, "eval_s": eval_s}
