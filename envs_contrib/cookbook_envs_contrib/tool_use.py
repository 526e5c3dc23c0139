"""`calculator`: a tool-use env. The policy gets an arithmetic problem too hard to do in its head
(`47*83+19` for the tiny model) and, turn by turn, either calls the calculator or answers:

    calc 47*83+19     the env computes it (`cookbook_envs_contrib.calculator`, exact, never
                      eval()) and the next user turn is the result, `3920` (or `error: ...`)
    answer 3920       the final answer: the episode ends

Anything else ends the episode unrewarded, as does a call past `max_calls`. Reward: 1 for a
correct answer, less `call_cost` per calculator call. The tiny model sees the bare problem and
the bare results; chat models get a sentence with the protocol and `calculator: 3920`.

Per-episode metrics: `correct`, `calls`, `direct` (answered without calling), `tool_errors`
(calls the calculator refused), `invalid` (a reply neither a call nor an answer) and
`tool_had_answer` (a call returned the right number: the policy then only had to copy it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import chz
from cookbook_textarena.game import PROMPT_STYLES, resolve_prompt_style

from cookbook.errors import UserError
from cookbook.eval.types import EvaluatorBuilder
from cookbook.renderers.base import Message
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDatasetBuilder
from cookbook.validators import positive
from cookbook_envs_contrib.calculator import (
    CalculatorError,
    calculate,
    format_number,
    parse_number,
)
from cookbook_envs_contrib.chat import ChatEnv, TaskDataset, demo_splits

if TYPE_CHECKING:
    from cookbook_textarena.game import PromptStyle

    from cookbook.build_context import BuildContext
    from cookbook.eval.types import Evaluator
    from cookbook.renderers.base import Renderer
    from cookbook.rl.types import RLDataset
    from cookbook.supervised.types import SupervisedDataset

TAG = "calculator"
CALL, ANSWER = "calc", "answer"
"""The two reply forms: `calc EXPRESSION` and `answer NUMBER`."""

OPERATIONS = "+-*"
HELDOUT_SALT = "cookbook-envs-contrib-calculator-test"
"""Seeds the test problems: the same for every run seed."""


@dataclass(frozen=True)
class Problem:
    """`operands[0] operators[0] operands[1] ...` and its exact value."""

    operands: tuple[int, ...]
    operators: tuple[str, ...]

    @property
    def expression(self) -> str:
        """Compact form, `47*83+19`."""
        parts = [str(self.operands[0])]
        for op, x in zip(self.operators, self.operands[1:], strict=True):
            parts += [op, str(x)]
        return "".join(parts)

    @property
    def answer(self) -> Fraction:
        """The exact value (the calculator's, so the two always agree)."""
        return calculate(self.expression)

    def spans(self) -> list[str]:
        """Every contiguous part of two or more operands (the whole expression last): what a
        warm-start call may compute."""
        n = len(self.operands)
        out = []
        for size in range(2, n + 1):
            for start in range(n - size + 1):
                part = Problem(
                    self.operands[start : start + size], self.operators[start : start + size - 1]
                )
                out.append(part.expression)
        return out


@dataclass(frozen=True)
class ProblemSettings:
    """The difficulty of the problems."""

    operations: str = "+*"
    digits: int = 2
    num_operands: int = 3

    def validate(self) -> None:
        """One-line `UserError`s for settings that make no problems."""
        if not self.operations or any(op not in OPERATIONS for op in self.operations):
            raise UserError(
                f"operations={self.operations!r}: use one or more of {OPERATIONS!r} (e.g. +*)"
            )
        if not 1 <= self.digits <= 6:
            raise UserError(f"digits={self.digits} is out of range; use 1 to 6")
        if not 2 <= self.num_operands <= 5:
            raise UserError(f"num_operands={self.num_operands} is out of range; use 2 to 5")

    def draw(self, rng: random.Random) -> Problem:
        """One problem."""
        low = 0 if self.digits == 1 else 10 ** (self.digits - 1)
        high = 10**self.digits - 1
        operands = tuple(rng.randint(low, high) for _ in range(self.num_operands))
        operators = tuple(rng.choice(self.operations) for _ in range(self.num_operands - 1))
        return Problem(operands, operators)


def heldout_problems(settings: ProblemSettings, count: int) -> list[Problem]:
    """The test set: the first `count` distinct problems of a stream seeded by the settings
    alone, the same for every run."""
    rng = random.Random(f"{HELDOUT_SALT}:{settings}")
    seen: set[str] = set()
    out: list[Problem] = []
    for _ in range(20 * count + 20):
        if len(out) >= count:
            break
        problem = settings.draw(rng)
        if problem.expression not in seen:
            seen.add(problem.expression)
            out.append(problem)
    return out


def opening_text(problem: Problem, max_calls: int, style: PromptStyle) -> str:
    """The first user message."""
    if style == "compact":
        return problem.expression
    return (
        f"Compute {problem.expression}. You have a calculator: reply `{CALL} EXPRESSION` (for "
        f"example `{CALL} 12*34`) and the result comes back; you may call it {max_calls} times. "
        f"Give the final answer as `{ANSWER} NUMBER`, and nothing else."
    )


def tool_text(result: str, style: PromptStyle) -> str:
    """The user turn carrying a calculator result."""
    return result if style == "compact" else f"calculator: {result}"


def run_tool(expression: str) -> str:
    """The calculator's answer to `expression`: the number, or `error: why`."""
    try:
        return format_number(calculate(expression))
    except CalculatorError as e:
        return f"error: {e}"


def split_reply(reply: str) -> tuple[str, str]:
    """`(CALL | ANSWER | "", the rest)`: which kind of reply, and its argument."""
    head, _, rest = reply.strip().partition(" ")
    head = head.lower().rstrip(":")
    if head in (CALL, ANSWER):
        return head, rest.strip()
    return "", reply


@dataclass(frozen=True)
class ToolRules:
    """How an episode is scored."""

    max_calls: int = 2
    call_cost: float = 0.05


class CalculatorEnv(ChatEnv):
    """One problem: calculator calls, then an answer."""

    def __init__(self, problem: Problem, rules: ToolRules, renderer: Renderer, style: PromptStyle):
        super().__init__(renderer)
        self.problem = problem
        self.answer = problem.answer
        self.rules = rules
        self.style = style
        self.calls = 0
        self.tool_errors = 0
        self.tool_had_answer = False

    def opening(self) -> str:
        """The problem (and, in the text style, the protocol)."""
        return opening_text(self.problem, self.rules.max_calls, self.style)

    def _end(self, correct: bool, invalid: bool) -> float:
        self.episode_metrics = {
            "correct": float(correct),
            "calls": float(self.calls),
            "direct": float(self.calls == 0 and not invalid),
            "tool_errors": float(self.tool_errors),
            "invalid": float(invalid),
            "tool_had_answer": float(self.tool_had_answer),
        }
        return float(correct) - self.rules.call_cost * self.calls

    def respond(self, reply: str, ended: bool) -> tuple[str | None, float, dict[str, str]]:
        """Run a call, grade an answer, or end on anything else."""
        kind, argument = split_reply(reply) if ended else ("", reply)
        if kind == CALL and self.calls < self.rules.max_calls:
            self.calls += 1
            result = run_tool(argument)
            self.tool_errors += result.startswith("error")
            self.tool_had_answer |= parse_number(result) == self.answer
            return tool_text(result, self.style), 0.0, {"tool": f"{argument} -> {result}"}
        if kind == ANSWER:
            value = parse_number(argument)
            correct = value is not None and value == self.answer
            logs = {"answer": argument, "reference": format_number(self.answer)}
            return None, self._end(correct, False), logs
        why = "a call past max_calls" if kind == CALL else "neither a call nor an answer"
        if not ended:
            why = "cut off by the length limit"
        return None, self._end(False, True), {"invalid": f"{reply!r}: {why}"}


@dataclass(frozen=True)
class CalculatorEnvFactory:
    """Makes the env of one problem (plain data, so group builders pickle)."""

    rules: ToolRules
    renderer: Renderer
    style: PromptStyle

    def __call__(self, problem: Problem) -> CalculatorEnv:
        return CalculatorEnv(problem, self.rules, self.renderer, self.style)


@dataclass(frozen=True)
class _TrainDraw:
    """Draws a training problem that is not a test problem."""

    settings: ProblemSettings
    held_out: frozenset[str]

    def __call__(self, rng: random.Random) -> Problem:
        problem = self.settings.draw(rng)
        for _ in range(100):
            if problem.expression not in self.held_out:
                break
            problem = self.settings.draw(rng)
        return problem


def _check_style(obj: object, attr: str) -> None:
    value = getattr(obj, attr)
    if value not in PROMPT_STYLES:
        raise UserError(
            f"unknown prompt_style {value!r}; choose one of: {', '.join(PROMPT_STYLES)}"
        )


@chz.chz
class CalculatorEnvBuilder(RLDatasetBuilder):
    """Arithmetic with a calculator tool: call it, read the result, answer."""

    operations: str = chz.field(default="+*", doc="operators to draw from, any of +-*")
    digits: int = chz.field(default=2, doc="digits per operand (1-6)")
    num_operands: int = chz.field(default=3, doc="operands per problem (2-5)")
    max_calls: int = chz.field(
        default=2, validator=positive("env.max_calls"), doc="calculator calls per problem"
    )
    call_cost: float = chz.field(default=0.05, doc="reward taken off for each calculator call")
    prompt_style: str = chz.field(
        default="auto", validator=_check_style, doc="compact (the bare problem), text or auto"
    )
    num_test: int = chz.field(default=64, doc="test problems (never drawn for training)")
    num_batches: int = chz.field(
        default=100_000, validator=positive("env.num_batches"), doc="training batches"
    )

    @chz.validate
    def _check(self) -> None:
        self.settings().validate()
        if not 0 <= self.call_cost * self.max_calls <= 1:
            raise UserError(f"call_cost={self.call_cost} must be >= 0 and at most 1/max_calls")

    def settings(self) -> ProblemSettings:
        """The difficulty options as one value."""
        return ProblemSettings(self.operations, self.digits, self.num_operands)

    def reward_range(self) -> tuple[float, float]:
        """From every call spent and no answer, to a correct answer."""
        return (-self.call_cost * self.max_calls, 1.0)

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """Train: a random problem per group, G attempts each. Test: fixed problems, one attempt
        each."""
        settings = self.settings()
        factory = CalculatorEnvFactory(
            ToolRules(self.max_calls, self.call_cost),
            ctx.renderer,
            resolve_prompt_style(self.prompt_style, ctx.is_tiny),
        )
        held_out = heldout_problems(settings, max(self.num_test, 0))
        draw = _TrainDraw(settings, frozenset(p.expression for p in held_out))
        train = TaskDataset(
            draw=draw,
            make_env=factory,
            seed=ctx.seed,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            num_batches=self.num_batches,
            tags=(TAG,),
        )
        if not held_out:
            return train, None
        test = TaskDataset(
            draw=draw,
            make_env=factory,
            seed=0,
            groups_per_batch=ctx.groups_per_batch,
            group_size=1,
            num_batches=0,
            tags=(TAG,),
            fixed=held_out,
        )
        return train, test


def demo_conversation(
    problem: Problem, rng: random.Random, direct_fraction: float, style: PromptStyle
) -> list[Message]:
    """One warm-start episode: a direct answer (a number of about the right size, rarely the
    right one) with probability `direct_fraction`, else a call on a random part of the problem
    (the whole of it among them) and an answer copying the result."""
    messages = [Message(role="user", content=opening_text(problem, 1, style))]
    if rng.random() < direct_fraction:
        size = len(format_number(problem.answer).lstrip("-"))
        guess = rng.randint(10 ** (size - 1) if size > 1 else 0, 10**size - 1)
        messages.append(Message(role="assistant", content=f"{ANSWER} {guess}"))
        return messages
    part = rng.choice(problem.spans())
    result = run_tool(part)
    messages.append(Message(role="assistant", content=f"{CALL} {part}"))
    messages.append(Message(role="user", content=tool_text(result, style)))
    messages.append(Message(role="assistant", content=f"{ANSWER} {result}"))
    return messages


@chz.chz
class CalculatorDemosBuilder(SupervisedDatasetBuilder):
    """Warm-start episodes with the reply formats: direct answers, and calls on random parts of
    the problem followed by the result (which part to compute is left to RL)."""

    num_games: int = chz.field(
        default=2000, validator=positive("dataset.num_games"), doc="training episodes"
    )
    test_games: int = chz.field(default=100, doc="held-out episodes (0 for no test set)")
    direct_fraction: float = chz.field(
        default=0.25, doc="share of episodes answered without a call"
    )
    operations: str = chz.field(default="+*", doc="must match the env's")
    digits: int = chz.field(default=2, doc="must match the env's")
    num_operands: int = chz.field(default=3, doc="must match the env's")
    batch_size: int | None = chz.field(
        default=None,
        validator=positive("dataset.batch_size"),
        doc="episodes per batch (default: the run's batch size)",
    )
    prompt_style: str = chz.field(
        default="auto", validator=_check_style, doc="must match the env's: compact, text, auto"
    )

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Train and held-out episodes from disjoint seeds."""
        settings = ProblemSettings(self.operations, self.digits, self.num_operands)
        settings.validate()
        style = resolve_prompt_style(self.prompt_style, ctx.is_tiny)
        batch_size = self.batch_size or ctx.groups_per_batch

        def episodes(count: int, seed: int) -> list[list[Message]]:
            rng = random.Random(f"calculator-demos/{seed}")
            return [
                demo_conversation(settings.draw(rng), rng, self.direct_fraction, style)
                for _ in range(count)
            ]

        return demo_splits(
            episodes, self.num_games, self.test_games, ctx.renderer, batch_size, ctx.seed
        )


@chz.chz
class CalculatorEval(EvaluatorBuilder):
    """Accuracy and tool use on the env's test problems (the same for every checkpoint)."""

    num_problems: int = chz.field(
        default=64, validator=positive("eval.num_problems"), doc="test problems"
    )
    operations: str = chz.field(default="+*", doc="operators to draw from, any of +-*")
    digits: int = chz.field(default=2, doc="digits per operand")
    num_operands: int = chz.field(default=3, doc="operands per problem")
    max_calls: int = chz.field(default=2, doc="calculator calls per problem")
    temperature: float = chz.field(default=0.0, doc="sampling temperature (0: greedy)")
    max_tokens: int = chz.field(
        default=24, validator=positive("eval.max_tokens"), doc="reply length limit"
    )
    prompt_style: str = chz.field(
        default="auto", validator=_check_style, doc="compact, text or auto"
    )

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """Plays the env's test problems (`env/correct`, `env/calls`, `reward/mean`, ...)."""
        from cookbook.rl.evaluators import RLTestSetEvaluator

        env = CalculatorEnvBuilder(
            operations=self.operations,
            digits=self.digits,
            num_operands=self.num_operands,
            max_calls=self.max_calls,
            prompt_style=self.prompt_style,
            num_test=self.num_problems,
        )
        _train, test = env(ctx)
        assert test is not None
        return RLTestSetEvaluator(test, self.max_tokens, self.temperature, max_batches=None)
