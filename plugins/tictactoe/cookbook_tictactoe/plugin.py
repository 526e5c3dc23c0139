"""Registers tic-tac-toe with cookbook (entry point group `cookbook`). Light on purpose: only
names and lazy `module:Class` references here, no textarena or torch import."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl

COOKBOOK_PLUGIN_API = ">=1.0,<2"
"""The cookbook plugin API versions this plugin was built for (cookbook/registry/hookspecs.py)."""

_MODULE = "cookbook_tictactoe.tictactoe"

RECOMMENDED_RUN: dict[str, str] = {
    # keeps the policy near the warm start, so it goes on exploring once it wins most games
    "kl_penalty_coef": "0.1",
    # with that KL term, the fastest rate that held the win rate once it got there
    "learning_rate": "2e-3",
    # a compact reply is one digit and the end token; room for "[4]" from chat models
    "max_tokens": "6",
    "temperature": "1.0",
    "group_size": "8",
    "groups_per_batch": "16",
    "loss_fn": "importance_sampling",
    # enough supervised steps for mostly legal replies before RL starts
    "warm_start.steps": "600",
    # past the 90% win mark, about 4-5 minutes on 2 CPU cores
    "max_steps": "800",
    # evals and checkpoints every 10 steps took ~8% of the run and 250 MB of disk
    "eval_every": "50",
    "save_every": "100",
    "evals": "tictactoe-vs-random",
}
"""Run-config overrides `cookbook rl --env tictactoe` starts from (the user's own win). The
measurements behind each value: plugins/tictactoe/README.md, "Why the recommended settings"."""


@hookimpl
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """The `tictactoe` env."""
    register(
        EnvSpec(
            name="tictactoe",
            builder=f"{_MODULE}:TicTacToeEnvBuilder",
            summary="Tic-tac-toe (textarena) vs random/optimal/checkpoint opponents or self-play",
            warm_start_dataset="tictactoe-demos",
            recommended=dict(RECOMMENDED_RUN),
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """The `tictactoe-demos` dataset."""
    register(
        DatasetSpec(
            name="tictactoe-demos",
            builder=f"{_MODULE}:TicTacToeDemosBuilder",
            summary="Tic-tac-toe demonstration games with legal moves (SFT and warm start)",
        )
    )


@hookimpl
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """The `tictactoe-vs-random` and `tictactoe-vs-optimal` evals."""
    register(
        EvalSpec(
            name="tictactoe-vs-random",
            builder=f"{_MODULE}:TicTacToeVsRandomEval",
            summary="Win/draw/loss/illegal rates vs random legal play, both seats",
        )
    )
    register(
        EvalSpec(
            name="tictactoe-vs-optimal",
            builder=f"{_MODULE}:TicTacToeVsOptimalEval",
            summary="Win/draw/loss/illegal rates vs minimax play, both seats",
        )
    )
