"""Evals: `arithmetic` (held-out accuracy) and `gsm8k-file` / `math-file` (accuracy and pass@k
on a problem file's test split).

Each reply is an episode of the math env (`cookbook_math.env.MathEnv`), played by
`cookbook.eval.episodes`: graded exactly as RL rewards it, every problem at once so a backend can
batch the requests.
"""

from __future__ import annotations

from math import comb
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.eval.episodes import EpisodeEvaluator
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.renderers.base import Message
from cookbook_math.answers import AnswerMode
from cookbook_math.arithmetic import ArithmeticSettings, heldout_problems
from cookbook_math.arithmetic_env import arithmetic_grading, arithmetic_messages
from cookbook_math.env import GradingOptions, MathGroupBuilder
from cookbook_math.file_env import (
    COMPETITION_INSTRUCTION,
    WORD_PROBLEM_INSTRUCTION,
    ProblemSource,
    record_messages,
)
from cookbook_math.grader import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer

TINY_MAX_TOKENS = 16
CHAT_MAX_TOKENS = 1024


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from `n` samples of which `c` are correct: the chance
    that `k` of the `n` drawn without replacement include a correct one, 1 - C(n-c, k) / C(n, k).
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


class SampledAnswersEvaluator(Evaluator):
    """Plays `num_samples` episodes of the math env per problem (`MathEnv`: one reply, graded)
    with `cookbook.eval.episodes`, and aggregates them.

    Metrics: `accuracy` (share of correct replies), `format_ok` (share well formed and ended
    cleanly), `exact_accuracy` (both), and `pass@k` for each k (counting correct replies).
    """

    def __init__(
        self,
        problems: list[tuple[list[Message], str]],
        *,
        renderer: Renderer,
        grading: GradingOptions,
        num_samples: int,
        ks: tuple[int, ...],
        max_tokens: int,
        temperature: float,
        seed: int,
    ) -> None:
        self.problems = problems
        self.num_samples = num_samples
        self.ks = tuple(k for k in ks if k <= num_samples)
        # One group per problem: its num_samples attempts, graded exactly as in training.
        groups_P = [
            MathGroupBuilder(messages, gold, renderer, grading, group_size=num_samples)
            for messages, gold in problems
        ]
        self.episodes = (
            EpisodeEvaluator(groups_P, max_tokens=max_tokens, temperature=temperature, seed=seed)
            if groups_P
            else None
        )

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Sample every problem, grade every reply, average."""
        if self.episodes is None:
            return {}
        results = await self.episodes.play(sampling_client)
        if results.lost:
            raise RuntimeError(
                f"{results.lost} problems could not be graded; first: {results.error_messages[0]}"
            )
        correct_P: list[int] = []
        format_ok_total = exact_total = replies = 0
        for group in results.groups_P:
            grades_G = [
                (t.transitions[-1].metrics["correct"], t.transitions[-1].metrics["format_ok"])
                for t in group.trajectories_G
            ]
            correct_P.append(int(sum(c for c, _ in grades_G)))
            format_ok_total += int(sum(f for _, f in grades_G))
            exact_total += int(sum(c * f for c, f in grades_G))
            replies += len(grades_G)
        metrics = {
            "accuracy": sum(correct_P) / max(replies, 1),
            "format_ok": format_ok_total / max(replies, 1),
            "exact_accuracy": exact_total / max(replies, 1),
        }
        n = self.num_samples
        for k in self.ks:
            metrics[f"pass@{k}"] = sum(pass_at_k(n, min(c, n), k) for c in correct_P) / len(
                correct_P
            )
        return metrics


def _max_tokens(max_tokens: int | None, ctx: BuildContext) -> int:
    if max_tokens is not None:
        return max_tokens
    return TINY_MAX_TOKENS if ctx.is_tiny else CHAT_MAX_TOKENS


@chz.chz
class ArithmeticEvalBuilder(EvaluatorBuilder):
    """Greedy accuracy on the held-out `arithmetic` problems (the env's test set)."""

    operations: str = chz.field(default="+", doc="Operators to draw from, any of +-*/.")
    digits: int = chz.field(default=2, doc="Digits per operand (1-9).")
    num_operands: int = chz.field(default=2, doc="Operands per problem (2-8).")
    allow_negative: bool = chz.field(default=False, doc="Allow negative answers.")
    num_problems: int = chz.field(
        default=200, doc="Held-out problems to score (keep <= the env's num_test)."
    )
    max_tokens: int | None = chz.field(
        default=None, doc="Reply length limit (default: 16 for tiny, 1024 otherwise)."
    )
    temperature: float = chz.field(default=0.0, doc="Sampling temperature (0: greedy).")

    @chz.validate
    def _check(self) -> None:
        ArithmeticSettings(
            self.operations, self.digits, self.num_operands, self.allow_negative
        ).validate()
        if self.num_problems < 1:
            raise UserError("num_problems must be >= 1")

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator over the first `num_problems` held-out problems."""
        settings = ArithmeticSettings(
            self.operations, self.digits, self.num_operands, self.allow_negative
        )
        problems = [
            (arithmetic_messages(p, ctx.is_tiny), str(p.answer))
            for p in heldout_problems(settings, self.num_problems)
        ]
        return SampledAnswersEvaluator(
            problems,
            renderer=ctx.renderer,
            grading=arithmetic_grading(ctx.is_tiny, format_reward=0.0),
            num_samples=1,
            ks=(),
            max_tokens=_max_tokens(self.max_tokens, ctx),
            temperature=self.temperature,
            seed=ctx.seed,
        )


@chz.chz
class WordProblemsEvalBuilder(ProblemSource, EvaluatorBuilder):
    """Accuracy and pass@k on the test split of a GSM8K-style problem file."""

    instruction: str = chz.field(
        default=WORD_PROBLEM_INSTRUCTION,
        doc="Appended to each problem (use the env's).",
    )
    answer_mode: AnswerMode = chz.field(
        default="auto", doc="Where the answer is read from: boxed, hash, last_number or auto."
    )
    format_mode: AnswerMode = chz.field(default="hash", doc="The answer form counted as format_ok.")
    num_samples: int = chz.field(default=1, doc="Replies sampled per problem (n of pass@k).")
    ks: tuple[int, ...] = chz.field(
        default=(1,), doc="The k values of pass@k (each <= num_samples)."
    )
    temperature: float | None = chz.field(
        default=None, doc="Sampling temperature (default: 0 for one sample, 1 for several)."
    )
    max_tokens: int | None = chz.field(
        default=None, doc="Reply length limit (default: 16 for tiny, 1024 otherwise)."
    )
    max_problems: int | None = chz.field(default=None, doc="Score only the first N test problems.")
    symbolic: bool = chz.field(default=True, doc="Compare non-numeric answers symbolically.")
    grade_timeout_s: float = chz.field(
        default=DEFAULT_TIMEOUT_S, doc="Time limit of one symbolic comparison, in seconds."
    )

    @chz.validate
    def _check(self) -> None:
        if self.num_samples < 1:
            raise UserError("num_samples must be >= 1")
        if any(not 1 <= k <= self.num_samples for k in self.ks):
            raise UserError(f"ks={self.ks} must lie in 1..num_samples={self.num_samples}")

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator over the test split (`test_path`, the hub's test split, or the
        held-out share of `path`)."""
        _, test = self.load()
        if self.max_problems is not None:
            test = test[: self.max_problems]
        if not test:
            raise UserError("the eval has no test problems; set test_path= or raise test_fraction")
        temperature = self.temperature
        if temperature is None:
            temperature = 0.0 if self.num_samples == 1 else 1.0
        return SampledAnswersEvaluator(
            [(record_messages(r, self.instruction), r.answer) for r in test],
            renderer=ctx.renderer,
            grading=GradingOptions(
                self.answer_mode, self.format_mode, 0.0, self.symbolic, self.grade_timeout_s
            ),
            num_samples=self.num_samples,
            ks=self.ks,
            max_tokens=_max_tokens(self.max_tokens, ctx),
            temperature=temperature,
            seed=ctx.seed,
        )


@chz.chz
class CompetitionEvalBuilder(WordProblemsEvalBuilder):
    """Accuracy and pass@k on the test split of a MATH-style problem file."""

    question_field: str = chz.field(default="problem", doc="Field holding the problem text.")
    answer_field: str = chz.field(
        default="solution", doc="Field holding the answer or a solution with \\boxed{answer}."
    )
    instruction: str = chz.field(
        default=COMPETITION_INSTRUCTION,
        doc="Appended to each problem (use the env's).",
    )
    format_mode: AnswerMode = chz.field(
        default="boxed", doc="The answer form counted as format_ok."
    )

    def demo_file(self) -> str:
        """The bundled competition-style set."""
        from cookbook_math.records import DEMO_FILES

        return str(DEMO_FILES["competition"])
