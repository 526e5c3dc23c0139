"""Evals: `pairwise-win-rate` (a policy against a reference policy, judged by a preference model)
and `comparison-accuracy` (how often a judge prefers the chosen reply of held-out comparisons).

Both submit every request before awaiting any, so a backend can batch them, and use fixed seeds,
so two checkpoints are evaluated on the same prompts with the same sampling randomness.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.rl.rollouts import mix_seed
from cookbook.validators import non_negative, positive
from cookbook_pairwise.builders import preference_spec
from cookbook_pairwise.comparisons import Comparison, ComparisonSource
from cookbook_pairwise.env import reply_format_ok
from cookbook_pairwise.preference.prompt_format import JUDGE_STYLES
from cookbook_pairwise.prompts import BUILTIN, load_prompt_set, prompt_messages
from cookbook_pairwise.tournament import PairResult, judge_pair

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext
    from cookbook.preference.types import PreferenceModel
    from cookbook.renderers.base import Renderer
    from cookbook_pairwise.weights import Weights

TINY_MAX_TOKENS = 16
CHAT_MAX_TOKENS = 256


# --------------------------------------------------------------------------- win rate


def reference_weights(
    reference: str, ctx_log_dir: str | None, model_name: str, seed: int
) -> Weights:
    """What `reference` names (see `PairwiseWinRateBuilder.reference`)."""
    from cookbook_pairwise.weights import Weights, resolve_weights, start_of_run

    if reference == "start":
        if ctx_log_dir is not None:
            return start_of_run(ctx_log_dir)
        return Weights(base_model=model_name, seed=seed)
    if reference == "base":
        return Weights(base_model=model_name, seed=seed)
    if reference.startswith("start:"):
        return start_of_run(reference.partition(":")[2])
    return resolve_weights(reference, seed)


@dataclass
class _Reply:
    text: str
    format_ok: bool


class PairwiseWinRateEvaluator(Evaluator):
    """Samples the policy and the reference on the same held-out prompts (same seeds) and has the
    preference model compare each policy reply with the reference reply.

    Metrics: `win_rate` (ties count half), `win`, `tie`, `loss` (shares of judged comparisons),
    `judge_failure_rate`, `order_agreement` (two-order judges), `format_ok` and
    `reference_format_ok`, and for a programmatic model `score` and `reference_score`."""

    def __init__(
        self,
        prompts: list[str],
        *,
        renderer: Renderer,
        is_tiny: bool,
        preference_model: str,
        reference: str,
        log_dir: str | None,
        model_name: str,
        samples_per_prompt: int,
        max_tokens: int,
        temperature: float,
        judge_timeout_s: float,
        seed: int,
    ) -> None:
        self.prompts = prompts
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.preference_model = preference_model
        self.reference = reference
        self.log_dir = log_dir
        self.model_name = model_name
        self.samples_per_prompt = samples_per_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.judge_timeout_s = judge_timeout_s
        self.seed = seed
        self._reference_client: SamplingClient | None = None

    def reference_client(self) -> SamplingClient:
        """The reference policy's sampling client (resolved on first use: inline in a run, the
        run's starting weights exist only once its warm start is over)."""
        if self._reference_client is None:
            from cookbook_pairwise.weights import sampling_client

            weights = reference_weights(self.reference, self.log_dir, self.model_name, self.seed)
            self._reference_client = sampling_client(weights)
        return self._reference_client

    async def _sample_all(self, client: SamplingClient) -> list[list[_Reply]]:
        from tinker import types as tinker_types

        futures = [
            client.sample(
                self.renderer.build_generation_prompt(prompt_messages(prompt, self.is_tiny)),
                self.samples_per_prompt,
                tinker_types.SamplingParams(
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    stop=self.renderer.get_stop_sequences(),
                    seed=mix_seed(self.seed, 0x5EED, i),
                ),
            )
            for i, prompt in enumerate(self.prompts)
        ]
        out: list[list[_Reply]] = []
        for future in futures:
            response = await future
            replies = []
            for sequence in response.sequences:
                message, ended = self.renderer.parse_response(list(sequence.tokens))
                replies.append(
                    _Reply(message["content"], reply_format_ok(message["content"], ended))
                )
            out.append(replies)
        return out

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Win rate of `sampling_client` against the reference on the held-out prompts."""
        from cookbook_pairwise.preference.resolve import preference_model

        reference = self.reference_client()
        model = preference_model(self.preference_model)
        policy_P, reference_P = await asyncio.gather(
            self._sample_all(sampling_client), self._sample_all(reference)
        )
        timeout = self.judge_timeout_s if self.judge_timeout_s > 0 else None
        jobs = []
        for prompt, mine, theirs in zip(self.prompts, policy_P, reference_P, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                jobs.append(judge_pair(model, prompt, [a.text, b.text], (0, 1), timeout))
        results = await asyncio.gather(*jobs)
        metrics = win_rate_metrics(results)
        mine_all = [r for replies in policy_P for r in replies]
        theirs_all = [r for replies in reference_P for r in replies]
        metrics["format_ok"] = sum(r.format_ok for r in mine_all) / max(len(mine_all), 1)
        metrics["reference_format_ok"] = sum(r.format_ok for r in theirs_all) / max(
            len(theirs_all), 1
        )
        metrics.update(_scores(model, self.prompts, policy_P, reference_P))
        return metrics


def win_rate_metrics(results: list[PairResult]) -> dict[str, float]:
    """Shares of the judged comparisons the first reply won, tied and lost, and the win rate with
    ties as half a win; failures and two-order agreement."""
    judged = [r.verdict for r in results if r.verdict is not None]
    n = max(len(judged), 1)
    metrics = {
        "comparisons": float(len(results)),
        "judge_failure_rate": (len(results) - len(judged)) / max(len(results), 1),
        "win_rate": sum(v.p_first for v in judged) / n,
        "win": sum(v.winner == 0 for v in judged) / n,
        "tie": sum(v.winner == -1 for v in judged) / n,
        "loss": sum(v.winner == 1 for v in judged) / n,
    }
    two_order = [v.orders_agree for v in judged if v.orders_agree is not None]
    if two_order:
        metrics["order_agreement"] = sum(two_order) / len(two_order)
    return metrics


def _scores(
    model: PreferenceModel,
    prompts: list[str],
    policy_P: list[list[_Reply]],
    reference_P: list[list[_Reply]],
) -> dict[str, float]:
    """Mean score of both sides under a programmatic model (nothing for model judges)."""
    from cookbook_pairwise.preference.rules import ScoreRule

    if not isinstance(model, ScoreRule):
        return {}
    out: dict[str, float] = {}
    for key, side in (("score", policy_P), ("reference_score", reference_P)):
        scores = [
            model.score(p, r.text)
            for p, replies in zip(prompts, side, strict=True)
            for r in replies
        ]
        out[key] = sum(scores) / max(len(scores), 1)
    return out


@chz.chz
class PairwiseWinRateBuilder(EvaluatorBuilder):
    """Win rate of the evaluated policy against a reference policy on held-out prompts."""

    preference_model: str = chz.field(
        default="vowels",
        validator=preference_spec("eval.preference_model"),
        doc="the judge: vowels, length[:N], judge:MODEL or trained:RUN_DIR",
    )
    reference: str = chz.field(
        default="start",
        doc="the policy to beat: start (the starting weights of the run this eval runs in; the "
        "base model when run alone), start:RUN_DIR (where that run started), base (the untrained "
        "base model), or a run directory / checkpoint",
    )
    prompt_set: str = chz.field(default=BUILTIN, doc="synthetic or a JSONL prompt file")
    prompt_field: str = chz.field(default="prompt", doc="the JSONL key holding each prompt")
    test_path: str | None = chz.field(default=None, doc="a JSONL file of held-out prompts")
    test_fraction: float = chz.field(default=0.1, doc="share of a prompt file held out")
    num_prompts: int = chz.field(
        default=200, validator=positive("eval.num_prompts"), doc="held-out prompts to compare on"
    )
    samples_per_prompt: int = chz.field(
        default=1, validator=positive("eval.samples_per_prompt"), doc="comparisons per prompt"
    )
    temperature: float = chz.field(
        default=1.0, validator=non_negative("eval.temperature"), doc="sampling temperature"
    )
    max_tokens: int | None = chz.field(
        default=None,
        validator=positive("eval.max_tokens"),
        doc=f"reply length limit (default {TINY_MAX_TOKENS} for tiny, {CHAT_MAX_TOKENS} otherwise)",
    )
    judge_timeout_s: float = chz.field(
        default=20.0, validator=non_negative("eval.judge_timeout_s"), doc="per comparison (0: none)"
    )
    seed: int = chz.field(
        default=0, doc="seed of the sampling (fixed: every checkpoint sees the same)"
    )

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator on the first `num_prompts` held-out prompts."""
        prompts = load_prompt_set(
            self.prompt_set, self.prompt_field, self.test_path, self.test_fraction
        )
        heldout = prompts.test[: self.num_prompts]
        if not heldout:
            raise UserError(
                "the prompt set has no held-out prompts; set test_path= or test_fraction="
            )
        return PairwiseWinRateEvaluator(
            heldout,
            renderer=ctx.renderer,
            is_tiny=ctx.is_tiny,
            preference_model=self.preference_model,
            reference=self.reference,
            log_dir=ctx.log_dir,
            model_name=ctx.model_name,
            samples_per_prompt=self.samples_per_prompt,
            max_tokens=self.max_tokens or (TINY_MAX_TOKENS if ctx.is_tiny else CHAT_MAX_TOKENS),
            temperature=self.temperature,
            judge_timeout_s=self.judge_timeout_s,
            seed=self.seed,
        )


