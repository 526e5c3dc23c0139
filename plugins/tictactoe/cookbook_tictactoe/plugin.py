"""Registers tic-tac-toe with cookbook (entry point group `cookbook`). Light on purpose: only
names and lazy `module:Class` references here, no textarena or torch import."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl

_MODULE = "cookbook_tictactoe.tictactoe"

RECOMMENDED_RUN: dict[str, str] = {
    # Against random play the policy soon wins most games and, without a KL term, its entropy
    # collapses (~0 by step 300): the rare losing lines then give no gradient and the first-seat
    # win rate stalled at ~0.86 for 10 minutes. A KL penalty against the warm-started policy
    # (close to uniform over the legal moves) keeps it exploring: 0.1 went on to ~0.97; 0.2 held
    # it near the start (~0.70 after 5 min); 0.05 needed lr 1e-3 to stay steady and was slower.
    "kl_penalty_coef": "0.1",
    # with the KL term: 3e-3 dipped to 0.82 after reaching 0.9, 1e-3 took longer to get there
    "learning_rate": "2e-3",
    # a compact-style reply is one digit and the end token; room for "[4]" from chat models
    "max_tokens": "6",
    "temperature": "1.0",
    "group_size": "8",
    "groups_per_batch": "16",
    "loss_fn": "importance_sampling",
    # 200 steps left the tiny model at chance (83% illegal games at RL start); 600 (about 12 s on
    # a quiet 2-core machine) brought legal replies to about 0.9 per move.
    "warm_start.steps": "600",
    # about 4-5 minutes on 2 CPU cores (3 steps/s once games are short), past the 90% mark
    "max_steps": "800",
    # an eval (100 games) costs about half a step and a checkpoint (2.7 MB) a third of one: every
    # 10 steps they took ~8% of the run and 250 MB of disk in 5 minutes
    "eval_every": "50",
    "save_every": "100",
    "evals": "tictactoe-vs-random",
}
"""Run-config overrides `cookbook rl --env tictactoe` starts from (the user's own win)."""


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
