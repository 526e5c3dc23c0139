"""Shared pieces of the tic-tac-toe tests: the tiny model's build context and scripted policies
that read the compact board the way a model would (from the prompt tokens).

A plain module rather than a conftest.py, so its name cannot clash with other test folders."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Generator, Sequence
from typing import Generic, TypeVar

from cookbook_tictactoe.tictactoe import best_cells
from tinker.types import ModelInput, SampledSequence, SampleResponse, SamplingParams

from cookbook.build_context import BuildContext
from cookbook.renderers.tiny import TinyRenderer
from cookbook.rl.types import Env, EnvGroupBuilder, Metrics, StepResult
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
RENDERER = TinyRenderer(TOKENIZER)

T = TypeVar("T")

TextPolicy = Callable[[str], str]
"""Prompt text (the user turn) -> reply text."""


def tiny_ctx(seed: int = 0, group_size: int = 4, groups_per_batch: int = 2) -> BuildContext:
    """What the runner passes to builders for the built-in tiny model."""
    return BuildContext(
        model_name="tiny",
        tokenizer=TOKENIZER,
        renderer=RENDERER,
        seed=seed,
        group_size=group_size,
        groups_per_batch=groups_per_batch,
    )


def user_text(prompt_tokens: list[int]) -> str:
    """The user turn of a tiny-format single-turn prompt."""
    text = TOKENIZER.decode(prompt_tokens)
    assert text.startswith("<|user|>") and text.endswith("<|eos|><|assistant|>"), text
    return text[len("<|user|>") : -len("<|eos|><|assistant|>")]


def reply_tokens(reply: str, end: bool = True) -> list[int]:
    """What a model sampling `reply` would return (with the end-of-turn token)."""
    return TOKENIZER.encode(reply) + ([TOKENIZER.eos_token_id] if end else [])


def free_cells(board: str) -> list[int]:
    """Free cells of a compact board (the digits it shows)."""
    return [int(c) for c in board if c.isdigit()]


def first_free(board: str) -> str:
    """Always the lowest free cell."""
    return str(free_cells(board)[0])


def random_free(rng: random.Random) -> TextPolicy:
    """A uniformly random free cell."""
    return lambda board: str(rng.choice(free_cells(board)))


def optimal(board: str) -> str:
    """A minimax move read from the compact board (`X` = own marks)."""
    cells = "".join("." if c.isdigit() else c for c in board.replace("\n", ""))
    return str(best_cells(cells, "X")[0])


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
    """All envs of a group at once (as the runner does), then the group rewards."""
    envs = await builder.make_envs()
    assert len(envs) == len(policies)
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
    """A sampling client whose 'model' is a scripted policy reading the compact board: lets the
    evals be checked against known play without a trained model."""

    def __init__(self, policy: TextPolicy) -> None:
        self.policy = policy
        self.prompts: list[str] = []

    def sample(
        self,
        prompt: ModelInput,
        num_samples: int,
        sampling_params: SamplingParams,
        include_prompt_logprobs: bool = False,
    ) -> _Done[SampleResponse]:
        board = user_text(prompt.to_ints())
        self.prompts.append(board)
        tokens = reply_tokens(self.policy(board))
        sequences = [
            SampledSequence(
                stop_reason="stop", sequence_id=f"s{len(self.prompts)}-{i}", _tokens_list=tokens
            )
            for i in range(num_samples)
        ]
        return _Done(SampleResponse(sequences=sequences))

    def compute_logprobs(self, prompt: ModelInput) -> _Done[list[float | None]]:
        raise NotImplementedError("not needed by the evals")

    def get_tokenizer(self) -> ByteTokenizer:
        return TOKENIZER
