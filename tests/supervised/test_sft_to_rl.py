"""An SFT checkpoint is the starting point of an RL run (`load_checkpoint_path=`): the RL policy
samples from the fine-tuned weights, not from the untrained base model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import chz
import pytest

from cookbook.build_context import BuildContext
from cookbook.renderers.base import Message, Renderer
from cookbook.rl.types import (
    Env,
    EnvGroupBuilder,
    Observation,
    RLDataset,
    RLDatasetBuilder,
    StepResult,
    StopCondition,
)
from cookbook.runs.metrics import MetricsLog
from cookbook.supervised.jsonl import JsonlDatasetBuilder
from cookbook.supervised.train import Config, main


class ReverseEnv(Env):
    """One turn: "reverse cat" (a task of the shipped demo data). The reward is the parity of
    the first sampled token: arbitrary, but it varies within a group, so the RL step trains and
    logs the entropy of what it sampled."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        prompt = self.renderer.build_generation_prompt(
            [Message(role="user", content="reverse cat")]
        )
        return prompt, self.renderer.get_stop_sequences()

    async def step(self, action: list[int]) -> StepResult:
        from tinker import types as tinker_types

        return StepResult(
            reward=float(action[0] % 2) if action else 0.0,
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=[],
        )


class ReverseGroup(EnvGroupBuilder):
    def __init__(self, renderer: Renderer, size: int) -> None:
        self.renderer = renderer
        self.size = size

    async def make_envs(self) -> Sequence[Env]:
        return [ReverseEnv(self.renderer) for _ in range(self.size)]


class ReverseDataset(RLDataset):
    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        return [
            ReverseGroup(self.ctx.renderer, self.ctx.group_size)
            for _ in range(self.ctx.groups_per_batch)
        ]

    def __len__(self) -> int:
        return 1


@chz.chz
class ReverseBuilder(RLDatasetBuilder):
    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        return ReverseDataset(ctx), None


def rl_entropy(log_dir: Path, load_checkpoint_path: str | None) -> float:
    """`optim/entropy` (mean -logprob of the sampled tokens) of one RL step."""
    from cookbook.rl.train import Config as RLConfig
    from cookbook.rl.train import main as rl_main

    rl_main(
        RLConfig(
            env=ReverseBuilder(),
            log_dir=str(log_dir),
            load_checkpoint_path=load_checkpoint_path,
            group_size=8,
            groups_per_batch=4,
            max_tokens=4,
            max_steps=1,
            eval_every=0,
            save_every=0,
            remove_constant_reward_groups=False,
            show_progress=False,
        ),
        argv=["test"],
    )
    (record,) = MetricsLog(log_dir / "metrics.jsonl").read()
    entropy = record["optim/entropy"]
    assert isinstance(entropy, float)
    return entropy


def test_sft_checkpoint_starts_an_rl_run(tmp_path: Path) -> None:
    sft = main(
        Config(
            dataset=JsonlDatasetBuilder(),
            log_dir=str(tmp_path / "sft"),
            max_steps=40,
            eval_every=0,
            save_every=0,
            show_progress=False,
        )
    )
    # The untrained tiny model is uniform (zero output head): entropy log(261) per token.
    base = rl_entropy(tmp_path / "rl-base", None)
    assert base == pytest.approx(math.log(261), abs=0.05)
    # Either the state path or the sft run directory (its newest checkpoint) works.
    from_state = rl_entropy(tmp_path / "rl-state", sft.final_checkpoint)
    from_dir = rl_entropy(tmp_path / "rl-dir", str(sft.log_dir))
    assert from_state < base - 1.0, (base, from_state)
    assert from_dir == pytest.approx(from_state)
