"""`fixture-letters`: a scripted env for runner tests.

The prompt asks for a letter; the reward of a reply is the fraction of its tokens that are ASCII
bytes, so even an untrained tiny model gets varied rewards within a group. Knobs make groups fail
(`fail_groups`), hang past the runner's timeout (`slow_groups`), take longer (`step_delay_s`),
last several turns whose observations extend each other (`turns`), or crash the process when a
training batch is asked for (`crash_at_batch`, once: see `cookbook_rl_fixture.crash`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import chz
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Metrics,
    Observation,
    RLDataset,
    RLDatasetBuilder,
    StepResult,
    StopCondition,
    Trajectory,
)
from cookbook_rl_fixture.crash import crash_once


@dataclass
class Faults:
    """What goes wrong in a group."""

    fail: bool = False
    slow_s: float = 0.0
    delay_s: float = 0.0


class LettersEnv(Env):
    """One reply (or `turns` replies) to a letter prompt."""

    def __init__(
        self,
        prompt: list[int],
        continuation: list[int],
        stop: list[int],
        turns: int,
        faults: Faults,
    ) -> None:
        self.prompt = prompt
        self.continuation = continuation
        self.stop = stop
        self.turns = turns
        self.faults = faults
        self.turn = 0
        self.tokens = list(prompt)

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return tinker_types.ModelInput.from_ints(self.prompt), list(self.stop)

    async def step(self, action: Action) -> StepResult:
        if self.faults.fail:
            raise RuntimeError("fixture env failure (fail_groups)")
        if self.faults.slow_s:
            await asyncio.sleep(self.faults.slow_s)
        if self.faults.delay_s:
            await asyncio.sleep(self.faults.delay_s)
        self.turn += 1
        ascii_frac = sum(1 for t in action if t < 128) / len(action) if action else 0.0
        done = self.turn >= self.turns
        metrics = {"ascii": ascii_frac, "ended": float(bool(action) and action[-1] in self.stop)}
        self.tokens += action
        if done:
            next_ob = tinker_types.ModelInput.empty()
        else:
            self.tokens += self.continuation
            next_ob = tinker_types.ModelInput.from_ints(list(self.tokens))
        return StepResult(
            reward=ascii_frac,
            episode_done=done,
            next_observation=next_ob,
            next_stop_condition=list(self.stop),
            metrics=metrics,
            logs={"reply_bytes": str(len(action))},
        )


@dataclass
class LettersGroupBuilder(EnvGroupBuilder):
    """`group_size` envs with the same prompt."""

    prompt: list[int]
    continuation: list[int]
    stop: list[int]
    group_size: int
    turns: int
    faults: Faults

    async def make_envs(self) -> Sequence[Env]:
        return [
            LettersEnv(self.prompt, self.continuation, self.stop, self.turns, self.faults)
            for _ in range(self.group_size)
        ]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        # A tiny group bonus for the longest reply, so group rewards show up in the totals.
        lengths = [sum(len(t.ac_tokens) for t in traj.transitions) for traj in trajectories_G]
        best = max(range(len(lengths)), key=lambda i: lengths[i])
        return [
            (0.1 if i == best else 0.0, {"longest": float(i == best)}) for i in range(len(lengths))
        ]

    def logging_tags(self) -> list[str]:
        return ["letters"]


class LettersDataset(RLDataset):
    """Batches of letter prompts; the fault knobs apply to the first groups of every batch."""

    def __init__(
        self, builder: LettersBuilder, ctx: BuildContext, num_batches: int, offset: int
    ) -> None:
        self.builder = builder
        self.ctx = ctx
        self.num_batches = num_batches
        self.offset = offset
        renderer = ctx.renderer
        self.stop = list(renderer.get_stop_sequences())
        self.continuation = renderer.build_generation_prompt(
            [{"role": "user", "content": "again"}]
        ).to_ints()

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        b = self.builder
        if self.offset == 0 and index == b.crash_at_batch and b.crash_marker:
            crash_once(b.crash_marker)  # the training split only
        out: list[EnvGroupBuilder] = []
        for p in range(self.ctx.groups_per_batch):
            letter = chr(ord("a") + (self.offset + index * 7 + p) % 26)
            prompt = self.ctx.renderer.build_generation_prompt(
                [{"role": "user", "content": f"say {letter}"}]
            ).to_ints()
            faults = Faults(
                fail=p < b.fail_groups,
                slow_s=b.slow_s if b.fail_groups <= p < b.fail_groups + b.slow_groups else 0.0,
                delay_s=b.step_delay_s,
            )
            out.append(
                LettersGroupBuilder(
                    prompt, self.continuation, self.stop, self.ctx.group_size, b.turns, faults
                )
            )
        return out

    def __len__(self) -> int:
        return self.num_batches


@chz.chz
class LettersBuilder(RLDatasetBuilder):
    """Scripted letters env."""

    turns: int = 1
    """Replies per episode."""
    num_batches: int = 1000
    """Training batches."""
    test_batches: int = 1
    """Test batches (0: no test split)."""
    fail_groups: int = 0
    """The first this many groups of every batch raise in step."""
    slow_groups: int = 0
    """The next this many groups sleep `slow_s` in step."""
    slow_s: float = 5.0
    """How long a slow group sleeps."""
    step_delay_s: float = 0.0
    """Every step sleeps this long (makes runs slow enough to kill mid-way)."""
    crash_at_batch: int = -1
    """SIGKILL the process when training batch N is asked for (-1: never)..."""
    crash_marker: str = ""
    """... unless this file exists (it is created at the crash, so a rerun goes on)."""

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        train = LettersDataset(self, ctx, self.num_batches, offset=0)
        test = (
            LettersDataset(self, ctx, self.test_batches, offset=13) if self.test_batches else None
        )
        return train, test
