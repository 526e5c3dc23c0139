"""The `pairwise` env: G single-turn completions of one prompt, rewarded by a tournament.

Each env of a group answers the group's prompt once. `PairwiseGroupBuilder.compute_group_rewards`
then has the preference model judge pairs of the G replies concurrently (every pair for small G, a
sampled round robin for large G: `cookbook_pairwise.tournament`) and gives each reply the mean of
`win - loss` over its comparisons (ties count half, so 0). A reply that did not end cleanly, is
empty or holds unprintable characters also gets `-format_penalty` as its step reward, kept apart
from the comparisons.

Metrics (`env/...` per step): `win_rate` (share of comparisons won, ties half), `tie_rate`,
`judge_failure_rate` (comparisons the judge failed: error, time-out, unparseable reply),
`order_agreement` (two-order judges: both orders picked the same winner), `format_ok`; for a
programmatic preference model its `score` (the hidden property itself), and with a `monitor`
model `monitor_agreement` (the share of the pairs the monitor decides where the judge picked the
same winner) and, for a programmatic monitor, `monitor_score`.
Within a group the win rates average to one half by construction; `score` and the
`pairwise-win-rate` eval show progress.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cookbook.renderers.base import Message, Renderer
from cookbook.rl.rollouts import mix_seed
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
from cookbook_pairwise.tournament import (
    PairResult,
    agreement,
    judge_pairs,
    schedule_pairs,
    standings,
)

if TYPE_CHECKING:
    from cookbook.preference.types import PreferenceModel

TAG = "pairwise"


@dataclass(frozen=True)
class PairwiseSettings:
    """What every group of a run shares (plain data: group builders are pickled)."""

    preference_model: str
    """`NAME[:ARG]` of the rewarding preference model."""
    monitor: str | None = None
    """`NAME[:ARG]` of a preference model judged alongside, for metrics only."""
    comparisons_per_completion: int = 7
    """Comparisons each reply takes part in (every pair when G - 1 is not more)."""
    format_penalty: float = 0.5
    """Subtracted from a malformed reply's reward."""
    judge_timeout_s: float = 20.0
    """Time limit of one comparison (0: none)."""


def reply_format_ok(text: str, ended: bool) -> bool:
    """A well-formed reply: it ended with the stop token, is not blank, and is printable."""
    return ended and bool(text.strip()) and text.isprintable()


class PairwiseEnv(Env):
    """One reply to one prompt; the episode ends after it. The reply is kept for the tournament."""

    def __init__(self, messages: list[Message], renderer: Renderer, format_penalty: float) -> None:
        self.messages = messages
        self.renderer = renderer
        self.format_penalty = format_penalty
        self.reply: str | None = None
        """The reply text, once the policy has answered."""

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The prompt as a chat turn; the reply ends at the renderer's stop tokens."""
        return (
            self.renderer.build_generation_prompt(self.messages),
            self.renderer.get_stop_sequences(),
        )

    async def step(self, action: Action) -> StepResult:
        """Keep the reply; penalise a malformed one."""
        from tinker import types as tinker_types

        message, ended = self.renderer.parse_response(action)
        self.reply = message["content"]
        ok = reply_format_ok(self.reply, ended)
        return StepResult(
            reward=0.0 if ok else -self.format_penalty,
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=self.renderer.get_stop_sequences(),
            metrics={"format_ok": float(ok)},
            logs={"prompt": self.messages[-1]["content"], "reply": self.reply},
        )


@dataclass
class PairwiseGroupBuilder(EnvGroupBuilder):
    """G replies to one prompt, judged against each other (plain data, picklable)."""

    prompt: str
    """The prompt text the preference model sees."""
    messages: list[Message]
    """The conversation the policy answers."""
    renderer: Renderer
    settings: PairwiseSettings
    group_size: int
    seed: int
    """Seeds the round-robin schedule."""
    tags: list[str] = field(default_factory=lambda: [TAG])

    async def make_envs(self) -> Sequence[Env]:
        """`group_size` envs for the same prompt."""
        return [
            PairwiseEnv(list(self.messages), self.renderer, self.settings.format_penalty)
            for _ in range(self.group_size)
        ]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        """The tournament's rewards and metrics, one per reply."""
        import asyncio

        from cookbook_pairwise.preference.resolve import preference_model

        texts_G = [_reply(env) for env in envs_G]
        s = self.settings
        pairs = schedule_pairs(
            len(texts_G), s.comparisons_per_completion, random.Random(f"pairs:{self.seed}")
        )
        model = preference_model(s.preference_model)
        monitor = preference_model(s.monitor) if s.monitor else None
        timeout = s.judge_timeout_s if s.judge_timeout_s > 0 else None
        judged = judge_pairs(model, self.prompt, texts_G, pairs, timeout)
        if monitor is None:
            results, watched = await judged, None
        else:
            results, watched = await asyncio.gather(
                judged, judge_pairs(monitor, self.prompt, texts_G, pairs, timeout)
            )
        _warn_failures(results)
        return tournament_rewards(self.prompt, texts_G, results, model, watched, monitor)

    def logging_tags(self) -> list[str]:
        """`pairwise`."""
        return list(self.tags)


