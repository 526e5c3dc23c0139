"""Envs that misbehave on purpose, for the env-fault tests: code that blocks the thread (a plain
`time.sleep`, a socket read that never returns) and outputs the runner cannot use (a reward that
is a string, None or NaN, an observation that is not a `ModelInput`, a metric that is text, no
envs at all). Group `p < bad_groups` of a batch misbehaves; the others are healthy one-turn envs
with reward 1."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import chz
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Observation,
    RLDataset,
    RLDatasetBuilder,
    StepResult,
    StopCondition,
)

BLOCKING_FAULTS = ("sleep", "socket")
OUTPUT_FAULTS = ("reward_str", "reward_none", "reward_nan", "observation_str", "metric_str")
FAULTS = (*BLOCKING_FAULTS, *OUTPUT_FAULTS, "no_envs")

_open_sockets: list[socket.socket] = []


def release_blocked_sockets() -> None:
    """Close the far ends of the sockets `socket` envs block on, so their threads end."""
    while _open_sockets:
        _open_sockets.pop().close()


class FaultyEnv(Env):
    def __init__(self, prompt: list[int], fault: str, block_s: float) -> None:
        self.prompt = prompt
        self.fault = fault
        self.block_s = block_s

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        if self.fault == "observation_str":
            return "say a", []  # type: ignore[return-value]  # the fault under test
        return tinker_types.ModelInput.from_ints(self.prompt), []

    async def step(self, action: Action) -> StepResult:
        if self.fault == "sleep":
            time.sleep(self.block_s)  # blocks the thread: no await anywhere
        elif self.fault == "socket":
            reader, writer = socket.socketpair()
            _open_sockets.append(writer)
            reader.recv(1)  # blocks until the far end closes
            reader.close()
        reward: object = {"reward_str": "1.0", "reward_none": None, "reward_nan": math.nan}.get(
            self.fault, 1.0
        )
        metrics: object = {"turns": "many"} if self.fault == "metric_str" else {"turns": 1.0}
        return StepResult(
            reward=reward,  # type: ignore[arg-type]  # the fault under test
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=[],
            metrics=metrics,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class FaultyGroup(EnvGroupBuilder):
    prompt: list[int]
    group_size: int
    fault: str = ""
    block_s: float = 5.0
    tags: list[str] = field(default_factory=list)

    async def make_envs(self) -> Sequence[Env]:
        if self.fault == "no_envs":
            return []
        return [FaultyEnv(self.prompt, self.fault, self.block_s) for _ in range(self.group_size)]


class FaultyDataset(RLDataset):
    def __init__(self, builder: FaultyBuilder, ctx: BuildContext) -> None:
        self.builder = builder
        self.ctx = ctx
        self.prompt = ctx.renderer.build_generation_prompt(
            [{"role": "user", "content": "say a"}]
        ).to_ints()

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        b = self.builder
        return [
            FaultyGroup(
                self.prompt,
                self.ctx.group_size,
                b.fault if p < b.bad_groups else "",
                b.block_s,
            )
            for p in range(self.ctx.groups_per_batch)
        ]

    def __len__(self) -> int:
        return 100


@chz.chz
class FaultyBuilder(RLDatasetBuilder):
    """The faulty env (no test split)."""

    fault: str = "sleep"
    """One of `FAULTS`."""
    bad_groups: int = 1
    """The first this many groups of every batch misbehave."""
    block_s: float = 5.0
    """How long a `sleep` env blocks its thread."""

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        return FaultyDataset(self, ctx), None
