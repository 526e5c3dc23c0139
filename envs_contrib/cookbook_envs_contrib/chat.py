"""What the single-player multi-turn envs of this package share: an episode as a growing chat
(`ChatEnv`), groups of G attempts at one task with per-episode metrics (`TaskGroupBuilder`),
batches of seeded tasks (`TaskDataset`), and supervised conversations for the warm start
(`conversation_dataset`).

Each turn's observation is the whole conversation so far, rendered by the model's renderer, so
it extends the previous observation and the reply: the RL loop then trains a whole episode as one
sequence (`cookbook/rl/data.py`).
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Metrics,
    Observation,
    RLDataset,
    StepResult,
    StopCondition,
    Trajectory,
)

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook.supervised.datasets import DatumDataset

TaskT = TypeVar("TaskT")


class ChatEnv(Env):
    """One episode as a conversation: the env's user turns, the policy's assistant turns.

    Subclasses give the opening message (`opening`) and answer each reply (`respond`); this
    class keeps the conversation, renders it and records the episode's metrics."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.messages: list[Message] = []
        self.episode_metrics: Metrics = {}
        """Per-episode metrics, set when the episode ends (reported by the group builder)."""

    @abstractmethod
    def opening(self) -> str:
        """The first user message."""

    @abstractmethod
    def respond(self, reply: str, ended: bool) -> tuple[str | None, float, dict[str, str]]:
        """Answer the policy's `reply` (`ended`: it closed with a stop token rather than being
        cut by the length limit): the next user message (`None` ends the episode), the step's
        reward and transcript logs. Set `episode_metrics` before ending."""

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The conversation's opening."""
        self.messages = [Message(role="user", content=self.opening())]
        return self._prompt(), self.renderer.get_stop_sequences()

    async def step(self, action: Action) -> StepResult:
        """Add the reply to the conversation and the env's answer to it."""
        message, ended = self.renderer.parse_response(action)
        reply = message["content"]
        self.messages.append(Message(role="assistant", content=reply))
        answer, reward, logs = self.respond(reply, ended)
        if answer is None:
            from tinker import types as tinker_types

            return StepResult(
                reward=reward,
                episode_done=True,
                next_observation=tinker_types.ModelInput.empty(),
                next_stop_condition=self.renderer.get_stop_sequences(),
                logs=logs,
            )
        self.messages.append(Message(role="user", content=answer))
        return StepResult(
            reward=reward,
            episode_done=False,
            next_observation=self._prompt(),
            next_stop_condition=self.renderer.get_stop_sequences(),
            logs=logs,
        )

    def _prompt(self) -> Observation:
        return self.renderer.build_generation_prompt(self.messages)


@dataclass(frozen=True)
class TaskGroupBuilder(EnvGroupBuilder, Generic[TaskT]):
    """G attempts at one task (plain data). The per-episode metrics come back through
    `compute_group_rewards`, so the runner averages them over episodes, not turns."""

    task: TaskT
    make_env: Callable[[TaskT], ChatEnv]
    """Makes one env for the task (a picklable callable: a module-level class or function, or a
    dataclass holding the settings)."""
    group_size: int
    tags: tuple[str, ...] = ()

    async def make_envs(self) -> Sequence[Env]:
        """`group_size` fresh envs for the same task."""
        return [self.make_env(self.task) for _ in range(self.group_size)]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        """No extra reward; each episode's metrics."""
        out: list[tuple[float, Metrics]] = []
        for env in envs_G:
            assert isinstance(env, ChatEnv)
            out.append((0.0, dict(env.episode_metrics)))
        return out

    def logging_tags(self) -> list[str]:
        """The env's name."""
        return list(self.tags)


@dataclass
class TaskDataset(RLDataset, Generic[TaskT]):
    """Batches of groups, one task each. Training draws task `g` of batch `i` from a generator
    seeded by `(seed, i, g)`; a test set serves a fixed list of tasks, one attempt each."""

    draw: Callable[[random.Random], TaskT]
    """Draws a training task."""
    make_env: Callable[[TaskT], ChatEnv]
    seed: int
    groups_per_batch: int
    group_size: int
    num_batches: int
    tags: tuple[str, ...] = ()
    fixed: list[TaskT] = field(default_factory=list)
    """When given: the tasks served, in order (a test set); `draw` is then unused."""

    def get_batch(self, index: int) -> Sequence[TaskGroupBuilder[TaskT]]:
        """Batch `index`."""
        if self.fixed:
            chunk = self.fixed[index * self.groups_per_batch : (index + 1) * self.groups_per_batch]
        else:
            chunk = [
                self.draw(random.Random(f"{self.seed}/{index}/{g}"))
                for g in range(self.groups_per_batch)
            ]
        return [TaskGroupBuilder(t, self.make_env, self.group_size, self.tags) for t in chunk]

    def __len__(self) -> int:
        """Number of batches."""
        if self.fixed:
            return -(-len(self.fixed) // self.groups_per_batch)
        return self.num_batches


def conversation_dataset(
    conversations: Sequence[list[Message]], renderer: Renderer, batch_size: int, seed: int
) -> DatumDataset:
    """`cross_entropy` datums of whole conversations, every assistant turn trained (what the
    warm start of a multi-turn env needs: the format of each turn)."""
    from cookbook.supervised.datasets import DatumDataset
    from cookbook.supervised.datums import datum_from_tokens

    datums = []
    for messages in conversations:
        tokens, weights = renderer.build_supervised_example(
            messages, TrainOnWhat.ALL_ASSISTANT_MESSAGES
        )
        datums.append(datum_from_tokens(tokens, weights))
    return DatumDataset(datums, batch_size, seed=seed)


def demo_splits(
    make: Callable[[int, int], Sequence[list[Message]]],
    num_train: int,
    num_test: int,
    renderer: Renderer,
    batch_size: int,
    seed: int,
) -> tuple[DatumDataset, DatumDataset | None]:
    """A warm-start dataset's train and held-out splits: `make(count, seed)` conversations,
    the held-out ones from a disjoint seed (none when `num_test` <= 0)."""
    train = conversation_dataset(make(num_train, seed), renderer, batch_size, seed)
    if num_test <= 0:
        return train, None
    test_seed = seed + 1_000_003
    return train, conversation_dataset(make(num_test, test_seed), renderer, batch_size, test_seed)
