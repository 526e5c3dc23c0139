"""Advantages, trajectory -> sequence merging, datum layout, KL penalty: no backend needed."""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types as tinker_types

from cookbook.rl.data import (
    all_advantages_zero,
    apply_kl_penalty,
    compute_advantages,
    groups_to_sequences,
    is_constant_reward_group,
    sequence_to_datum,
    sequences_to_data,
    trajectory_to_sequences,
)
from cookbook.rl.types import Trajectory, TrajectoryGroup, Transition


def _transition(ob: list[int], ac: list[int], reward: float = 0.0) -> Transition:
    return Transition(
        ob=tinker_types.ModelInput.from_ints(ob),
        ac_tokens=ac,
        ac_logprobs=[-0.5 - 0.1 * i for i in range(len(ac))],
        reward=reward,
        episode_done=False,
    )


def _group(rewards: list[float], final: list[float] | None = None) -> TrajectoryGroup:
    trajectories = [
        Trajectory([_transition([1, 2], [3], r)], tinker_types.ModelInput.empty()) for r in rewards
    ]
    return TrajectoryGroup(
        trajectories_G=trajectories,
        final_rewards_G=final or [0.0] * len(rewards),
        metrics_G=[{} for _ in rewards],
    )


def test_advantages_are_centred_per_group_and_include_group_rewards() -> None:
    groups = [_group([1.0, 0.0, 0.0, 1.0]), _group([0.5, 0.5], final=[1.0, 0.0])]
    adv = compute_advantages(groups)
    assert adv[0] == pytest.approx([0.5, -0.5, -0.5, 0.5])
    assert adv[1] == pytest.approx([0.5, -0.5])
    scaled = compute_advantages(groups, scale_by_std=True)
    assert scaled[0] == pytest.approx([1.0, -1.0, -1.0, 1.0], rel=1e-4)


def test_constant_group_detection_and_zero_advantages() -> None:
    constant = _group([0.3, 0.3, 0.3])
    assert is_constant_reward_group(constant)
    assert not is_constant_reward_group(_group([0.3, 0.2]))
    adv = compute_advantages([constant], scale_by_std=True)
    assert adv == [[0.0, 0.0, 0.0]]
    assert all_advantages_zero(groups_to_sequences([constant], adv))


def test_extending_observations_merge_into_one_sequence() -> None:
    # Turn 2's observation starts with turn 1's observation + action: one sequence.
    traj = Trajectory(
        [_transition([10, 11], [12, 13]), _transition([10, 11, 12, 13, 14], [15])],
        tinker_types.ModelInput.empty(),
    )
    (seq,) = trajectory_to_sequences(traj, advantage=2.0)
    assert seq.tokens == [10, 11, 12, 13, 14, 15]
    assert seq.mask_T.tolist() == [0, 0, 1, 1, 0, 1]
    assert seq.advantages_T.tolist() == [0, 0, 2, 2, 0, 2]
    assert seq.logprobs_T.tolist() == pytest.approx([0, 0, -0.5, -0.6, 0, -0.5])


def test_non_extending_observation_starts_a_new_sequence() -> None:
    traj = Trajectory(
        [_transition([10, 11], [12]), _transition([99, 11, 12, 5], [6])],
        tinker_types.ModelInput.empty(),
    )
    seqs = trajectory_to_sequences(traj, advantage=-1.0)
    assert [s.tokens for s in seqs] == [[10, 11, 12], [99, 11, 12, 5, 6]]
    assert seqs[1].advantages_T.tolist() == [0, 0, 0, 0, -1]


def test_datum_shifts_targets_by_one() -> None:
    traj = Trajectory([_transition([7, 8], [9, 4])], tinker_types.ModelInput.empty())
    (seq,) = trajectory_to_sequences(traj, advantage=1.5)
    datum = sequence_to_datum(seq)
    assert datum.model_input.to_ints() == [7, 8, 9]
    inputs = datum.loss_fn_inputs
    assert inputs["target_tokens"].to_numpy().tolist() == [8, 9, 4]
    assert inputs["advantages"].to_numpy().tolist() == [0.0, 1.5, 1.5]
    assert inputs["logprobs"].to_numpy().tolist() == pytest.approx([0.0, -0.5, -0.6])


