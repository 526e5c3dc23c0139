"""`fixture-echo` samples a few replies and measures them; `fixture-broken-eval` raises."""

from __future__ import annotations

import chz
from tinker import types as tinker_types

from cookbook.backends.protocol import SamplingClient
from cookbook.build_context import BuildContext
from cookbook.eval.types import Evaluator, EvaluatorBuilder


class EchoEvaluator(Evaluator):
    def __init__(self, prompts: list[list[int]], stop: list[int], max_tokens: int, seed: int):
        self.prompts = prompts
        self.stop = stop
        self.max_tokens = max_tokens
        self.seed = seed

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        tokens: list[list[int]] = []
        logprobs: list[float] = []
        for i, prompt in enumerate(self.prompts):
            params = tinker_types.SamplingParams(
                max_tokens=self.max_tokens, stop=self.stop, seed=self.seed + i
            )
            response = await sampling_client.sample(
                tinker_types.ModelInput.from_ints(prompt), 1, params
            )
            tokens.append(list(response.sequences[0].tokens))
            logprobs.extend(response.sequences[0].logprobs or [])
        flat = [t for seq in tokens for t in seq]
        return {
            "ascii_fraction": sum(1 for t in flat if t < 128) / max(len(flat), 1),
            "mean_tokens": len(flat) / len(tokens),
            "mean_logprob": sum(logprobs) / max(len(logprobs), 1),
        }


@chz.chz
class EchoEvalBuilder(EvaluatorBuilder):
    """Samples `num_prompts` replies."""

    num_prompts: int = 3
    """Prompts to sample."""
    max_tokens: int = 4
    """Tokens per reply."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        prompts = [
            ctx.renderer.build_generation_prompt(
                [{"role": "user", "content": f"echo {i}"}]
            ).to_ints()
            for i in range(self.num_prompts)
        ]
        return EchoEvaluator(
            prompts, list(ctx.renderer.get_stop_sequences()), self.max_tokens, ctx.seed
        )


class BrokenEvaluator(Evaluator):
    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        raise RuntimeError("fixture eval is broken")


@chz.chz
class BrokenEvalBuilder(EvaluatorBuilder):
    """Always raises when run."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        return BrokenEvaluator()
