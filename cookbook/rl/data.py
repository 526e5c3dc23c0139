"""Trajectories to training data: group-centred advantages, then one token sequence per run of
turns that extend each other, then tinker `Datum`s.

A datum follows the tinker convention: `model_input` is `tokens[:-1]`, and the loss inputs
`target_tokens`, `logprobs` (the sampler's) and `advantages` are aligned with `tokens[1:]`, so
position i predicts token i+1. Prompt tokens carry advantage 0 and therefore no loss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cookbook.rl.types import Trajectory, TrajectoryGroup

if TYPE_CHECKING:
    from tinker import types as tinker_types

FloatArray = npt.NDArray[np.float32]


def compute_advantages(
    groups_P: Sequence[TrajectoryGroup], scale_by_std: bool = False
) -> list[list[float]]:
    """Reward minus the group's mean, per trajectory (`advantages_P_G`); divided by the group's
    standard deviation when `scale_by_std` (a constant group stays all zero)."""
    advantages_P_G: list[list[float]] = []
    for group in groups_P:
        # Plain Python: groups are small, and numpy's per-call overhead would dominate.
        rewards_G = group.get_total_rewards()
        mean = sum(rewards_G) / len(rewards_G)
        centred_G = [r - mean for r in rewards_G]
        if scale_by_std:
            std = math.sqrt(sum(c * c for c in centred_G) / len(centred_G))
            centred_G = [c / (std + 1e-6) for c in centred_G]
        advantages_P_G.append(centred_G)
    return advantages_P_G


def is_constant_reward_group(group: TrajectoryGroup) -> bool:
    """Whether every trajectory of `group` got the same total reward (no learning signal)."""
    rewards_G = group.get_total_rewards()
    return max(rewards_G) - min(rewards_G) < 1e-9


@dataclass
class TrainSequence:
    """One token sequence to train on, before it becomes a `Datum` (arrays over all tokens)."""

    tokens: list[int]
    """All tokens: prompts and sampled actions."""
    logprobs_T: FloatArray
    """Sampling logprob of each token (0 on prompt tokens)."""
    advantages_T: FloatArray
    """Advantage of each token (0 on prompt tokens)."""
    mask_T: FloatArray
    """1 on sampled (action) tokens, 0 on prompt tokens."""


def trajectory_to_sequences(trajectory: Trajectory, advantage: float) -> list[TrainSequence]:
    """The sequences of one trajectory. A turn whose observation starts with everything seen so far
    (the previous observation and action) extends the current sequence; any other turn starts a
    new one."""
    return _sequences([(trajectory, advantage)])


def groups_to_sequences(
    groups_P: Sequence[TrajectoryGroup], advantages_P_G: Sequence[Sequence[float]]
) -> list[TrainSequence]:
    """The sequences of every trajectory of every group, in order."""
    return _sequences(
        (trajectory, advantage)
        for group, advantages_G in zip(groups_P, advantages_P_G, strict=True)
        for trajectory, advantage in zip(group.trajectories_G, advantages_G, strict=True)
    )


def _sequences(trajectories: Iterable[tuple[Trajectory, float]]) -> list[TrainSequence]:
    """`trajectory_to_sequences` of many trajectories at once: token lists turn by turn in
    Python, then the logprobs, advantages and mask of the whole batch in a few numpy operations
    (each sequence's arrays are views of them), not three small arrays per sequence."""
    tokens_D: list[list[int]] = []
    offsets_D: list[int] = []
    # Action spans of the kept sequences, as offsets into the batch's flat arrays.
    starts_A: list[int] = []
    lengths_A: list[int] = []
    advantages_A: list[float] = []
    logprobs: list[float] = []
    total = 0

    def flush(tokens: list[int], spans: list[tuple[int, list[float]]], advantage: float) -> None:
        nonlocal total
        if len(tokens) < 2:  # nothing to predict
            return
        tokens_D.append(tokens)
        offsets_D.append(total)
        for start, span_logprobs in spans:
            starts_A.append(total + start)
            lengths_A.append(len(span_logprobs))
            advantages_A.append(advantage)
            logprobs.extend(span_logprobs)
        total += len(tokens)

    for trajectory, advantage in trajectories:
        tokens: list[int] = []
        spans: list[tuple[int, list[float]]] = []  # (start in the sequence, logprobs)
        for transition in trajectory.transitions:
            ob_tokens = transition.ob.to_ints()
            n = len(tokens)
            if n and len(ob_tokens) >= n and ob_tokens[:n] == tokens:
                tokens += ob_tokens[n:]
            else:
                flush(tokens, spans, advantage)
                tokens, spans = list(ob_tokens), []
            if len(transition.ac_logprobs) != len(transition.ac_tokens):
                raise ValueError(
                    f"a transition has {len(transition.ac_tokens)} action tokens but "
                    f"{len(transition.ac_logprobs)} logprobs"
                )
            spans.append((len(tokens), transition.ac_logprobs))
            tokens += transition.ac_tokens
        flush(tokens, spans, advantage)

    logprobs_N = np.zeros(total, dtype=np.float32)
    advantages_N = np.zeros(total, dtype=np.float32)
    mask_N = np.zeros(total, dtype=np.float32)
    if logprobs:
        lengths = np.asarray(lengths_A, dtype=np.int64)
        positions = _ranges(np.asarray(starts_A, dtype=np.int64), lengths)
        logprobs_N[positions] = np.asarray(logprobs, dtype=np.float32)
        advantages_N[positions] = np.repeat(np.asarray(advantages_A, dtype=np.float32), lengths)
        mask_N[positions] = 1.0
    return [
        TrainSequence(
            tokens=tokens,
            logprobs_T=logprobs_N[o : o + len(tokens)],
            advantages_T=advantages_N[o : o + len(tokens)],
            mask_T=mask_N[o : o + len(tokens)],
        )
        for tokens, o in zip(tokens_D, offsets_D, strict=True)
    ]


def _ranges(starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`concat(arange(s, s + n) for s, n in zip(starts, lengths))`, vectorised."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)


def apply_kl_penalty(
    sequences_D: Sequence[TrainSequence],
    reference_logprobs_D: Sequence[Sequence[float | None]],
    kl_penalty_coef: float,
) -> dict[str, float]:
    """Penalise drifting from a reference policy: on each action token the advantage gets
    `coef * (mean_diff - diff)`, where diff = sampling logprob - reference logprob (a per-token KL
    estimate) and mean_diff its mean over the batch. Returns `kl_policy_ref` (the mean diff)."""
    diffs_D: list[FloatArray] = []
    for sequence, reference in zip(sequences_D, reference_logprobs_D, strict=True):
        ref_T = np.asarray([0.0 if x is None else x for x in reference], dtype=np.float32)
        diffs_D.append((sequence.logprobs_T - ref_T) * sequence.mask_T)
    num_action_tokens = sum(float(s.mask_T.sum()) for s in sequences_D)
    if num_action_tokens == 0:
        return {"kl_policy_ref": 0.0}
    mean_diff = sum(float(d.sum()) for d in diffs_D) / num_action_tokens
    for sequence, diff_T in zip(sequences_D, diffs_D, strict=True):
        sequence.advantages_T = sequence.advantages_T + (
            kl_penalty_coef * (mean_diff - diff_T) * sequence.mask_T
        ).astype(np.float32)
    return {"kl_policy_ref": mean_diff}


def sequence_to_datum(sequence: TrainSequence) -> tinker_types.Datum:
    """The tinker datum of `sequence` (inputs shifted by one against the targets)."""
    return sequences_to_data([sequence])[0]


def sequences_to_data(sequences_D: Sequence[TrainSequence]) -> list[tinker_types.Datum]:
    """`sequence_to_datum` of every sequence; the target ids of all of them are converted in
    one pass (each datum's are a view)."""
    from tinker import types as tinker_types

    total = sum(len(s.tokens) for s in sequences_D)
    tokens_N = np.fromiter(
        itertools.chain.from_iterable(s.tokens for s in sequences_D), dtype=np.int64, count=total
    )
    data_D = []
    offset = 0
    for sequence in sequences_D:
        end = offset + len(sequence.tokens)
        data_D.append(
            tinker_types.Datum(
                model_input=tinker_types.ModelInput.from_ints(sequence.tokens[:-1]),
                loss_fn_inputs={
                    "target_tokens": tinker_types.TensorData.from_numpy(tokens_N[offset + 1 : end]),
                    "logprobs": tinker_types.TensorData.from_numpy(sequence.logprobs_T[1:]),
                    "advantages": tinker_types.TensorData.from_numpy(sequence.advantages_T[1:]),
                },
            )
        )
        offset = end
    return data_D


def all_advantages_zero(sequences_D: Sequence[TrainSequence]) -> bool:
    """True when no token has a non-zero advantage (an optimiser step would only decay Adam's
    moments and then overshoot on the next real batch, so the runner skips it)."""
    return all(not np.any(s.advantages_T) for s in sequences_D)
