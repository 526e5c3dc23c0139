"""Registers tic-tac-toe with cookbook (entry point group `cookbook`). Light on purpose: only
names and lazy `module:Class` references here, no textarena or torch import."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl

COOKBOOK_PLUGIN_API = ">=1.0,<2"
"""The cookbook plugin API versions this plugin was built for (cookbook/registry/hookspecs.py)."""

_MODULE = "cookbook_tictactoe.tictactoe"

RECOMMENDED_RUN: dict[str, str] = {
    # in the same 15 minutes, env.opponent=random:1,optimal:1 env.seat=alternate drew more
    # against the optimal player but scored lower on every other figure of tictactoe-exhaustive
    "env.opponent": "random",
    "env.seat": "first",
    # keeps the policy near the warm start, so its groups go on differing (exploring)
    "kl_penalty_coef": "0.1",
    # with that KL term, the fastest rate that held its level once it got there
    "learning_rate": "2e-3",
    # a compact reply is one digit and the end token; room for "[4]" from chat models
    "max_tokens": "6",
    "temperature": "1.0",
    "group_size": "8",
    "groups_per_batch": "16",
    "loss_fn": "importance_sampling",
    # enough supervised steps (random legal games) for mostly legal replies before RL starts
    "warm_start.steps": "600",
    # about 7 minutes on a quiet 2-core machine; 15 minutes (warm start included) caps a busy one
    "max_steps": "800",
    "max_minutes": "15",
    "eval_every": "50",
    "save_every": "100",
    # every reachable position against minimax, and 400 games vs random and vs optimal
    "evals": "tictactoe-exhaustive",
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
    """The `tictactoe-vs-random`, `tictactoe-vs-optimal` and `tictactoe-exhaustive` evals."""
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
    register(
        EvalSpec(
            name="tictactoe-exhaustive",
            builder="cookbook_tictactoe.exhaustive:TicTacToeExhaustiveEval",
            summary="Greedy move in all 4,520 reachable positions vs minimax, per seat; games vs "
            "random and optimal",
        )
    )
