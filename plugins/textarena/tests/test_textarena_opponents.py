"""Opponent mixtures, seat alternation, self-play groups and the snapshot pool (on Nim): how a
batch is split, what each group plays, and the metrics that show a group collapsing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from cookbook_textarena.envs import TwoPlayerGroupBuilder, TwoPlayerRLDataset
from cookbook_textarena.opponents import (
    POOL_CLIENTS,
    SnapshotPool,
    allocate,
    parse_mixture,
)
from cookbook_textarena.testing import play_group, reply_tokens, user_text
from nim_game import NimEnvBuilder, NoSolverNimEnvBuilder

from cookbook.errors import UserError
from cookbook.rl.rollouts import SampledTokens, do_group_rollout
from cookbook.rl.types import Observation, StopCondition
from cookbook.runs.checkpoints import Checkpoint, CheckpointIndex
from cookbook.testing import tiny_context


def take_one_from_last(prompt: str) -> str:
    """Take one object from the last non-empty pile (always legal)."""
    sizes = [int(n) for n in prompt.split()]
    pile = max(i for i, n in enumerate(sizes) if n)
    return f"{pile} 1"


def batch(builder: NimEnvBuilder, index: int = 0, **ctx: int) -> list[TwoPlayerGroupBuilder]:
    train, _ = builder(tiny_context(**ctx))
    groups = list(train.get_batch(index))
    assert all(isinstance(g, TwoPlayerGroupBuilder) for g in groups)
    return groups


def test_mixtures_parse_with_weights_or_as_one_name() -> None:
    assert parse_mixture("random") == {"random": 1.0}
    assert parse_mixture(" random:1, optimal:3 ,pool:0") == {"random": 1.0, "optimal": 3.0}
    for bad, message in [
        ("minimax", "unknown env.opponent 'minimax'; choose one of: random, optimal"),
        ("random:1,random:2", "appears twice"),
        ("random:x", "bad weight 'x'"),
        ("random:-1", "must be a number >= 0"),
        ("random:0", "every opponent weight 0"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_mixture(bad)
    with pytest.raises(UserError, match=r"env\.opponent 'best'"):
        NimEnvBuilder(opponent="random:1,best:1")


def test_groups_are_shared_out_by_largest_remainder_in_a_seeded_order() -> None:
    rng = random.Random(0)
    assert Counter(allocate({"random": 1, "optimal": 1, "self": 1, "pool": 1}, 16, rng)) == {
        "random": 4,
        "optimal": 4,
        "self": 4,
        "pool": 4,
    }
    assert Counter(allocate({"random": 3, "optimal": 1}, 16, rng)) == {"random": 12, "optimal": 4}
    # 16 / 3 = 5.33 each: the one group left goes to the first kind
    assert Counter(allocate({"a": 1, "b": 1, "c": 1}, 16, rng)) == {"a": 6, "b": 5, "c": 5}
    assert allocate({"a": 1, "b": 1}, 8, random.Random(1)) == allocate(
        {"a": 1, "b": 1}, 8, random.Random(1)
    )


def test_a_mixed_batch_gives_each_opponent_both_seats() -> None:
    builder = NimEnvBuilder(opponent="random:1,optimal:1,self:2", seat="alternate")
    groups = batch(builder, groups_per_batch=8, group_size=4)
    by_kind = {
        kind: [g for g in groups if g.kind == kind] for kind in ("random", "optimal", "self")
    }
    assert [len(v) for v in by_kind.values()] == [2, 2, 4]
    for kind in ("random", "optimal"):
        assert sorted(g.seat for g in by_kind[kind]) == [0, 1]
        assert all(len(g.game_seeds) == 4 and not g.self_play for g in by_kind[kind])
    assert all(g.self_play and len(g.game_seeds) == 2 for g in by_kind["self"])
    again = batch(builder, groups_per_batch=8, group_size=4)
    assert [_plan(g) for g in groups] == [_plan(g) for g in again]  # replays exactly
    later = batch(builder, index=1, groups_per_batch=8, group_size=4)
    assert [_plan(g) for g in groups] != [_plan(g) for g in later]


def _plan(group: TwoPlayerGroupBuilder) -> tuple[str, int, tuple[int, ...]]:
    return group.kind, group.seat, group.game_seeds


def test_a_kind_with_one_group_per_batch_alternates_seats_across_batches() -> None:
    builder = NimEnvBuilder(opponent="random:3,optimal:1", seat="alternate")
    seats = [
        next(g.seat for g in batch(builder, i, groups_per_batch=4) if g.kind == "optimal")
        for i in range(4)
    ]
    assert seats == [0, 1, 0, 1]


def test_mixture_options_are_checked_when_the_env_is_built() -> None:
    with pytest.raises(UserError, match="even group_size"):
        NimEnvBuilder(opponent="random:1,pool:1")(tiny_context(group_size=3))
    with pytest.raises(UserError, match="needs an optimal policy"):
        NoSolverNimEnvBuilder(opponent="random:1,optimal:1")(tiny_context())
    with pytest.raises(UserError, match="opponent_checkpoint=PATH"):
        NimEnvBuilder(opponent="random:1,checkpoint:1")(tiny_context())


def _run_dir_with_snapshots(tmp_path: Path, steps: list[int]) -> str:
    index = CheckpointIndex(tmp_path)
    for step in steps:
        index.add(Checkpoint(step=step, state_path=f"s{step}", sampler_path=f"sampler{step}"))
    return str(tmp_path)


def test_the_pool_offers_the_newest_snapshots_saved_before_the_batch(tmp_path: Path) -> None:
    log_dir = _run_dir_with_snapshots(tmp_path, [10, 20, 30, 40])
    pool = SnapshotPool(log_dir, size=2)
    assert [s.step for s in pool.snapshots(35)] == [20, 30]
    assert [s.step for s in pool.snapshots(100)] == [30, 40]
    assert pool.snapshots(5) == [] and SnapshotPool(None, 2).snapshots(100) == []

    builder = NimEnvBuilder(opponent="pool", pool_size=2)
    train, _ = builder(replace(tiny_context(group_size=4), log_dir=log_dir))
    assert isinstance(train, TwoPlayerRLDataset)
    early = train.get_batch(5)  # nothing saved yet: self-play
    assert all(g.self_play and g.kind == "self" for g in early)
    late = train.get_batch(42)
    assert all(
        g.kind == "pool" and g.opponent_checkpoint in ("sampler30", "sampler40") for g in late
    )
    assert {g.snapshot_age for g in late} <= {2, 12} and all(g.pool_size == 2 for g in late)


def test_groups_report_collapse_and_per_opponent_tags() -> None:
    group = batch(NimEnvBuilder(self_play=True), group_size=4)[0]
    _steps, rewards_G = asyncio.run(play_group(group, [take_one_from_last] * 4))
    # one fixed policy in both seats: the group's two games are the same game
    assert [metrics["distinct_games"] for _, metrics in rewards_G] == [0.5] * 4
    assert group.logging_tags() == ["nim", "vs_self"]
    vs_optimal = batch(NimEnvBuilder(opponent="optimal", seat="second"))[0]
    assert vs_optimal.logging_tags() == ["nim", "vs_optimal", "second_seat"]


class _FixedLogprobPolicy:
    """A token policy for the runner's rollout code: a text policy's reply, every token with
    log-probability -0.5."""

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        tokens = reply_tokens(take_one_from_last(user_text(ob.to_ints())))
        return SampledTokens(tokens=tokens, logprobs=[-0.5] * len(tokens))


def test_the_runner_sees_the_sampled_entropy_of_each_game() -> None:
    group = batch(NimEnvBuilder(self_play=True), group_size=4)[0]
    rolled = asyncio.run(do_group_rollout(group, _FixedLogprobPolicy(), seed=0))
    assert [m["entropy"] for m in rolled.metrics_G] == [0.5] * 4
    assert rolled.tags == ["nim", "vs_self"]


def test_a_pool_snapshot_plays_through_a_real_frozen_model(tmp_path: Path) -> None:
    import torch

    from cookbook.backends import make_service_client

    training = make_service_client("local", device="cpu").create_lora_training_client("tiny")
    saved = training.save_weights_for_sampler(str(tmp_path / "snap" / "sampler")).result()
    CheckpointIndex(tmp_path).add(Checkpoint(step=3, state_path="x", sampler_path=saved.path))
    builder = NimEnvBuilder(opponent="pool", opponent_max_tokens=3)
    ctx = replace(tiny_context(group_size=2, groups_per_batch=1), log_dir=str(tmp_path))
    group = builder(ctx)[0].get_batch(7)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    assert group.kind == "pool" and group.snapshot_age == 4
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's small ops lose time in a thread pool
    try:
        _steps, rewards_G = asyncio.run(play_group(group, [take_one_from_last] * 2))
    finally:
        torch.set_num_threads(before)
    for _, metrics in rewards_G:
        assert metrics["pool_size"] == 1.0 and metrics["snapshot_age"] == 4.0
        assert "opponent_fallbacks" in metrics  # an untrained model's bad replies are replaced
    assert len(POOL_CLIENTS) >= 1
