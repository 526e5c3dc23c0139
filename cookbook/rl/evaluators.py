"""The evaluator the RL loop builds from an env's test split: roll the test batches out with the
current weights, report rewards and env metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cookbook.eval.types import Evaluator
from cookbook.rl.metrics import group_metrics
from cookbook.rl.rollouts import SamplingPolicy, do_batch_rollout, mix_seed
from cookbook.rl.types import RLDataset

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient


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
