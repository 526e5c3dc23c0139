"""Evals: the pass@k estimator, metrics against a scripted policy, and a real untrained tiny model
on the local backend."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Generator
from itertools import combinations
from typing import Generic, TypeVar

import numpy as np
import pytest
from cookbook_math.evals import (
    ArithmeticEvalBuilder,
    SampledAnswersEvaluator,
    WordProblemsEvalBuilder,
    pass_at_k,
)
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.renderers.tiny import TinyRenderer
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
RENDERER = TinyRenderer(TOKENIZER)
T = TypeVar("T")


def ctx(seed: int = 0) -> BuildContext:
    return BuildContext(model_name="tiny", tokenizer=TOKENIZER, renderer=RENDERER, seed=seed)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_matches_counting_subsets(n: int) -> None:
    for c in range(n + 1):
        correct = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(combinations(correct, k))
            expected = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)


class ReadyFuture(Generic[T]):
    """A finished request (the protocol's `.result()` and `await`)."""

    def __init__(self, value: T) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> T:
        return self.value

    def __await__(self) -> Generator[None, None, T]:
        return self.value
        yield  # makes this a generator


class ScriptedSampler:
    """A scripted policy: for each prompt, a fixed list of replies, handed out in turn (cycled)
    to the successive samples of that prompt, so the expected metrics are known exactly."""

    def __init__(self, replies_by_prompt: dict[tuple[int, ...], list[str]]) -> None:
        self.replies_by_prompt = replies_by_prompt
        self.served: dict[tuple[int, ...], int] = {}
        self.requests: list[tinker_types.SamplingParams] = []

    def sample(
        self,
        prompt: tinker_types.ModelInput,
        num_samples: int,
        sampling_params: tinker_types.SamplingParams,
        include_prompt_logprobs: bool = False,
    ) -> ReadyFuture[tinker_types.SampleResponse]:
        self.requests.append(sampling_params)
        key = tuple(prompt.to_ints())
        replies = self.replies_by_prompt[key]
        sequences = []
        for i in range(num_samples):
            served = self.served.get(key, 0)
            self.served[key] = served + 1
            tokens = [*TOKENIZER.encode(replies[served % len(replies)]), TOKENIZER.eos_token_id]
            sequences.append(
                tinker_types.SampledSequence(
                    stop_reason="stop",
                    sequence_id=f"s{i}",
                    tokens_np=np.asarray(tokens, dtype=np.int32),
                    logprobs_np=np.zeros(len(tokens), dtype=np.float32),
                )
            )
        return ReadyFuture(tinker_types.SampleResponse(sequences=sequences))

    def compute_logprobs(self, prompt: tinker_types.ModelInput) -> ReadyFuture[list[float | None]]:
        raise NotImplementedError

    def get_tokenizer(self) -> ByteTokenizer:
        return TOKENIZER


def test_pass_at_k_metrics_from_a_scripted_policy() -> None:
    evaluator = WordProblemsEvalBuilder(num_samples=4, ks=(1, 2, 4), test_fraction=0.5)(ctx())
    assert isinstance(evaluator, SampledAnswersEvaluator)
    problems = evaluator.problems
    assert len(problems) >= 8
    # Problem i gets (i % 5) correct replies out of 4 (capped): 0, 1, 2, 3, 4, 0, ...
    correct_counts = [min(i % 5, 4) for i in range(len(problems))]
    script: dict[tuple[int, ...], list[str]] = {}
    for (messages, gold), c in zip(problems, correct_counts, strict=True):
        prompt = tuple(RENDERER.build_generation_prompt(messages).to_ints())
        script[prompt] = [f"#### {gold}"] * c + ["#### -1"] * (4 - c)
    sampler = ScriptedSampler(script)
    metrics = asyncio.run(evaluator(sampler))
    n = len(problems)
    assert metrics["accuracy"] == pytest.approx(sum(correct_counts) / (4 * n))
    assert metrics["format_ok"] == 1.0
    assert metrics["exact_accuracy"] == metrics["accuracy"]
    for k in (1, 2, 4):
        expected = sum(pass_at_k(4, c, k) for c in correct_counts) / n
        assert metrics[f"pass@{k}"] == pytest.approx(expected)
    assert all(p.temperature == 1.0 for p in sampler.requests)  # several samples: not greedy


def test_arithmetic_eval_scores_the_heldout_problems() -> None:
    evaluator = ArithmeticEvalBuilder(num_problems=20)(ctx())
    assert isinstance(evaluator, SampledAnswersEvaluator)
    script = {}
    for i, (messages, gold) in enumerate(evaluator.problems):
        prompt = tuple(RENDERER.build_generation_prompt(messages).to_ints())
        # A quarter right but malformed, a quarter wrong, the rest right.
        script[prompt] = [[f"= {gold}", str(int(gold) + 1), gold, gold][i % 4]]
    metrics = asyncio.run(evaluator(ScriptedSampler(script)))
    assert metrics == {"accuracy": 0.75, "format_ok": 0.75, "exact_accuracy": 0.5}


def test_bad_eval_options_are_user_errors() -> None:
    with pytest.raises(UserError):
        WordProblemsEvalBuilder(num_samples=2, ks=(4,))
    with pytest.raises(UserError):
        ArithmeticEvalBuilder(num_problems=0)


@pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.service") is None,
    reason="the local backend (cookbook.backends.local.service) is not in this tree yet",
)
def test_arithmetic_eval_on_an_untrained_tiny_model() -> None:
    from cookbook.backends import make_service_client

    sampler = make_service_client("local", device="cpu").create_sampling_client(base_model="tiny")
    evaluator = ArithmeticEvalBuilder(num_problems=16, max_tokens=4)(ctx())
    first = asyncio.run(evaluator(sampler))
    assert set(first) == {"accuracy", "format_ok", "exact_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in first.values())
    # Greedy decoding of fixed weights: the same numbers twice.
    assert asyncio.run(evaluator(sampler)) == first
