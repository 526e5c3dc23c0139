"""The RL contracts: what an environment plugin implements and what the runner consumes.

The builder pattern: an `RLDatasetBuilder` (a chz config) builds an `RLDataset`,
which hands out batches of `EnvGroupBuilder`s, each of which builds a group of single-use `Env`s.
A group shares something: the same task (rewards are centred within it, GRPO style) or the same
game (the envs are the seats of a multi-agent episode, and `compute_group_rewards` scores them
together).

Shape suffixes: `_G` is the group axis, `_T` tokens, `_P` problems (`rewards_G`, `tokens_P_G_T`).
Only light imports here: plugins import this module while being listed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import chz

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext

Action: TypeAlias = list[int]
"""The tokens the policy sampled for one turn."""

Observation: TypeAlias = "tinker_types.ModelInput"
"""The full prompt the policy sees for its next turn (a tinker `ModelInput`)."""

StopCondition: TypeAlias = "list[str] | list[int]"
"""Stop strings or stop token ids that end the policy's turn."""

Metrics: TypeAlias = dict[str, float]
"""Scalar metrics, logged under their keys (averaged over the batch by the runner)."""

Logs: TypeAlias = dict[str, str]
"""Human-readable text for transcripts (for example the board after the move)."""


@dataclass
class StepResult:
    """What `Env.step` returns."""

    reward: float
    """Reward for this step (summed with the group reward at the end of the episode)."""
    episode_done: bool
    """True when the episode is over; `next_observation` is then ignored."""
    next_observation: Observation
    """The prompt for the next turn (an empty `ModelInput` when the episode is done)."""
    next_stop_condition: StopCondition
    """How the next turn ends."""
    metrics: Metrics = field(default_factory=dict)
    """Per-step metrics (for example `illegal_move`), averaged over the batch."""
    logs: Logs = field(default_factory=dict)
    """Text for the transcript of this step."""


class Env(ABC):
    """One episode from the point of view of one policy. Single use: there is no reset.

    Shared resources (a game several envs take part in, an opponent model) belong to whatever
    built the env, usually its `EnvGroupBuilder`.
    """

    @abstractmethod
    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The first prompt and its stop condition."""

    @abstractmethod
    async def step(self, action: Action) -> StepResult:
        """Apply the policy's action (sampled tokens) and return what follows."""


@dataclass
class Transition:
    """One turn of an episode: the prompt, what the policy sampled and what it got for it."""

    ob: Observation
    """The observation the policy acted on."""
    ac_tokens: list[int]
    """The sampled tokens."""
    ac_logprobs: list[float]
    """Sampling logprobs of `ac_tokens` (needed by importance-sampling losses)."""
    reward: float
    """The step reward."""
    episode_done: bool
    """Whether this transition ended the episode."""
    metrics: Metrics = field(default_factory=dict)
    """The step's metrics."""
    logs: Logs = field(default_factory=dict)
    """The step's transcript text."""


@dataclass
class Trajectory:
    """A whole episode of one env."""

    transitions: list[Transition]
    """The turns in order."""
    final_ob: Observation
    """The observation after the last turn (often empty)."""

    @property
    def total_step_reward(self) -> float:
        """Sum of the per-step rewards."""
        return sum(t.reward for t in self.transitions)


@dataclass
class TrajectoryGroup:
    """The trajectories of one group with the group-level rewards added."""

    trajectories_G: list[Trajectory]
    """One trajectory per env of the group."""
    final_rewards_G: list[float]
    """Rewards from `EnvGroupBuilder.compute_group_rewards`, one per trajectory."""
    metrics_G: list[Metrics]
    """Metrics from `compute_group_rewards`, one dict per trajectory."""
    tags: list[str] = field(default_factory=list)
    """The builder's `logging_tags()`, for per-tag metric breakdowns."""

    def get_total_rewards(self) -> list[float]:
        """Step rewards plus group rewards, one per trajectory."""
        return [
            traj.total_step_reward + final
            for traj, final in zip(self.trajectories_G, self.final_rewards_G, strict=True)
        ]


class EnvGroupBuilder(ABC):
    """Builds one group of envs. Must be picklable (plain data), so batches can be replayed."""

    @abstractmethod
    async def make_envs(self) -> Sequence[Env]:
        """Make the group's envs (G of them). Called once per group."""

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        """Rewards that need the whole group (pairwise preferences, game outcomes).

        Returns one `(reward, metrics)` per trajectory. The default adds nothing.
        """
        return [(0.0, {}) for _ in trajectories_G]

    def logging_tags(self) -> list[str]:
        """Tags under which the runner also reports this group's metrics (e.g. `["tictactoe"]`)."""
        return []


class RLDataset(ABC):
    """A sequence of batches of `EnvGroupBuilder`s."""

    @abstractmethod
    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """Batch `index` (deterministic for a given dataset seed)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of batches."""


@chz.chz
class RLDatasetBuilder:
    """A chz config whose call builds `(train, test | None)`.

    This is what an env plugin registers: its fields are the env's options, set from the
    command line as `env.FIELD=value`. Subclass it and override `__call__`.

    Optionally declare `reward_range = (low, high)` (an attribute or a method) bounding an
    episode's total reward; `cookbook check` then verifies rollouts stay inside it.
    """

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx)")
