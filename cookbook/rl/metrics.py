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

    def add(self, key: str, value: float) -> None:
        self.sums[key] += value
        self.counts[key] += 1

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
        scopes = ["", *(f"tag/{tag}/" for tag in group.tags)]
        for trajectory, total, group_m in zip(
            group.trajectories_G, totals_G, group.metrics_G, strict=True
        ):
            n_ac = sum(len(t.ac_tokens) for t in trajectory.transitions)
            for scope in scopes:
                means.add(f"{scope}reward/mean", total)
                means.add_all(f"{scope}env/", group_m)
            means.add("episode/turns", len(trajectory.transitions))
            means.add("episode/action_tokens", n_ac)
            for transition in trajectory.transitions:
                for scope in scopes:
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
    sample_lp: list[FloatArray] = []
    train_lp: list[FloatArray] = []
    for sequence, train_T in zip(sequences_D, train_logprobs_D, strict=True):
        mask_T = sequence.mask_T[1:] > 0
        sample_lp.append(sequence.logprobs_T[1:][mask_T])
        train_lp.append(np.asarray(train_T, dtype=np.float32).reshape(-1)[mask_T])
    out = {
        "optim/datums": float(len(sequences_D)),
        "optim/tokens": float(sum(len(s.tokens) for s in sequences_D)),
    }
    if not sample_lp:
        return out
    sample_all = np.concatenate(sample_lp)
    train_all = np.concatenate(train_lp)
    out["optim/action_tokens"] = float(sample_all.size)
    if sample_all.size:
        diff = sample_all - train_all
        out["optim/entropy"] = float(-sample_all.mean())
        out["optim/kl_sample_train_v1"] = float(diff.mean())
        out["optim/kl_sample_train_v2"] = float(0.5 * (diff * diff).mean())
    return out
