"""Model judges: a sampling client asked which of two completions is better.

`ModelJudge` asks in both orders (A = first, then A = second) and averages, so a judge that
favours one position cancels out; whether the two orders picked the same winner is reported with
the verdict (`orders_agree`). It reads the answer one of two ways:

- `sample`: the judge writes a short reply (greedy), parsed as `A`, `B` or `tie`; anything else is
  a judge failure for that pair.
- `logprobs`: the log-probability of answering `A` and of answering `B` after the prompt, turned
  into a probability (`p_A = e^lpA / (e^lpA + e^lpB)`). Deterministic, and soft: a judge trained
  by `cookbook sft --dataset comparisons` is read this way.

`judge` (any model: a base model, a checkpoint, a run; on the local backend or on a Tinker
server) and `trained` (a judge this project trained; `logprobs` by default) are the registered
builders.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import chz

from cookbook.backends import BACKENDS
from cookbook.errors import UserError
from cookbook.preference.types import (
    JudgeOutputError,
    PreferenceModel,
    PreferenceModelBuilder,
    Verdict,
)
from cookbook_pairwise.preference.prompt_format import (
    ANSWER_FIRST,
    ANSWER_SECOND,
    JUDGE_STYLES,
    JudgeStyle,
    judge_messages,
    parse_answer,
    resolve_style,
)

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient
    from cookbook.renderers.base import Renderer
    from cookbook.tokenizers import Tokenizer
    from cookbook_pairwise.weights import Weights

JudgeMode = Literal["sample", "logprobs"]
JUDGE_MODES = ("auto", "sample", "logprobs")


class ModelJudge(PreferenceModel):
    """A sampling client as a judge, asked in both orders (see the module docstring)."""

    def __init__(
        self,
        client: SamplingClient,
        renderer: Renderer,
        style: JudgeStyle,
        mode: JudgeMode,
        max_tokens: int = 8,
        seed: int = 0,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        """`tokenizer` defaults to the client's own (the SDK's cannot load the tiny model's)."""
        self.client = client
        self.renderer = renderer
        self.style = style
        self.mode = mode
        self.max_tokens = max_tokens
        self.seed = seed
        tokenizer = tokenizer or client.get_tokenizer()
        self._answer_tokens = (
            tokenizer.encode(ANSWER_FIRST, add_special_tokens=False),
            tokenizer.encode(ANSWER_SECOND, add_special_tokens=False),
        )

    async def judge_once(self, prompt: str, first: str, second: str) -> float:
        """`p_first` with `first` shown as A: one order only (position bias included)."""
        model_input = self.renderer.build_generation_prompt(
            judge_messages(prompt, first, second, self.style)
        )
        if self.mode == "logprobs":
            return await self._by_logprobs(model_input.to_ints())
        return await self._by_sampling(model_input)

    async def _by_logprobs(self, prompt_tokens: list[int]) -> float:
        from tinker import types as tinker_types

        a_tokens, b_tokens = self._answer_tokens
        lp_a, lp_b = await asyncio.gather(
            self.client.compute_logprobs(
                tinker_types.ModelInput.from_ints(prompt_tokens + a_tokens)
            ),
            self.client.compute_logprobs(
                tinker_types.ModelInput.from_ints(prompt_tokens + b_tokens)
            ),
        )
        score_a = _answer_logprob(lp_a, len(a_tokens))
        score_b = _answer_logprob(lp_b, len(b_tokens))
        top = max(score_a, score_b)
        e_a, e_b = math.exp(score_a - top), math.exp(score_b - top)
        return e_a / (e_a + e_b)

    async def _by_sampling(self, model_input: tinker_types.ModelInput) -> float:
        from tinker import types as tinker_types

        params = tinker_types.SamplingParams(
            max_tokens=self.max_tokens,
            temperature=0.0,
            stop=self.renderer.get_stop_sequences(),
            seed=self.seed,
        )
        response = await self.client.sample(model_input, 1, params)
        message, _ended = self.renderer.parse_response(list(response.sequences[0].tokens))
        return parse_answer(message["content"])

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        """Both orders, averaged: `(p(first as A) + 1 - p(second as A)) / 2`."""
        p_ab, p_ba = await asyncio.gather(
            self.judge_once(prompt, first, second), self.judge_once(prompt, second, first)
        )
        forward = 1 if p_ab > 0.5 else -1 if p_ab < 0.5 else 0
        backward = 1 if p_ba < 0.5 else -1 if p_ba > 0.5 else 0
        shown_second = 1.0 - p_ba
        return Verdict(
            (p_ab + shown_second) / 2.0,
            orders_agree=forward == backward,
            by_order=(p_ab, shown_second),
        )


def _answer_logprob(logprobs: list[float | None], n_answer: int) -> float:
    """The summed log-probability of the last `n_answer` tokens (the answer)."""
    tail = logprobs[-n_answer:] if n_answer else []
    if not tail or any(lp is None or not math.isfinite(lp) for lp in tail):
        raise JudgeOutputError("the judge returned no usable log-probability for its answer")
    return float(sum(lp for lp in tail if lp is not None))


def _check_choice(option: str, allowed: tuple[str, ...]) -> Callable[[object, str], None]:
    """A chz validator: one `UserError` line listing the allowed values."""

    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if value not in allowed:
            raise UserError(f"unknown {option} {value!r}; choose one of: {', '.join(allowed)}")

    return check