def test_a_batch_lays_out_every_trajectory_as_alone() -> None:
    """groups_to_sequences lays the whole batch out at once (shared arrays underneath): each
    sequence is what its trajectory gives alone, and changing one leaves the others alone."""
    multi = Trajectory(
        [_transition([10, 11], [12, 13]), _transition([10, 11, 12, 13, 14], [15])],
        tinker_types.ModelInput.empty(),
    )
    split = Trajectory(
        [_transition([10, 11], [12]), _transition([99, 11, 12, 5], [6])],
        tinker_types.ModelInput.empty(),
    )
    single = Trajectory([_transition([7, 8], [9, 4])], tinker_types.ModelInput.empty())
    empty_action = Trajectory([_transition([5], [])], tinker_types.ModelInput.empty())
    groups = [
        TrajectoryGroup([multi, split], [0.0, 0.0], [{}, {}]),
        TrajectoryGroup([empty_action, single], [0.0, 0.0], [{}, {}]),
    ]
    advantages = [[2.0, -1.0], [3.0, 1.5]]
    batch = groups_to_sequences(groups, advantages)
    alone = [
        *trajectory_to_sequences(multi, 2.0),
        *trajectory_to_sequences(split, -1.0),
        # empty_action has one token: nothing to predict, no sequence.
        *trajectory_to_sequences(single, 1.5),
    ]
    assert [s.tokens for s in batch] == [
        [10, 11, 12, 13, 14, 15],
        [10, 11, 12],
        [99, 11, 12, 5, 6],
        [7, 8, 9, 4],
    ]
    for got, want in zip(batch, alone, strict=True):
        assert got.tokens == want.tokens
        assert got.mask_T.tolist() == want.mask_T.tolist()
        assert got.advantages_T.tolist() == want.advantages_T.tolist()
        assert got.logprobs_T.tolist() == pytest.approx(want.logprobs_T.tolist())
    batch[0].advantages_T[:] = 0.0
    assert batch[1].advantages_T.tolist() == [0, 0, -1]
    data = sequences_to_data(batch)
    for datum, sequence in zip(data, batch, strict=True):
        one = sequence_to_datum(sequence)
        assert datum.model_input.to_ints() == one.model_input.to_ints()
        for key in ("target_tokens", "logprobs", "advantages"):
            assert (
                datum.loss_fn_inputs[key].to_numpy().tolist()
                == one.loss_fn_inputs[key].to_numpy().tolist()
            )


def test_a_transition_with_mismatched_logprobs_is_refused() -> None:
    bad = Transition(
        ob=tinker_types.ModelInput.from_ints([1, 2]),
        ac_tokens=[3, 4],
        ac_logprobs=[-0.5],
        reward=0.0,
        episode_done=True,
    )
    with pytest.raises(ValueError, match="2 action tokens but 1 logprobs"):
        trajectory_to_sequences(Trajectory([bad], tinker_types.ModelInput.empty()), 1.0)


def test_kl_penalty_moves_advantages_towards_the_reference() -> None:
    traj_a = Trajectory([_transition([1], [2, 3])], tinker_types.ModelInput.empty())
    traj_b = Trajectory([_transition([1], [4])], tinker_types.ModelInput.empty())
    seqs = trajectory_to_sequences(traj_a, 0.0) + trajectory_to_sequences(traj_b, 0.0)
    # Sampling logprobs are -0.5, -0.6 / -0.5; the reference agrees on the first token only.
    reference = [[None, -0.5, -1.6], [None, -0.2]]
    metrics = apply_kl_penalty(seqs, reference, kl_penalty_coef=1.0)
    diffs = np.array([0.0, 1.0, -0.3])
    assert metrics["kl_policy_ref"] == pytest.approx(diffs.mean())
    assert seqs[0].advantages_T.tolist() == pytest.approx(
        [0.0, diffs.mean() - 0.0, diffs.mean() - 1.0]
    )
    assert seqs[1].advantages_T.tolist() == pytest.approx([0.0, diffs.mean() + 0.3])
    assert not all_advantages_zero(seqs)
