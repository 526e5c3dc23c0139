"""Shared pieces of the contrib tests: scripted policies driving the multi-turn envs through the
tiny model's chat format (reading the prompt tokens as a model would), and the build context.

A plain module rather than a conftest.py, so its name cannot clash with other test folders."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from cookbook_textarena.testing import TOKENIZER, reply_tokens

from cookbook.build_context import BuildContext
from cookbook.rl.types import Env, EnvGroupBuilder, Metrics, RLDataset, StepResult
from cookbook.testing import tiny_context

ChatPolicy = Callable[[list[tuple[str, str]]], str]
"""The conversation so far as (role, text) pairs -> the reply text."""

_TURN = re.compile(r"<\|(user|assistant|system)\|>(.*?)<\|eos\|>", re.DOTALL)


def tiny_ctx(seed: int = 0, group_size: int = 4, groups_per_batch: int = 2) -> BuildContext:
    """What the runner passes to builders for the built-in tiny model (small batches)."""
    return tiny_context(seed=seed, group_size=group_size, groups_per_batch=groups_per_batch)


def conversation(prompt_tokens: list[int]) -> list[tuple[str, str]]:
    """The turns of a tiny-format generation prompt (which ends with the assistant's tag)."""
    text = TOKENIZER.decode(prompt_tokens)
    assert text.endswith("<|assistant|>"), text
    return [(m[1], m[2]) for m in _TURN.finditer(text)]


async def play_chat_env(env: Env, policy: ChatPolicy, max_turns: int = 50) -> list[StepResult]:
    """Roll a multi-turn env out with `policy`, checking that every observation extends the
    previous one and its reply (the property that lets the runner train one sequence)."""
    ob, _stop = await env.initial_observation()
    results: list[StepResult] = []
    for _ in range(max_turns):
        tokens = ob.to_ints()
        action = reply_tokens(policy(conversation(tokens)))
        result = await env.step(action)
        results.append(result)
        if result.episode_done:
            return results
        assert result.next_observation.to_ints()[: len(tokens) + len(action)] == tokens + action
        ob = result.next_observation
    raise AssertionError(f"no end within {max_turns} turns")


async def play_chat_group(
    builder: EnvGroupBuilder, policy: ChatPolicy
) -> tuple[list[list[StepResult]], list[tuple[float, Metrics]]]:
    """Every env of a group played by `policy` at once, then the group rewards."""
    envs = await builder.make_envs()
    steps = await asyncio.gather(*(play_chat_env(env, policy) for env in envs))
    return list(steps), await builder.compute_group_rewards([], envs)


def play_dataset_batch(
    dataset: RLDataset, policy: ChatPolicy, index: int = 0
) -> list[tuple[list[list[StepResult]], list[tuple[float, Metrics]]]]:
    """Every group of batch `index`, every env played by `policy`."""

    async def run() -> list[tuple[list[list[StepResult]], list[tuple[float, Metrics]]]]:
        return [await play_chat_group(group, policy) for group in dataset.get_batch(index)]

    return asyncio.run(run())
