"""Rollouts with a scripted policy: concurrency of a group's seats, lost groups, seeds."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Sequence

import pytest
from tinker import types as tinker_types

from cookbook.rl.metrics import rollout_metrics
from cookbook.rl.rollouts import BusyTimer, SampledTokens, do_batch_rollout
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Metrics,
    Observation,
    StepResult,
    StopCondition,
    Trajectory,
)


class ScriptedPolicy:
    """Answers every observation with its length mod 200, and remembers the seeds it got."""

    def __init__(self) -> None:
        self.seeds: list[int] = []

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        self.seeds.append(seed)
        await asyncio.sleep(0)
        return SampledTokens(tokens=[ob.length % 200], logprobs=[-1.0])


class Game:
    """A two-seat game: seats move in turn, each waiting for the other's move."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.moves: list[tuple[int, int]] = []
        self.turn = 0
        self.changed = asyncio.Condition()

    async def play(self, seat: int, token: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.turn % 2 == seat)
            self.moves.append((seat, token))
            self.turn += 1
            self.changed.notify_all()


class SeatEnv(Env):
    def __init__(self, game: Game, seat: int, fail: bool = False) -> None:
        self.game = game
        self.seat = seat
        self.fail = fail
        self.steps = 0

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return tinker_types.ModelInput.from_ints([1] * (self.seat + 1)), [0]

    async def step(self, action: Action) -> StepResult:
        if self.fail:
            raise ValueError("seat broke")
        await self.game.play(self.seat, action[0])
        self.steps += 1
        done = self.steps >= self.game.rounds
        ob = tinker_types.ModelInput.from_ints([1] * (len(self.game.moves) + 1))
        return StepResult(
            reward=0.0, episode_done=done, next_observation=ob, next_stop_condition=[0]
        )


class GameGroup(EnvGroupBuilder):
    def __init__(self, rounds: int = 3, fail_seat: int | None = None, hang: bool = False):
        self.rounds = rounds
        self.fail_seat = fail_seat
        self.hang = hang

    async def make_envs(self) -> Sequence[Env]:
        if self.hang:
            await asyncio.sleep(60)
        game = Game(self.rounds)
        return [SeatEnv(game, s, fail=s == self.fail_seat) for s in range(2)]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        # Seat 0 wins: the outcome needs the whole game, so it is a group reward.
        return [(1.0, {"win": 1.0}), (-1.0, {"win": 0.0})]

    def logging_tags(self) -> list[str]:
        return ["game"]


def test_seats_of_one_game_play_concurrently() -> None:
    policy = ScriptedPolicy()
    batch = asyncio.run(do_batch_rollout([GameGroup(rounds=3)], policy, seed=1, sampler_step=0))
    assert batch.lost == 0
    (group,) = batch.groups_P
    assert [len(t.transitions) for t in group.trajectories_G] == [3, 3]
    assert group.get_total_rewards() == [1.0, -1.0]
    metrics = rollout_metrics(batch, train_step=2)
    assert metrics["reward/mean"] == 0.0
    assert metrics["tag/game/env/win"] == 0.5
    assert metrics["rollout/staleness_max"] == 2.0


def test_a_failing_or_hanging_group_is_lost_alone() -> None:
    policy = ScriptedPolicy()
    builders = [GameGroup(), GameGroup(fail_seat=1), GameGroup(hang=True), GameGroup()]
    # Seat 0 of the failing game would wait forever for seat 1; the group must still end
    # (the outer wait_for only turns a hang of this test into a failure). The hanging group
    # sleeps a minute; a healthy env call takes microseconds, far inside the 1 s limit.
    batch = asyncio.run(
        asyncio.wait_for(
            do_batch_rollout(builders, policy, seed=1, sampler_step=0, step_timeout_s=1.0), 30
        )
    )
    assert (batch.errors, batch.timeouts) == (1, 1)
    assert batch.group_indices_P == [0, 3]
    assert "ValueError: seat broke" in batch.error_messages[0]
    assert "make_envs took longer than 1 s" in batch.error_messages[1]
    metrics = rollout_metrics(batch, train_step=0)
    assert (metrics["rollout/errors"], metrics["rollout/timeouts"]) == (1.0, 1.0)


def test_sample_seeds_are_distinct_and_reproducible() -> None:
    def run() -> list[int]:
        policy = ScriptedPolicy()
        asyncio.run(do_batch_rollout([GameGroup(), GameGroup()], policy, seed=7, sampler_step=0))
        return sorted(policy.seeds)

    first = run()
    assert len(first) == 12 and len(set(first)) == 12  # 2 groups x 2 seats x 3 turns
    assert run() == first


def test_busy_timer_counts_overlapping_calls_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    timer = BusyTimer()
    timer.enter()  # call A from t=0
    clock[0] = 1.0
    timer.enter()  # call B overlaps A
    clock[0] = 2.0
    timer.exit()
    clock[0] = 3.0
    timer.exit()  # A and B together: busy from 0 to 3
    clock[0] = 5.0  # idle
    timer.enter()
    clock[0] = 5.5
    assert timer.take() == 3.5  # a call still in flight counts up to now
    clock[0] = 6.0
    timer.exit()
    assert timer.take() == 0.5


def test_a_given_up_group_leaves_no_error_to_be_logged_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    woke = threading.Event()

    class Blocking(GameGroup):
        async def make_envs(self) -> Sequence[Env]:
            time.sleep(0.8)  # blocks its thread: the runner gives the group up meanwhile
            woke.set()
            return await super().make_envs()

    batch = asyncio.run(
        do_batch_rollout(
            [Blocking(), GameGroup()], ScriptedPolicy(), seed=1, sampler_step=0, step_timeout_s=0.2
        )
    )
    assert (batch.timeouts, batch.group_indices_P) == (1, [1])
    assert woke.wait(10)
    time.sleep(0.3)  # the thread's group task fails with "given up" and is collected
    gc.collect()
    # an unread task error would be logged (with a traceback) whenever it is collected, from
    # that thread, into whatever runs next
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
