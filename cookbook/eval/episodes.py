"""Evals that play an env: roll out groups of envs with a sampling client and average the metrics.

An eval of "play this env N times" is a builder that says which groups to play:

    @chz.chz
    class CoinEval(EvaluatorBuilder):
        num_games: int = 100
        "Games to play."

        def __call__(self, ctx: BuildContext) -> Evaluator:
            return EpisodeEvaluator.from_env(CoinEnvBuilder(), ctx, num_groups=self.num_games)

`from_env` takes the groups from the env's test split (or its train split, `split="train"`),
built with `group_size=1` unless told otherwise. An eval with groups of its own making passes
them straight in: `EpisodeEvaluator(groups_P, max_tokens=4)`. Either way every group is rolled
out concurrently by the RL runner's own code (`cookbook.rl.rollouts`), so a game scored in
`compute_group_rewards` is scored exactly as in training, and a backend that batches concurrent
requests serves the groups together.

The metrics are those of the RL loop's lines (`cookbook.rl.metrics.group_metrics`):

    reward/mean, reward/std, reward/min, reward/max   total reward per episode
    env/<key>                                         each env metric: step metrics averaged over
                                                      turns, group metrics over episodes
    episode/turns, episode/action_tokens              mean per episode
    tag/<tag>/reward/mean, tag/<tag>/env/<key>        per logging tag of the groups
    groups, lost_groups                               groups finished, and lost to env errors

A per-episode rate (wins, solved) therefore comes from the metrics `compute_group_rewards`
returns, not from step metrics (those average over turns). A group whose env raises or times
out is counted in `lost_groups` and left out of the averages; when every group is lost the eval
raises with the first error. For other aggregates (pass@k, per-seat rates), call
`play_episodes` and read the trajectories of `EpisodeResults.groups_P`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from cookbook.errors import UserError
from cookbook.eval.types import Evaluator
from cookbook.rl.metrics import group_metrics
from cookbook.rl.rollouts import SamplingPolicy, TokenPolicy, do_batch_rollout, mix_seed
from cookbook.rl.types import EnvGroupBuilder, RLDatasetBuilder, TrajectoryGroup

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext

DEFAULT_STEP_TIMEOUT_S = 60.0
"""An env call running longer loses its group (as the RL loop's `env_step_timeout_s`)."""


@dataclass
class EpisodeResults:
    """The groups `play_episodes` finished, and what became of the others."""

    groups_P: list[TrajectoryGroup]
    """Finished groups, in the order they were given (lost ones left out)."""
    group_indices_P: list[int]
    """The index in the given list of each finished group."""
    num_groups: int
    """Groups given, finished or not."""
    error_messages: list[str] = field(default_factory=list)
    """One line per lost group (`group 3: RuntimeError: ...`)."""

    @property
    def lost(self) -> int:
        """Groups lost to an env error or timeout."""
        return self.num_groups - len(self.groups_P)

    @property
    def metrics(self) -> dict[str, float]:
        """The averages of the module docstring, over the finished groups."""
        metrics = group_metrics(self.groups_P)
        metrics["groups"] = float(len(self.groups_P))
        metrics["lost_groups"] = float(self.lost)
        return metrics


async def play_episodes(
    groups_P: Sequence[EnvGroupBuilder],
    policy: TokenPolicy,
    *,
    seed: int = 0,
    step_timeout_s: float | None = DEFAULT_STEP_TIMEOUT_S,
) -> EpisodeResults:
    """Roll out every group of `groups_P` concurrently with `policy` (a `SamplingPolicy` over a
    sampling client, or any `cookbook.rl.rollouts.TokenPolicy`). Group p's sampling seeds derive
    from `(seed, p)`, so the same groups and weights replay the same episodes. A group that fails
    is counted in the results, never raised."""
    batch = await do_batch_rollout(
        groups_P, policy, seed=seed, sampler_step=0, step_timeout_s=step_timeout_s
    )
    return EpisodeResults(
        groups_P=batch.groups_P,
        group_indices_P=batch.group_indices_P,
        num_groups=batch.num_groups,
        error_messages=batch.error_messages,
    )


class EpisodeEvaluator(Evaluator):
    """Plays fixed groups of envs with the sampling client under evaluation and returns the
    averaged metrics (see the module docstring). The same groups and seeds every time, so two
    evaluations differ only through the weights."""

    def __init__(
        self,
        groups_P: Sequence[EnvGroupBuilder],
        *,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int = 0,
        step_timeout_s: float | None = DEFAULT_STEP_TIMEOUT_S,
    ) -> None:
        """`max_tokens`: longest reply per turn. `temperature`: 0 plays the policy's most likely
        reply (greedy), 1 samples as RL does. `seed`: the sampling seeds (with temperature > 0)."""
        if not groups_P:
            raise ValueError("EpisodeEvaluator needs at least one group to play")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.groups_P = list(groups_P)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.step_timeout_s = step_timeout_s

    @classmethod
    def from_env(
        cls,
        env: RLDatasetBuilder,
        ctx: BuildContext,
        *,
        num_groups: int,
        split: Literal["test", "train"] = "test",
        group_size: int = 1,
        max_tokens: int = 16,
        temperature: float = 0.0,
        step_timeout_s: float | None = DEFAULT_STEP_TIMEOUT_S,
    ) -> EpisodeEvaluator:
        """The evaluator that plays the first `num_groups` groups of `env`'s `split`, built for
        `ctx` with `group_size` envs per group (a two-seat self-play game needs 2). Fewer groups
        are played when the split has fewer. Raises `UserError` when the split is missing or
        empty."""
        if num_groups < 1:
            raise UserError(f"num_groups must be at least 1, got {num_groups}")
        build_ctx = replace(ctx, group_size=group_size, groups_per_batch=min(num_groups, 64))
        train, test = env(build_ctx)
        dataset = test if split == "test" else train
        what = f"env {type(env).__name__}"
        if dataset is None:
            raise UserError(
                f"{what} has no test split to evaluate on; use split='train' (or set the env's "
                "option that makes a test set)"
            )
        groups_P: list[EnvGroupBuilder] = []
        for index in range(len(dataset)):
            groups_P.extend(dataset.get_batch(index)[: num_groups - len(groups_P)])
            if len(groups_P) >= num_groups:
                break
        if not groups_P:
            raise UserError(f"{what}: its {split} split has no groups to play")
        return cls(
            groups_P,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=mix_seed(ctx.seed, 0xE7A1),
            step_timeout_s=step_timeout_s,
        )

    async def play(self, sampling_client: SamplingClient) -> EpisodeResults:
        """Play the groups; the episodes themselves, for aggregates of your own."""
        policy = SamplingPolicy(sampling_client, self.max_tokens, self.temperature)
        return await play_episodes(
            self.groups_P, policy, seed=self.seed, step_timeout_s=self.step_timeout_s
        )

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Play the groups and average their metrics; raises when every group was lost."""
        results = await self.play(sampling_client)
        if not results.groups_P:
            raise RuntimeError(
                f"every one of the {results.num_groups} groups failed; first: "
                f"{results.error_messages[0]}"
            )
        return results.metrics
