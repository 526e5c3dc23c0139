"""Rollouts: run every env of every group concurrently against a policy.

A group is lost as a whole when one of its envs raises or an env call runs past the per-call
timeout (in a multi-agent game the other seats would wait forever otherwise); the loss is counted
and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from cookbook.rl.types import (
    Env,
    EnvGroupBuilder,
    Observation,
    StopCondition,
    Trajectory,
    TrajectoryGroup,
    Transition,
)

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient

_T = TypeVar("_T")


@dataclass
class SampledTokens:
    """What a policy produced for one turn."""

    tokens: list[int]
    logprobs: list[float]


class TokenPolicy(Protocol):
    """Anything that answers an observation with tokens (a sampling client, a scripted test
    policy). `seed` makes the sample reproducible whatever order the calls are served in."""

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens: ...


class BusyTimer:
    """Wall time during which at least one tracked call was in flight.

    Concurrent calls overlap, so summing their durations would overcount; this measures the union
    of their intervals (the time the runner was waiting on the backend)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._in_flight = 0
        self._since = 0.0

    def enter(self) -> None:
        """A call starts."""
        if self._in_flight == 0:
            self._since = time.perf_counter()
        self._in_flight += 1

    def exit(self) -> None:
        """A call ends."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self.total_s += time.perf_counter() - self._since

    async def track(self, awaitable: Awaitable[_T]) -> _T:
        """Await `awaitable`, counting the wait as busy time."""
        self.enter()
        try:
            return await awaitable
        finally:
            self.exit()

    def take(self) -> float:
        """Busy seconds since the last `take` (calls still in flight count up to now)."""
        total = self.total_s
        if self._in_flight:
            now = time.perf_counter()
            total += now - self._since
            self._since = now
        self.total_s = 0.0
        return total


class SamplingPolicy:
    """A `TokenPolicy` backed by a sampling client. Fire many calls at once: the local backend
    coalesces concurrent `sample` calls into one batch."""

    def __init__(
        self,
        sampling_client: SamplingClient,
        max_tokens: int,
        temperature: float,
        timer: BusyTimer | None = None,
    ) -> None:
        self.sampling_client = sampling_client
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timer = timer or BusyTimer()

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        from tinker import types as tinker_types

        params = tinker_types.SamplingParams(
            max_tokens=self.max_tokens, temperature=self.temperature, stop=stop, seed=seed
        )
        # The timer starts before `sample` is called: its synchronous part is backend work too.
        self.timer.enter()
        try:
            response = await self.sampling_client.sample(ob, 1, params)
        finally:
            self.timer.exit()
        sequence = response.sequences[0]
        tokens = sequence.tokens
        logprobs = sequence.logprobs
        if logprobs is None or len(logprobs) != len(tokens):
            raise RuntimeError("the sampler returned no logprobs for the sampled tokens")
        return SampledTokens(tokens=list(tokens), logprobs=list(logprobs))


class EnvTimeoutError(Exception):
    """An env call ran past `step_timeout_s`."""


async def _env_call(awaitable: Awaitable[_T], timeout_s: float | None, what: str) -> _T:
    if timeout_s is None or timeout_s <= 0:
        return await awaitable
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        raise EnvTimeoutError(f"{what} took longer than {timeout_s:g} s") from None


def mix_seed(*parts: int) -> int:
    """A 31-bit seed from integers (deterministic across processes, unlike `hash` of strings)."""
    h = 0x345678
    for p in parts:
        h = (h * 1_000_003) ^ (p & 0xFFFFFFFFFFFF)
        h &= 0xFFFFFFFFFFFFFFFF
    return (h ^ (h >> 31)) & 0x7FFFFFFF


async def rollout_env(
    env: Env,
    policy: TokenPolicy,
    seed: int,
    step_timeout_s: float | None = None,
    max_turns: int = 1000,
) -> Trajectory:
    """Play one env to the end: observe, sample, step, until the episode is done. `seed` is this
    env's own; each turn's sample seed is derived from it."""
    ob, stop = await _env_call(env.initial_observation(), step_timeout_s, "initial_observation")
    transitions: list[Transition] = []
    for turn in range(max_turns):
        sampled = await policy(ob, stop, mix_seed(seed, turn))
        result = await _env_call(env.step(sampled.tokens), step_timeout_s, "step")
        transitions.append(
            Transition(
                ob=ob,
                ac_tokens=sampled.tokens,
                ac_logprobs=sampled.logprobs,
                reward=result.reward,
                episode_done=result.episode_done,
                metrics=result.metrics,
                logs=result.logs,
            )
        )
        if result.episode_done:
            return Trajectory(transitions=transitions, final_ob=result.next_observation)
        ob, stop = result.next_observation, result.next_stop_condition
    raise RuntimeError(f"episode did not end within {max_turns} turns")


async def do_group_rollout(
    builder: EnvGroupBuilder,
    policy: TokenPolicy,
    seed: int,
    step_timeout_s: float | None = None,
    max_turns: int = 1000,
) -> TrajectoryGroup:
    """Roll out one group: all its envs at once (they may be seats of one game), then the group
    rewards. Raises if any env fails; the caller decides what a lost group costs."""
    envs_G = list(await _env_call(builder.make_envs(), step_timeout_s, "make_envs"))
    # A TaskGroup cancels the other seats when one fails, so a broken game cannot hang the batch.
    async with asyncio.TaskGroup() as tg:
        tasks_G = [
            tg.create_task(rollout_env(env, policy, mix_seed(seed, i), step_timeout_s, max_turns))
            for i, env in enumerate(envs_G)
        ]
    trajectories_G = [t.result() for t in tasks_G]
    rewards_and_metrics_G = await _env_call(
        builder.compute_group_rewards(trajectories_G, envs_G),
        step_timeout_s,
        "compute_group_rewards",
    )
    if len(rewards_and_metrics_G) != len(trajectories_G):
        raise RuntimeError(
            f"compute_group_rewards returned {len(rewards_and_metrics_G)} rewards "
            f"for {len(trajectories_G)} trajectories"
        )
    return TrajectoryGroup(
        trajectories_G=trajectories_G,
        final_rewards_G=[float(r) for r, _ in rewards_and_metrics_G],
        metrics_G=[dict(m) for _, m in rewards_and_metrics_G],
        tags=list(builder.logging_tags()),
    )


def _leaf_errors(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaf_errors(sub)]
    return [error]


@dataclass
class BatchRollout:
    """The groups of one batch that finished, and what happened to the others."""

    groups_P: list[TrajectoryGroup]
    """Finished groups, in batch order (lost ones left out)."""
    group_indices_P: list[int]
    """Index in the batch of each finished group (for transcripts and seeds)."""
    num_groups: int
    """Groups in the batch, finished or not."""
    sampler_step: int
    """Which weights sampled this batch (the step whose training produced them)."""
    errors: int = 0
    """Groups lost to an exception."""
    timeouts: int = 0
    """Groups lost to an env call running past the timeout."""
    error_messages: list[str] = field(default_factory=list)
    """One line per lost group."""
    time_s: float = 0.0
    """Wall time of the whole batch."""

    @property
    def lost(self) -> int:
        """Groups lost for any reason."""
        return self.errors + self.timeouts


async def do_batch_rollout(
    builders_P: Sequence[EnvGroupBuilder],
    policy: TokenPolicy,
    seed: int,
    sampler_step: int,
    step_timeout_s: float | None = None,
) -> BatchRollout:
    """Roll out every group of a batch concurrently; a failing group is counted, not raised."""
    t0 = time.perf_counter()

    async def guarded(p: int) -> TrajectoryGroup | BaseException:
        try:
            return await do_group_rollout(builders_P[p], policy, mix_seed(seed, p), step_timeout_s)
        except Exception as e:  # env code is foreign: any failure costs only this group
            return e

    outcomes_P = await asyncio.gather(*(guarded(p) for p in range(len(builders_P))))
    batch = BatchRollout(
        groups_P=[], group_indices_P=[], num_groups=len(builders_P), sampler_step=sampler_step
    )
    for p, outcome in enumerate(outcomes_P):
        if isinstance(outcome, TrajectoryGroup):
            batch.groups_P.append(outcome)
            batch.group_indices_P.append(p)
            continue
        leaves = _leaf_errors(outcome)
        if any(isinstance(leaf, EnvTimeoutError) for leaf in leaves):
            batch.timeouts += 1
        else:
            batch.errors += 1
        first = next((x for x in leaves if not isinstance(x, asyncio.CancelledError)), leaves[0])
        batch.error_messages.append(f"group {p}: {type(first).__name__}: {first}")
    batch.time_s = time.perf_counter() - t0
    return batch
