"""Helpers for testing a game built on this package, no model needed: scripted text policies
play its envs and evals through the tiny model's chat format, reading the prompt text the way a
model would (from the prompt tokens).

    from cookbook.testing import tiny_context
    from cookbook_textarena.testing import ScriptedSamplingClient, play_group

    group = MyGameEnvBuilder()(tiny_context()).get_batch(0)[0]
    steps_G, rewards_G = asyncio.run(play_group(group, [my_policy] * 4))
    metrics = asyncio.run(MyGameVsRandomEval()(tiny_context())(ScriptedSamplingClient(my_policy)))

With the tiny model the prompt text is the game's compact prompt (`TwoPlayerGame.compact_prompt`),
and a policy answers with what the game's `format_reply` would write. For the contract checks
every env, dataset and eval must pass, use `cookbook.testing` (`assert_env_contract`, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Sequence
from typing import Generic, TypeVar

from tinker.types import ModelInput, SampledSequence, SampleResponse, SamplingParams

from cookbook.rl.types import Env, EnvGroupBuilder, Metrics, StepResult
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
"""The tiny model's tokenizer (what `cookbook.testing.tiny_context()` builds with)."""

_USER, _END = "<|user|>", "<|eos|><|assistant|>"

T = TypeVar("T")

TextPolicy = Callable[[str], str]
"""Prompt text (the user turn) -> reply text."""


def user_text(prompt_tokens: list[int]) -> str:
    """The user turn of a tiny-format single-turn prompt."""
    text = TOKENIZER.decode(prompt_tokens)
    assert text.startswith(_USER) and text.endswith(_END), text
    return text[len(_USER) : -len(_END)]


def reply_tokens(reply: str, end: bool = True) -> list[int]:
    """What a model sampling `reply` would return (with the end-of-turn token)."""
    return TOKENIZER.encode(reply) + ([TOKENIZER.eos_token_id] if end else [])


async def play_env(env: Env, policy: TextPolicy) -> list[StepResult]:
    """Roll `env` out with `policy` (prompt text -> reply), returning every step's result."""
    ob, _stop = await env.initial_observation()
    results: list[StepResult] = []
    while True:
        result = await env.step(reply_tokens(policy(user_text(ob.to_ints()))))
        results.append(result)
        if result.episode_done:
            return results
        ob = result.next_observation


async def play_group(
    builder: EnvGroupBuilder, policies: Sequence[TextPolicy]
) -> tuple[list[list[StepResult]], list[tuple[float, Metrics]]]:
    """All envs of a group at once (as the runner does: self-play seats wait for each other),
    then the group rewards."""
    envs = await builder.make_envs()
    assert len(envs) == len(policies), f"{len(envs)} envs, {len(policies)} policies"
    steps = await asyncio.gather(*(play_env(e, p) for e, p in zip(envs, policies, strict=True)))
    group = await builder.compute_group_rewards([], envs)
    return list(steps), group


class _Done(Generic[T]):
    """An already-finished request: `.result()` and `await` both give the value."""

    def __init__(self, value: T) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> T:
        return self.value

    def __await__(self) -> Generator[None, None, T]:
        return self.value
        yield  # makes this a generator, as __await__ must be


class ScriptedSamplingClient:
    """A sampling client whose 'model' is a text policy: lets evals and checkpoint opponents be
    checked against known play without a trained model. Records every prompt it was shown."""

    def __init__(self, policy: TextPolicy) -> None:
        self.policy = policy
        self.prompts: list[str] = []
        """The user turn of every prompt, in call order."""

    def sample(
        self,
        prompt: ModelInput,
        num_samples: int,
        sampling_params: SamplingParams,
        include_prompt_logprobs: bool = False,
    ) -> _Done[SampleResponse]:
        """`num_samples` copies of the policy's reply to the prompt."""
        text = user_text(prompt.to_ints())
        self.prompts.append(text)
        tokens = reply_tokens(self.policy(text))
        sequences = [
            SampledSequence(
                stop_reason="stop", sequence_id=f"s{len(self.prompts)}-{i}", _tokens_list=tokens
            )
            for i in range(num_samples)
        ]
        return _Done(SampleResponse(sequences=sequences))

    def compute_logprobs(self, prompt: ModelInput) -> _Done[list[float | None]]:
        """Not needed by the envs and evals of this package."""
        raise NotImplementedError("a scripted policy has no logprobs")

    def get_tokenizer(self) -> ByteTokenizer:
        """The tiny model's tokenizer."""
        return TOKENIZER
