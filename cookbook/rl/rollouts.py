"""Rollouts: run every env of every group concurrently against a policy.

A group is lost as a whole when one of its envs raises, returns what the runner cannot use (a
reward that is not a finite number, an observation that is not a `ModelInput`, no envs at all),
or an env call runs past the per-call timeout (in a multi-agent game the other seats would wait
forever otherwise); the loss is counted and the rest of the batch goes on.

With a timeout, each group runs on a thread of its own with its own event loop (`_EnvThreads`),
watched from the caller's loop: env code that blocks in plain Python (`time.sleep`, a blocking
socket) stalls only its own thread, the caller gives the group up when the blocked call's time is
over, and the thread is left to finish or die. Policy calls are awaited on the group's loop (the
backends' futures wrap `concurrent.futures` futures, awaitable from any loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Protocol, TypeVar

from cookbook.rl.coalesce import GroupSampling, current_group, enter_group, leave_group
from cookbook.rl.serial_sampling import SerialSamplingClient
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
    of their intervals (the time the runner was waiting on the backend). Calls may come from the
    groups' threads: the counts change under a lock."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._in_flight = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def enter(self) -> None:
        """A call starts."""
        with self._lock:
            if self._in_flight == 0:
                self._since = time.perf_counter()
            self._in_flight += 1

    def exit(self) -> None:
        """A call ends."""
        with self._lock:
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
        with self._lock:
            total = self.total_s
            if self._in_flight:
                now = time.perf_counter()
                total += now - self._since
                self._since = now
            self.total_s = 0.0
        return total


class SamplingPolicy:
    """A `TokenPolicy` backed by a sampling client. Fire many calls at once: the local backend
    batches concurrent `sample` calls. Within a group's rollout, requests for the same prompt made
    in one loop tick go out as one `sample(num_samples=k)` call (`cookbook.rl.coalesce`); for a
    serial client (`deterministic=true`) each request goes out alone."""

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

        if not isinstance(ob, tinker_types.ModelInput):
            raise EnvContractError(
                f"the observation is a {type(ob).__name__}, not a tinker ModelInput "
                "(tinker.types.ModelInput.from_ints(tokens))"
            )
        params = tinker_types.SamplingParams(
            max_tokens=self.max_tokens, temperature=self.temperature, stop=stop, seed=seed
        )
        group = current_group()
        if group is not None and not isinstance(self.sampling_client, SerialSamplingClient):
            sequence = await group.sample(
                self.sampling_client, ob, params, on_send=self.timer.enter, on_done=self.timer.exit
            )
        else:
            # The timer starts before `sample` is called: its synchronous part is backend work.
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


class EnvContractError(Exception):
    """An env returned something the runner cannot use."""


class EnvWatch:
    """The env calls a group is in, for the caller's watchdog: changed by the group's thread,
    read by the caller (single dict operations, atomic under the GIL)."""

    __slots__ = ("abandoned", "calls")

    def __init__(self) -> None:
        self.calls: dict[object, tuple[float, str]] = {}
        """`(monotonic deadline, what)` of each env call in progress (the seats of a game make
        theirs at once)."""
        self.abandoned = False
        """Set when the caller gave the group up: the thread stops at its next env call."""

    def first(self) -> tuple[float, str] | None:
        """The call in progress with the earliest deadline."""
        calls = list(self.calls.values())
        return min(calls) if calls else None


async def env_call(
    start: Callable[[], Awaitable[_T]], timeout_s: float | None, what: str, watch: EnvWatch
) -> _T:
    """`await start()`, an env call, within `timeout_s` (None or 0: no limit). `start` is called
    inside the watched span, so even a call that blocks before it awaits anything is seen."""
    if watch.abandoned:
        raise EnvTimeoutError(f"{what}: the group was given up")
    if timeout_s is None or timeout_s <= 0:
        return await start()
    key = object()
    watch.calls[key] = (time.monotonic() + timeout_s, what)
    try:
        async with asyncio.timeout(timeout_s):
            return await start()
    except TimeoutError:
        raise EnvTimeoutError(f"{what} took longer than {timeout_s:g} s") from None
    finally:
        del watch.calls[key]


class _EnvThreads:
    """Threads with an event loop each that run one group at a time and are reused. A thread
    whose group is stuck in blocking env code never gets work again (it comes back only when its
    group ends). Past `max_threads` (a share of the open-file limit: each loop holds three
    descriptors) a group runs on the caller's loop, unprotected."""

    def __init__(self) -> None:
        self._idle: list[asyncio.AbstractEventLoop] = []
        self._live = 0
        self._lock = threading.Lock()
        self.max_threads = _max_env_threads()

    def submit(self, coro: Coroutine[object, object, _T]) -> concurrent.futures.Future[_T] | None:
        """Run `coro` on a free thread's loop (None when no thread can be had)."""
        loop = self._take()
        if loop is None:
            return None
        return asyncio.run_coroutine_threadsafe(self._run(coro, loop), loop)

    async def _run(
        self, coro: Coroutine[object, object, _T], loop: asyncio.AbstractEventLoop
    ) -> _T:
        task = asyncio.current_task()
        if task is not None:  # a given-up group's late error has no reader: no log at GC
            task.add_done_callback(_mark_retrieved)
        try:
            return await coro
        finally:  # on the thread itself: a thread still stuck in a given-up group is not free
            with self._lock:
                self._idle.append(loop)

    def _take(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._live >= self.max_threads:
                return None
            self._live += 1
        loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, args=(loop,), name="cookbook-env", daemon=True).start()
        return loop

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.run_forever()
        finally:
            loop.close()
            with self._lock:
                self._live -= 1

    def forget(self) -> None:
        """In a forked child: the parent's threads do not exist here."""
        self._idle, self._live, self._lock = [], 0, threading.Lock()


