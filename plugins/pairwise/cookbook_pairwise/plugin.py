"""Registers the pairwise env, its datasets, evals and preference models (entry point `pairwise` in
group `cookbook`). Light on purpose: names and `"module:Class"` strings only."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, PreferenceModelSpec, hookimpl

COOKBOOK_PLUGIN_API = ">=1.1,<2"
"""The plugin API versions this plugin was built for: 1.1 added `register_preference_models`
(cookbook/registry/hookspecs.py)."""

_PKG = "cookbook_pairwise"

RECOMMENDED_RUN: dict[str, str] = {
    "model_name": "tiny",
    "learning_rate": "1e-3",
    "group_size": "8",
    "groups_per_batch": "16",
    "max_tokens": "12",
    "temperature": "1.0",
    "loss_fn": "importance_sampling",
    "max_steps": "200",
    "warm_start.steps": "300",
    "warm_start.learning_rate": "3e-3",
    "warm_start.batch_size": "64",
    "eval_every": "25",
    "save_every": "50",
    "evals": "pairwise-win-rate",
}
"""Run overrides `cookbook rl --env pairwise` starts from (the user's own arguments win)."""


@hookimpl
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """The `pairwise` env."""
    register(
        EnvSpec(
            name="pairwise",
            builder=f"{_PKG}.builders:PairwiseEnvBuilder",
            summary="G replies per prompt, rewarded by pairwise wins of a preference model",
            warm_start_dataset="pairwise-warmup",
            recommended=dict(RECOMMENDED_RUN),
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """`comparisons` (train a judge) and `pairwise-warmup` (the tiny model's warm start)."""
    register(
        DatasetSpec(
            name="comparisons",
            builder=f"{_PKG}.comparisons:ComparisonsBuilder",
            summary="Prompt/chosen/rejected comparisons (JSONL or a built-in rule-labelled set) to train a judge",
        )
    )
    register(
        DatasetSpec(
            name="pairwise-warmup",
            builder=f"{_PKG}.builders:PairwiseWarmupBuilder",
            summary="Short random-letter replies to the pairwise prompts (warm start of the reply format)",
        )
    )


@hookimpl
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """`pairwise-win-rate` and `comparison-accuracy`."""
    register(
        EvalSpec(
            name="pairwise-win-rate",
            builder=f"{_PKG}.evals:PairwiseWinRateBuilder",
            summary="Win rate against a reference policy (default: the starting weights), judged by a preference model",
        )
    )
    register(
        EvalSpec(
            name="comparison-accuracy",
            builder=f"{_PKG}.evals:ComparisonAccuracyBuilder",
            summary="Held-out accuracy of a judge on comparisons (default: the evaluated model as the judge)",
        )
    )


@hookimpl
def register_preference_models(register: Callable[[PreferenceModelSpec], None]) -> None:
    """Two rules (`vowels`, `length`), any model as a judge (`judge`) and a judge trained with
    `cookbook sft --dataset comparisons` (`trained`)."""
    pm = f"{_PKG}.preference"
    register(
        PreferenceModelSpec(
            name="vowels",
            builder=f"{pm}.rules:VowelsBuilder",
            summary="Prefers the larger share of vowels (a rule: better is measurable offline)",
        )
    )
    register(
        PreferenceModelSpec(
            name="length",
            builder=f"{pm}.rules:LengthBuilder",
            summary="Prefers the length closer to a target, length:N (a rule)",
        )
    )
    register(
        PreferenceModelSpec(
            name="judge",
            builder=f"{pm}.judge:JudgeBuilder",
            summary="Any model asked 'A, B or tie?' in both orders, judge:MODEL",
        )
    )
    register(
        PreferenceModelSpec(
            name="trained",
            builder=f"{pm}.judge:TrainedBuilder",
            summary="A judge trained with cookbook sft --dataset comparisons, trained:RUN_DIR",
        )
    )