def make_judge(
    weights: Weights,
    mode: str,
    prompt_style: str,
    max_tokens: int,
    seed: int,
    backend: str = "local",
    base_url: str | None = None,
) -> ModelJudge:
    """A `ModelJudge` on `weights`, sampled on `backend` (the client made once per process)."""
    from cookbook.model_names import is_tiny_model
    from cookbook.renderers import get_renderer
    from cookbook.tokenizers import ByteTokenizer
    from cookbook_pairwise.weights import sampler

    client, name = sampler(weights, backend, base_url)
    # The tiny model's byte tokenizer is the core's: the SDK cannot load it by name.
    tokenizer = ByteTokenizer() if is_tiny_model(name) else client.get_tokenizer()
    is_tiny = isinstance(tokenizer, ByteTokenizer)
    style = resolve_style(prompt_style, is_tiny)
    resolved: JudgeMode
    if mode == "auto":
        resolved = "logprobs" if style == "compact" else "sample"
    elif mode == "sample":
        resolved = "sample"
    elif mode == "logprobs":
        resolved = "logprobs"
    else:
        raise UserError(f"unknown judge mode {mode!r}; choose one of: {', '.join(JUDGE_MODES)}")
    renderer = get_renderer(name, tokenizer)
    return ModelJudge(client, renderer, style, resolved, max_tokens, seed, tokenizer)


@chz.chz
class JudgeBuilder(PreferenceModelBuilder):
    """Any model as a judge (`judge:MODEL`): asked "A, B or tie?" in both orders, on the local
    backend or on a Tinker server (`backend=tinker`)."""

    arg_field = "model"

    model: str = chz.field(
        default="tiny",
        doc="the judge's weights: a run directory (its newest checkpoint), a checkpoint, tiny, or "
        "a local Hugging Face model directory; with backend=tinker a model the server hosts, a "
        "tinker:// path or a run trained there",
    )
    backend: str = chz.field(
        default="local",
        validator=_check_choice("judge backend", BACKENDS),
        doc="local (weights loaded in-process) or tinker (sampled on a Tinker server: the Tinker "
        "service, or `cookbook serve`; needs TINKER_API_KEY)",
    )
    base_url: str | None = chz.field(
        default=None,
        doc="the Tinker server with backend=tinker (default $TINKER_BASE_URL, else the Tinker "
        "service)",
    )
    mode: str = chz.field(
        default="auto",
        validator=_check_choice("judge mode", JUDGE_MODES),
        doc="sample (parse a short greedy reply), logprobs (compare the log-probabilities of "
        "answering A and B) or auto (logprobs for the compact style, else sample)",
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_check_choice("judge prompt_style", JUDGE_STYLES),
        doc="compact (prompt and completions on three lines, for the tiny model), text (an "
        "instruction, for chat models) or auto (by the judge's tokenizer)",
    )
    max_tokens: int = chz.field(default=8, doc="reply length limit in sample mode")
    seed: int = chz.field(
        default=0, doc="seed of sampling (and, locally, of a base model's initialisation)"
    )

    @chz.validate
    def _check_base_url(self) -> None:
        if self.base_url is not None and self.backend == "local":
            raise UserError(
                f"judge base_url={self.base_url} is for backend=tinker; add backend=tinker to "
                "judge on that server, or drop base_url"
            )

    def __call__(self) -> PreferenceModel:
        """The judge: its weights loaded here, or its sampling client on the Tinker server."""
        from cookbook_pairwise.weights import remote_weights, resolve_weights

        if self.backend == "local":
            weights = resolve_weights(self.model, self.seed)
        else:
            weights = remote_weights(self.model)
        return make_judge(
            weights,
            self.mode,
            self.prompt_style,
            self.max_tokens,
            self.seed,
            self.backend,
            self.base_url,
        )


@chz.chz
class TrainedBuilder(PreferenceModelBuilder):
    """A judge this project trained (`trained:RUN_DIR`), e.g. with `cookbook sft --dataset
    comparisons`: read from the log-probabilities of answering A and B, in both orders."""

    arg_field = "path"

    path: str | None = chz.field(
        default=None,
        doc="the judge's run directory (its newest checkpoint) or a checkpoint directory",
    )
    mode: str = chz.field(
        default="logprobs",
        validator=_check_choice("judge mode", JUDGE_MODES),
        doc="logprobs (default), sample or auto, as for judge",
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_check_choice("judge prompt_style", JUDGE_STYLES),
        doc="the format it was trained with: compact, text or auto (by its tokenizer)",
    )

    @chz.validate
    def _check_path(self) -> None:
        from pathlib import Path

        if self.path is not None and not Path(self.path).expanduser().exists():
            raise UserError(
                f"no trained judge at {self.path!r}; give the run directory of "
                "`cookbook sft --dataset comparisons` (or a checkpoint)"
            )

    def __call__(self) -> PreferenceModel:
        """The trained judge."""
        from cookbook_pairwise.weights import resolve_weights

        if not self.path:
            raise UserError(
                "the trained preference model needs the judge's run: trained:RUN_DIR (train one "
                "with `cookbook sft --dataset comparisons`)"
            )
        weights = resolve_weights(self.path)
        if weights.model_path is None:
            raise UserError(
                f"trained:{self.path} names a base model, not trained weights; use "
                f"judge:{self.path} for an untrained judge"
            )
        return make_judge(weights, self.mode, self.prompt_style, max_tokens=8, seed=0)