def _mark_retrieved(task: asyncio.Future[object]) -> None:
    """Read the error of a finished group task. Its caller reads it too, unless it gave the
    group up (then the error was counted already); unread, asyncio would log it with a traceback
    whenever the task is collected, from whatever thread, into later output."""
    if not task.cancelled():
        task.exception()


def _max_env_threads() -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return 128
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 8))


_ENV_THREADS = _EnvThreads()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ENV_THREADS.forget)


async def _watched(future: concurrent.futures.Future[_T], watch: EnvWatch, timeout_s: float) -> _T:
    """The result of a group running on its own thread; an env call of it still running
    `grace` after its deadline means the thread is blocked (its own timeout could not fire):
    the group is given up with an `EnvTimeoutError`."""
    waiter = asyncio.wrap_future(future)
    grace = min(1.0, 0.25 * timeout_s)
    try:
        while True:
            call = watch.first()
            deadline = call[0] if call is not None else time.monotonic() + timeout_s
            done, _ = await asyncio.wait({waiter}, timeout=deadline + grace - time.monotonic())
            if done:
                return waiter.result()
            call = watch.first()
            if call is not None and time.monotonic() > call[0] + grace:
                watch.abandoned = True
                future.cancel()
                raise EnvTimeoutError(
                    f"{call[1]} blocked its thread for more than {timeout_s:g} s (blocking code "
                    "in an env: await asyncio.sleep or asyncio.to_thread(...) instead)"
                )
    except asyncio.CancelledError:
        future.cancel()
        raise


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
    watch: EnvWatch | None = None,
) -> Trajectory:
    """Play one env to the end: observe, sample, step, until the episode is done. `seed` is this
    env's own; each turn's sample seed is derived from it."""
    watch = watch or EnvWatch()
    ob, stop = await env_call(env.initial_observation, step_timeout_s, "initial_observation", watch)
    transitions: list[Transition] = []
    for turn in range(max_turns):
        sampled = await policy(ob, stop, mix_seed(seed, turn))
        step = functools.partial(env.step, sampled.tokens)
        result = await env_call(step, step_timeout_s, "step", watch)
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
    rewards. Raises if any env fails; the caller decides what a lost group costs. With a
    timeout the group runs on a thread of its own (see the module docstring)."""
    return await run_watched(
        lambda watch: _group_rollout(builder, policy, seed, step_timeout_s, max_turns, watch),
        step_timeout_s,
    )


async def run_watched(
    make: Callable[[EnvWatch], Coroutine[object, object, _T]], step_timeout_s: float | None
) -> _T:
    """Run the coroutine `make(watch)`, whose env calls go through `env_call(..., watch)`: with
    a timeout on a thread of its own (`_EnvThreads`), given up with an `EnvTimeoutError` when an
    env call blocks that thread past its deadline; without one, here."""
    watch = EnvWatch()
    coro = make(watch)
    if step_timeout_s is None or step_timeout_s <= 0:
        return await coro
    future = _ENV_THREADS.submit(coro)
    if future is None:
        return await coro
    return await _watched(future, watch, step_timeout_s)


async def _group_rollout(
    builder: EnvGroupBuilder,
    policy: TokenPolicy,
    seed: int,
    step_timeout_s: float | None,
    max_turns: int,
    watch: EnvWatch,
) -> TrajectoryGroup:
    # On the group's own loop: its sample requests are gathered among themselves only.
    token = enter_group(GroupSampling())
    try:
        return await _group_rollout_in(builder, policy, seed, step_timeout_s, max_turns, watch)
    finally:
        leave_group(token)


async def _group_rollout_in(
    builder: EnvGroupBuilder,
    policy: TokenPolicy,
    seed: int,
    step_timeout_s: float | None,
    max_turns: int,
    watch: EnvWatch,
) -> TrajectoryGroup:
    envs_G = list(await env_call(builder.make_envs, step_timeout_s, "make_envs", watch))
    if not envs_G:
        raise EnvContractError(
            f"{type(builder).__name__}.make_envs returned no envs; a group needs at least one"
        )
    # A TaskGroup cancels the other seats when one fails, so a broken game cannot hang the batch.
    async with asyncio.TaskGroup() as tg:
        tasks_G = [
            tg.create_task(
                rollout_env(env, policy, mix_seed(seed, i), step_timeout_s, max_turns, watch)
            )
            for i, env in enumerate(envs_G)
        ]
    trajectories_G = [t.result() for t in tasks_G]
    rewards_and_metrics_G = await env_call(
        lambda: builder.compute_group_rewards(trajectories_G, envs_G),
        step_timeout_s,
        "compute_group_rewards",
        watch,
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


def check_group_outputs(group: TrajectoryGroup, builder: EnvGroupBuilder) -> None:
    """Raise `EnvContractError` (naming the builder, env and turn) unless every reward of
    `group` is a finite number and every metric a number: what the runner averages and trains
    on. (`cookbook check` reports the same faults in checks of their own.)"""
    name = type(builder).__name__
    for g, trajectory in enumerate(group.trajectories_G):
        for t, transition in enumerate(trajectory.transitions):
            where = f"{name} env {g} turn {t}: step"
            _check_reward(transition.reward, where)
            _check_metrics(transition.metrics, where)
    for g, (reward, metrics) in enumerate(zip(group.final_rewards_G, group.metrics_G, strict=True)):
        where = f"{name}.compute_group_rewards entry {g}:"
        _check_reward(reward, where)
        _check_metrics(metrics, where)


def _check_reward(reward: object, where: str) -> None:
    if not isinstance(reward, Real) or not math.isfinite(reward):
        raise EnvContractError(
            f"{where} reward is {reward!r} ({type(reward).__name__}); rewards must be finite "
            "numbers"
        )


def _check_metrics(metrics: object, where: str) -> None:
    if not isinstance(metrics, Mapping):
        raise EnvContractError(f"{where} metrics are a {type(metrics).__name__}, not a dict")
    for key, value in metrics.items():
        if not isinstance(key, str) or not isinstance(value, Real):
            raise EnvContractError(
                f"{where} metric {key!r} = {value!r}; metrics map names to numbers"
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
        builder = builders_P[p]
        try:
            group = await do_group_rollout(builder, policy, mix_seed(seed, p), step_timeout_s)
            check_group_outputs(group, builder)
            return group
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
        env = type(builders_P[p]).__name__
        batch.error_messages.append(f"group {p} ({env}): {type(first).__name__}: {first}")
    batch.time_s = time.perf_counter() - t0
    return batch
