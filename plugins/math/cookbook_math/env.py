"""The single-turn math env and its group builder, shared by every task of this plugin.

One problem, one answer: the policy's reply is graded once and the episode ends. A group is G
attempts at the same problem, so the runner can centre rewards within it (GRPO style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cookbook.renderers.base import Message, Renderer
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Observation,
    StepResult,
    StopCondition,
)
from cookbook_math.answers import AnswerMode
from cookbook_math.grader import DEFAULT_TIMEOUT_S, grade_response_async


@dataclass(frozen=True)
class GradingOptions:
    """How a reply is graded and rewarded."""

    answer_mode: AnswerMode = "auto"
    """Where the answer is read from (see `cookbook_math.answers.AnswerMode`)."""
    format_mode: AnswerMode = "auto"
    """The answer form that earns the format reward (`last_number`: the reply is one number)."""
    format_reward: float = 0.1
    """Added to the reward when the reply is well formed and ended cleanly."""
    symbolic: bool = True
    """Compare non-numeric answers symbolically (math-verify in a worker); off: numbers only."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Time limit of one symbolic comparison."""


class MathEnv(Env):
    """One attempt at one problem. Reward: 1 if correct, plus `format_reward` if well formed.

    Metrics: `correct` and `format_ok` (0 or 1 each).
    """

    def __init__(
        self, messages: list[Message], gold: str, renderer: Renderer, grading: GradingOptions
    ) -> None:
        self.messages = messages
        self.gold = gold
        self.renderer = renderer
        self.grading = grading

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The problem as a chat prompt; the turn ends at the renderer's stop tokens."""
        return self.renderer.build_generation_prompt(
            self.messages
        ), self.renderer.get_stop_sequences()

    async def step(self, action: Action) -> StepResult:
        """Grade the reply and end the episode."""
        from tinker import types as tinker_types

        message, ended = self.renderer.parse_response(action)
        reply = message["content"]
        g = self.grading
        grade = await grade_response_async(
            reply,
            self.gold,
            answer_mode=g.answer_mode,
            format_mode=g.format_mode,
            symbolic=g.symbolic,
            timeout_s=g.timeout_s,
        )
        # A reply cut off by the length limit is never well formed, even if it looks it.
        format_ok = grade.format_ok and ended
        reward = float(grade.correct) + g.format_reward * float(format_ok)
        return StepResult(
            reward=reward,
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=self.renderer.get_stop_sequences(),
            metrics={"correct": float(grade.correct), "format_ok": float(format_ok)},
            logs={
                "problem": self.messages[-1]["content"],
                "reply": reply,
                "extracted": grade.answer if grade.answer is not None else "",
                "reference": self.gold,
            },
        )


@dataclass
class MathGroupBuilder(EnvGroupBuilder):
    """G attempts at one problem (plain data: picklable with its renderer)."""

    messages: list[Message]
    """The prompt conversation (usually one user turn)."""
    gold: str
    """The reference answer."""
    renderer: Renderer
    grading: GradingOptions
    group_size: int
    tags: list[str] = field(default_factory=list)

    async def make_envs(self) -> Sequence[Env]:
        """`group_size` independent envs for the same problem."""
        return [
            MathEnv(list(self.messages), self.gold, self.renderer, self.grading)
            for _ in range(self.group_size)
        ]

    def logging_tags(self) -> list[str]:
        """The task name, for per-task metrics."""
        return list(self.tags)