# --------------------------------------------------------------------------- judge accuracy


class ComparisonAccuracyEvaluator(Evaluator):
    """Judges held-out comparisons (chosen shown first, then second) and counts how often the
    chosen reply is preferred.

    Metrics: `accuracy` (verdict for the chosen reply; ties count half), `mean_p_chosen`,
    `judge_failure_rate`, and for model judges `order_agreement`, `first_order_accuracy` and
    `second_order_accuracy` (chosen shown as A, as B: a gap between them is position bias)."""

    def __init__(
        self,
        comparisons: list[Comparison],
        *,
        preference_model: str | None,
        renderer: Renderer,
        is_tiny: bool,
        mode: str,
        prompt_style: str,
        judge_timeout_s: float,
    ) -> None:
        self.comparisons = comparisons
        self.preference_model = preference_model
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.mode = mode
        self.prompt_style = prompt_style
        self.judge_timeout_s = judge_timeout_s

    def _model(self, sampling_client: SamplingClient) -> PreferenceModel:
        from cookbook_pairwise.preference.judge import ModelJudge
        from cookbook_pairwise.preference.prompt_format import resolve_style
        from cookbook_pairwise.preference.resolve import preference_model

        if self.preference_model is not None:
            return preference_model(self.preference_model)
        style = resolve_style(self.prompt_style, self.is_tiny)
        mode = (
            self.mode if self.mode != "auto" else ("logprobs" if style == "compact" else "sample")
        )
        if mode not in ("sample", "logprobs"):
            raise UserError(
                f"unknown eval.mode {self.mode!r}; choose one of: auto, sample, logprobs"
            )
        return ModelJudge(
            sampling_client, self.renderer, style, "logprobs" if mode == "logprobs" else "sample"
        )

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Accuracy of the judge (the evaluated model unless `preference_model` is set)."""
        model = self._model(sampling_client)
        timeout = self.judge_timeout_s if self.judge_timeout_s > 0 else None
        results = await asyncio.gather(
            *(
                judge_pair(model, c.prompt, [c.chosen, c.rejected], (0, 1), timeout)
                for c in self.comparisons
            )
        )
        judged = [r.verdict for r in results if r.verdict is not None]
        n = max(len(judged), 1)
        metrics = {
            "comparisons": float(len(results)),
            "judge_failure_rate": (len(results) - len(judged)) / max(len(results), 1),
            "accuracy": sum(
                1.0 if v.winner == 0 else 0.5 if v.winner == -1 else 0.0 for v in judged
            )
            / n,
            "mean_p_chosen": sum(v.p_first for v in judged) / n,
        }
        two_order = [v.orders_agree for v in judged if v.orders_agree is not None]
        if two_order:
            metrics["order_agreement"] = sum(two_order) / len(two_order)
        by_order = [v.by_order for v in judged if v.by_order is not None]
        if by_order:
            metrics["first_order_accuracy"] = sum(a > 0.5 for a, _ in by_order) / len(by_order)
            metrics["second_order_accuracy"] = sum(b > 0.5 for _, b in by_order) / len(by_order)
        return metrics


@chz.chz
class ComparisonAccuracyBuilder(ComparisonSource, EvaluatorBuilder):
    """Held-out accuracy of a judge on comparisons: by default the evaluated model itself, asked
    in the format `cookbook sft --dataset comparisons` trains (`load_checkpoint_path=RUN_DIR`)."""

    preference_model: str | None = chz.field(
        default=None,
        validator=preference_spec("eval.preference_model"),
        doc="judge with this preference model instead of the evaluated model (e.g. trained:RUN_DIR "
        "or a rule, as a sanity check)",
    )
    mode: str = chz.field(
        default="auto",
        doc="how the evaluated model answers: logprobs (A vs B), sample (parse a reply) or auto "
        "(logprobs for the compact style)",
    )
    prompt_style: str = chz.field(
        default="auto", doc="the judge format: compact, text or auto (compact for tiny)"
    )
    max_comparisons: int | None = chz.field(
        default=None, validator=positive("eval.max_comparisons"), doc="judge only the first N"
    )
    judge_timeout_s: float = chz.field(
        default=20.0, validator=non_negative("eval.judge_timeout_s"), doc="per comparison (0: none)"
    )

    @chz.validate
    def _check(self) -> None:
        if self.prompt_style not in JUDGE_STYLES:
            raise UserError(
                f"unknown eval.prompt_style {self.prompt_style!r}; choose one of: "
                f"{', '.join(JUDGE_STYLES)}"
            )

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator over the held-out comparisons."""
        comparisons = self.load_test()
        if self.max_comparisons is not None:
            comparisons = comparisons[: self.max_comparisons]
        if not comparisons:
            raise UserError("no held-out comparisons; set test_path= or num_test=")
        return ComparisonAccuracyEvaluator(
            comparisons,
            preference_model=self.preference_model,
            renderer=ctx.renderer,
            is_tiny=ctx.is_tiny,
            mode=self.mode,
            prompt_style=self.prompt_style,
            judge_timeout_s=self.judge_timeout_s,
        )
