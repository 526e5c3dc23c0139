"""Per-step metrics of an RL batch: rewards (overall and per logging tag), episode shape, env
metrics, lost groups, staleness, and the train-side numbers (entropy, KL sampler vs learner).

Everything here is a few passes over Python lists and numpy arrays: cheap next to a step."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from cookbook.rl.data import FloatArray, TrainSequence
from cookbook.rl.rollouts import BatchRollout
from cookbook.rl.types import TrajectoryGroup


class _Means:
    """Running means keyed by metric name."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, total: float, count: int = 1) -> None:
        """Add `count` values whose sum is `total`."""
        self.sums[key] += total
        self.counts[key] += count

    def add_all(self, prefix: str, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.add(prefix + key, float(value))

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}


def group_metrics(groups_P: Sequence[TrajectoryGroup], prefix: str = "") -> dict[str, float]:
    """Reward statistics, episode shape and env metrics over `groups_P`, overall and per tag
    (`tag/<tag>/...`). Step metrics average over turns, group metrics over trajectories."""
    out: dict[str, float] = {}
    rewards: list[float] = []
    means = _Means()
    for group in groups_P:
        totals_G = group.get_total_rewards()
        rewards.extend(totals_G)
        size = len(totals_G)
        scopes = ["", *(f"tag/{tag}/" for tag in group.tags)]
        # Sums per group, not adds per trajectory: a batch has thousands of trajectories.
        reward_sum = sum(totals_G)
        for scope in scopes:
            means.add(f"{scope}reward/mean", reward_sum, size)
        transitions_G = [trajectory.transitions for trajectory in group.trajectories_G]
        means.add("episode/turns", sum(len(turns) for turns in transitions_G), size)
        means.add(
            "episode/action_tokens",
            sum(len(t.ac_tokens) for turns in transitions_G for t in turns),
            size,
        )
        for group_m in group.metrics_G:
            for scope in scopes if group_m else ():
                means.add_all(f"{scope}env/", group_m)
        for turns in transitions_G:
            for transition in turns:
                for scope in scopes if transition.metrics else ():
                    means.add_all(f"{scope}env/", transition.metrics)
    out.update(means.means())
    if rewards:
        rewards_arr = np.asarray(rewards)
        out["reward/std"] = float(rewards_arr.std())
        out["reward/min"] = float(rewards_arr.min())
        out["reward/max"] = float(rewards_arr.max())
    return {prefix + k: v for k, v in out.items()}


def rollout_metrics(batch: BatchRollout, train_step: int) -> dict[str, float]:
    """Metrics of one batch's rollouts, sampled by weights `batch.sampler_step`, trained on at
    `train_step` (the difference is the batch's staleness in optimiser steps)."""
    out = group_metrics(batch.groups_P)
    num_samples = sum(len(g.trajectories_G) for g in batch.groups_P)
    staleness = train_step - batch.sampler_step
    out.update(
        {
            "rollout/groups": float(batch.num_groups),
            "rollout/trajectories": float(num_samples),
            "rollout/errors": float(batch.errors),
            "rollout/timeouts": float(batch.timeouts),
            # Every sample of a batch comes from one sampler, so the per-sample staleness is the
            # batch's; mean and max stay separate keys for pipelines that mix samplers.
            "rollout/staleness_mean": float(staleness),
            "rollout/staleness_max": float(staleness),
        }
    )
    return out


def train_metrics(
    sequences_D: Sequence[TrainSequence], train_logprobs_D: Iterable[FloatArray]
) -> dict[str, float]:
    """Entropy estimate and sampler-vs-learner KL over the action tokens.

    `train_logprobs_D` are the learner's logprobs of each datum's targets (aligned with
    `tokens[1:]`), as returned by `forward_backward`. Entropy is estimated as the mean negative
    sampling logprob; `kl_sample_train_v1` is mean(sample - train), `v2` half the mean square."""
    out = {
        "optim/datums": float(len(sequences_D)),
        "optim/tokens": float(sum(len(s.tokens) for s in sequences_D)),
    }
    if not sequences_D:
        return out
    # One pass over the whole batch: the per-sequence arrays concatenated once.
    mask_N = np.concatenate([s.mask_T[1:] for s in sequences_D]) > 0
    sample_all = np.concatenate([s.logprobs_T[1:] for s in sequences_D])[mask_N]
    train_all = np.concatenate(
        [np.asarray(t, dtype=np.float32).reshape(-1) for t in train_logprobs_D]
    )[mask_N]
    out["optim/action_tokens"] = float(sample_all.size)
    if sample_all.size:
        diff = sample_all - train_all
        out["optim/entropy"] = float(-sample_all.mean())
        out["optim/kl_sample_train_v1"] = float(diff.mean())
        out["optim/kl_sample_train_v2"] = float(0.5 * (diff * diff).mean())
    return out
