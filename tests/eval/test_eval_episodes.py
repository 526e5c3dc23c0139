"""`cookbook.eval.episodes`: an eval that plays an env, on the multi-turn fixture env (a group
reward for the longest reply) with the real tiny model and with the scripted policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import chz
import pytest

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.eval.episodes import EpisodeEvaluator, play_episodes
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.testing import ScriptedPolicy, assert_eval_contract, tiny_context


def _tiny_sampler() -> object:
    from cookbook.backends import make_service_client

    return make_service_client("local").create_sampling_client(base_model="tiny")


def test_an_env_played_by_the_tiny_model_gives_the_loop_metrics(rl_plugin: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    ctx = tiny_context(seed=1)
    evaluator = EpisodeEvaluator.from_env(
        LettersBuilder(turns=2), ctx, num_groups=3, group_size=4, max_tokens=3
    )
    assert len(evaluator.groups_P) == 3
    client = _tiny_sampler()
    results = asyncio.run(evaluator.play(client))  # type: ignore[arg-type]
    assert results.lost == 0 and len(results.groups_P) == 3
    totals = [r for g in results.groups_P for r in g.get_total_rewards()]
    metrics = asyncio.run(evaluator(client))  # type: ignore[arg-type]
    assert metrics["groups"] == 3 and metrics["lost_groups"] == 0
    assert metrics["reward/mean"] == pytest.approx(sum(totals) / len(totals))
    assert metrics["episode/turns"] == 2
    # A group metric averages over episodes: one longest reply in each group of 4.
    assert metrics["env/longest"] == 0.25
    assert 0 <= metrics["env/ascii"] <= 1 and "tag/letters/env/ascii" in metrics
    # Greedy (the default) on fixed weights: the same games again.
    assert asyncio.run(evaluator(client)) == metrics  # type: ignore[arg-type]


def test_lost_groups_are_counted_and_all_lost_raises(rl_plugin: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    ctx = tiny_context()
    dataset, _ = LettersBuilder(fail_groups=1)(ctx)
    policy = ScriptedPolicy(ctx.tokenizer)
    results = asyncio.run(play_episodes(dataset.get_batch(0), policy, seed=3))
    assert results.num_groups == ctx.groups_per_batch and results.lost == 1
    assert results.group_indices_P == [1, 2, 3]
    assert "fixture env failure" in results.error_messages[0]
    assert results.metrics["lost_groups"] == 1 and results.metrics["groups"] == 3

    failing = EpisodeEvaluator.from_env(LettersBuilder(fail_groups=8), ctx, num_groups=2)
    with pytest.raises(RuntimeError, match="every one of the 2 groups failed; first: group 0"):
        asyncio.run(failing(_tiny_sampler()))  # type: ignore[arg-type]


def test_splits_and_bad_arguments(rl_plugin: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    ctx = tiny_context()
    with pytest.raises(UserError, match="no test split"):
        EpisodeEvaluator.from_env(LettersBuilder(test_batches=0), ctx, num_groups=2)
    train = EpisodeEvaluator.from_env(
        LettersBuilder(test_batches=0), ctx, num_groups=70, split="train"
    )
    assert len(train.groups_P) == 70  # taken from as many batches as it needs
    with pytest.raises(UserError, match="num_groups must be at least 1"):
        EpisodeEvaluator.from_env(LettersBuilder(), ctx, num_groups=0)
    with pytest.raises(ValueError, match="at least one group"):
        EpisodeEvaluator([])


@chz.chz
class LettersEval(EvaluatorBuilder):
    """The few lines an eval of "play this env N times" takes."""

    num_games: int = 50
    """Groups to play."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        from cookbook_rl_fixture.envs import LettersBuilder

        return EpisodeEvaluator.from_env(LettersBuilder(), ctx, num_groups=self.num_games)


def test_an_eval_written_with_the_helper_keeps_the_contract(rl_plugin: Path) -> None:
    report = assert_eval_contract(LettersEval, check_imports=False)
    assert "num_games=2" in report.result("config").detail
    assert "groups=2" in report.result("metrics").detail
