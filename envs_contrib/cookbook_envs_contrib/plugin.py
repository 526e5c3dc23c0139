"""Registers the contrib envs, their warm-start datasets and their evals (entry point `contrib`
in group `cookbook`). Light on purpose: only names and lazy `module:Class` references here, no
textarena or torch import.

The recommended run settings are keyed by the fields of `cookbook.rl.train.Config`. They start
from tic-tac-toe's measured recipe and are not tuned per env: what short runs with them measured
is in envs_contrib/README.md ("Learning curves (measured)").
"""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl

COOKBOOK_PLUGIN_API = ">=1.0,<2"
"""The cookbook plugin API versions this plugin was built for (cookbook/registry/hookspecs.py)."""

_GAMES = "cookbook_envs_contrib.textarena_envs"
_GUESS = "cookbook_envs_contrib.guess_number"
_TOOL = "cookbook_envs_contrib.tool_use"

_TWO_PLAYER_RUN: dict[str, str] = {
    "learning_rate": "2e-3",
    "kl_penalty_coef": "0.1",
    "temperature": "1.0",
    "group_size": "8",
    "groups_per_batch": "16",
    "loss_fn": "importance_sampling",
    "warm_start.steps": "600",
    "eval_every": "50",
    "save_every": "100",
}
"""What the two-player games share (tic-tac-toe's measured recipe as the starting point)."""

RECOMMENDED: dict[str, dict[str, str]] = {
    "textarena": {**_TWO_PLAYER_RUN, "max_tokens": "8", "max_steps": "400", "evals": ""},
    "connect-four": {
        **_TWO_PLAYER_RUN,
        "max_tokens": "8",
        "max_steps": "400",
        "evals": "connect-four-vs-random",
    },
    "nim": {**_TWO_PLAYER_RUN, "max_tokens": "8", "max_steps": "400", "evals": "nim-vs-random"},
    "kuhn-poker": {
        **_TWO_PLAYER_RUN,
        "max_tokens": "4",
        "max_steps": "400",
        "evals": "kuhn-poker-vs-random",
    },
    "guess-number": {
        "learning_rate": "1e-3",
        "temperature": "1.0",
        "group_size": "8",
        "groups_per_batch": "16",
        "max_tokens": "6",
        "loss_fn": "importance_sampling",
        "warm_start.steps": "400",
        "max_steps": "400",
        "eval_every": "50",
        "save_every": "100",
    },
    "calculator": {
        "learning_rate": "1e-3",
        "temperature": "1.0",
        "group_size": "8",
        "groups_per_batch": "16",
        "max_tokens": "24",
        "loss_fn": "importance_sampling",
        "warm_start.steps": "400",
        "max_steps": "400",
        "eval_every": "50",
        "save_every": "100",
    },
}
"""Run-config overrides per env (the user's own settings win)."""


@hookimpl
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """`textarena` (any game by id), `connect-four`, `nim`, `kuhn-poker`, `guess-number`,
    `calculator`."""
    envs = (
        (
            "textarena",
            f"{_GAMES}:TextarenaEnvBuilder",
            "Any textarena two-player game with a game module, by id (env.game_id=KuhnPoker-v0)",
            "textarena-demos",
        ),
        (
            "connect-four",
            f"{_GAMES}:ConnectFourEnvBuilder",
            "Connect Four (textarena) vs random/checkpoint opponents or self-play",
            "connect-four-demos",
        ),
        (
            "nim",
            f"{_GAMES}:NimEnvBuilder",
            "Nim (textarena, piles 3 4 5) vs random/optimal/checkpoint opponents or self-play",
            "nim-demos",
        ),
        (
            "kuhn-poker",
            f"{_GAMES}:KuhnPokerEnvBuilder",
            "Kuhn poker (textarena, hidden cards, chips as reward) vs random/optimal/self-play",
            "kuhn-poker-demos",
        ),
        (
            "guess-number",
            f"{_GUESS}:GuessNumberEnvBuilder",
            "Guess a number in a few guesses from higher/lower feedback (multi-turn)",
            "guess-number-demos",
        ),
        (
            "calculator",
            f"{_TOOL}:CalculatorEnvBuilder",
            "Arithmetic with a calculator tool: call it, read the result, answer (tool use)",
            "calculator-demos",
        ),
    )
    for name, builder, summary, demos in envs:
        register(
            EnvSpec(
                name=name,
                builder=builder,
                summary=summary,
                warm_start_dataset=demos,
                recommended=dict(RECOMMENDED[name]),
            )
        )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """The warm-start datasets, one per env."""
    datasets = (
        ("textarena-demos", f"{_GAMES}:TextarenaDemosBuilder", "A textarena game by id"),
        ("connect-four-demos", f"{_GAMES}:ConnectFourDemosBuilder", "Connect Four"),
        ("nim-demos", f"{_GAMES}:NimDemosBuilder", "Nim"),
        ("kuhn-poker-demos", f"{_GAMES}:KuhnPokerDemosBuilder", "Kuhn poker"),
    )
    for name, builder, game in datasets:
        register(
            DatasetSpec(
                name=name,
                builder=builder,
                summary=f"{game}: demonstration games of random legal moves (warm start, SFT)",
            )
        )
    register(
        DatasetSpec(
            name="guess-number-demos",
            builder=f"{_GUESS}:GuessNumberDemosBuilder",
            summary="Guess-the-number games guessing anywhere in the open range (warm start)",
        )
    )
    register(
        DatasetSpec(
            name="calculator-demos",
            builder=f"{_TOOL}:CalculatorDemosBuilder",
            summary="Calculator episodes: direct answers and calls on parts of the problem",
        )
    )


@hookimpl
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """Win rates against scripted players for the games; solved rate and accuracy for the
    single-player envs."""
    evals = (
        ("textarena-vs-random", f"{_GAMES}:TextarenaVsRandomEval", "A textarena game by id"),
        ("textarena-vs-optimal", f"{_GAMES}:TextarenaVsOptimalEval", "A game by id vs its solver"),
        ("connect-four-vs-random", f"{_GAMES}:ConnectFourVsRandomEval", "Connect Four"),
        ("nim-vs-random", f"{_GAMES}:NimVsRandomEval", "Nim"),
        ("nim-vs-optimal", f"{_GAMES}:NimVsOptimalEval", "Nim against nim-sum play"),
        ("kuhn-poker-vs-random", f"{_GAMES}:KuhnPokerVsRandomEval", "Kuhn poker, chips"),
        ("kuhn-poker-vs-optimal", f"{_GAMES}:KuhnPokerVsOptimalEval", "Kuhn poker vs Nash"),
    )
    for name, builder, what in evals:
        register(
            EvalSpec(
                name=name,
                builder=builder,
                summary=f"{what}: win/draw/loss/illegal rates over seeded games, both seats",
            )
        )
    register(
        EvalSpec(
            name="guess-number",
            builder=f"{_GUESS}:GuessNumberEval",
            summary="Solved rate and guesses over fixed numbers (greedy)",
        )
    )
    register(
        EvalSpec(
            name="calculator",
            builder=f"{_TOOL}:CalculatorEval",
            summary="Accuracy and calculator use on fixed test problems (greedy)",
        )
    )