def _reply(env: Env) -> str:
    if not isinstance(env, PairwiseEnv) or env.reply is None:
        raise RuntimeError("compute_group_rewards got an env that never replied")
    return env.reply


_warned: set[str] = set()


def _warn_failures(results: Sequence[PairResult]) -> None:
    """One line on stderr the first time each kind of judge failure shows up in a process (the
    counts are in the metrics; the message says what to fix)."""
    for r in results:
        if r.failure is not None and r.failure not in _warned:
            _warned.add(r.failure)
            print(
                f"warning: pairwise: a comparison failed ({r.failure}: {r.error}); such pairs are "
                "left out of the rewards and counted in env/judge_failure_rate",
                file=sys.stderr,
            )


def tournament_rewards(
    prompt: str,
    texts_G: Sequence[str],
    results: Sequence[PairResult],
    model: PreferenceModel,
    watched: Sequence[PairResult] | None = None,
    monitor: PreferenceModel | None = None,
) -> list[tuple[float, Metrics]]:
    """`(reward, metrics)` per reply from the judged pairs (see the module docstring)."""
    from cookbook_pairwise.preference.rules import ScoreRule

    table = standings(len(texts_G), results)
    agree = agreement(results, watched) if watched is not None else None
    out: list[tuple[float, Metrics]] = []
    for g, standing in enumerate(table):
        total = standing.judged + standing.failed
        metrics: Metrics = {"comparisons": float(total)}
        if total:
            metrics["judge_failure_rate"] = standing.failed / total
        if standing.judged:
            metrics["win_rate"] = standing.share / standing.judged
            metrics["tie_rate"] = standing.ties / standing.judged
        if standing.two_order:
            metrics["order_agreement"] = standing.agreed / standing.two_order
        if isinstance(model, ScoreRule):
            metrics["score"] = model.score(prompt, texts_G[g])
        if agree is not None:
            mine = [
                a
                for r, a in zip(results, agree, strict=True)
                if g in (r.first, r.second) and a is not None
            ]
            if mine:
                metrics["monitor_agreement"] = sum(mine) / len(mine)
        if isinstance(monitor, ScoreRule):
            metrics["monitor_score"] = monitor.score(prompt, texts_G[g])
        out.append((standing.reward, metrics))
    return out


class PromptsDataset(RLDataset):
    """Batch `i`: `groups_per_batch` prompts drawn with a RNG seeded by (seed, i), one group each
    (`fixed=True`: the prompts in order, for a test split)."""

    def __init__(
        self,
        prompts: list[str],
        *,
        renderer: Renderer,
        is_tiny: bool,
        settings: PairwiseSettings,
        seed: int,
        groups_per_batch: int,
        group_size: int,
        num_batches: int,
        fixed: bool = False,
    ) -> None:
        self.prompts = prompts
        self.renderer = renderer
        self.is_tiny = is_tiny
        self.settings = settings
        self.seed = seed
        self.groups_per_batch = max(1, groups_per_batch)
        self.group_size = group_size
        self.num_batches = num_batches
        self.fixed = fixed

    def prompts_of(self, index: int) -> list[str]:
        """The prompts of batch `index`."""
        if self.fixed:
            start = index * self.groups_per_batch
            return self.prompts[start : start + self.groups_per_batch]
        rng = random.Random(f"pairwise-batch:{self.seed}:{index}")
        return [rng.choice(self.prompts) for _ in range(self.groups_per_batch)]

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """One group per prompt."""
        from cookbook_pairwise.prompts import prompt_messages

        return [
            PairwiseGroupBuilder(
                prompt=prompt,
                messages=prompt_messages(prompt, self.is_tiny),
                renderer=self.renderer,
                settings=self.settings,
                group_size=self.group_size,
                seed=mix_seed(self.seed, index, p),
            )
            for p, prompt in enumerate(self.prompts_of(index))
        ]

    def __len__(self) -> int:
        if self.fixed:
            return -(-len(self.prompts) // self.groups_per_batch)
        return self.num_batches
