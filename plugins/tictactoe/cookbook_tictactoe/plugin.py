"""Registers tic-tac-toe with cookbook (entry point group `cookbook`). Light on purpose: only
names and lazy `module:Class` references here, no textarena or torch import."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl

COOKBOOK_PLUGIN_API = ">=1.0,<2"
"""The cookbook plugin API versions this plugin was built for (cookbook/registry/hookspecs.py)."""

_MODULE = "cookbook_tictactoe.tictactoe"

RECOMMENDED_RUN: dict[str, str] = {
    # Search targets (expert iteration, cookbook/rl/search.py): every cell of a root position is
    # played against the optimal player, and the policy learns the cells that did best. Plain
    # policy gradient stalled at 0.68-0.73 optimal moves per seat whatever the opponent mix.
    "env.opponent": "optimal",
    "env.seat": "alternate",
    # roots from random openings of 0-8 plies: positions the policy would not reach on its own,
    # the forced last move included (with 7, a run ended playing an occupied cell there)
    "env.opening_plies": "8",
    # first "win now, never allow a win next move", then every branch to the end of the game
    # (the policy's own greedy moves against the optimal player): the traps several moves deep
    "search.horizon": "1",
    "search.deep_horizon": "0",
    "search.deepen_at_step": "1000",
    # new roots are first walked by the policy's own moves (0-4) against the optimal player:
    # the lines it meets in play come up far more often than in random openings, where one
    # flipped move late in a line lost a quarter of the games from a seat (seed 2 at step 3500:
    # 94.5% second-seat draws vs optimal, 2 of 400 lost to random play, against 86% and 6)
    "search.walk_turns": "4",
    # a quarter of each step's roots are positions the greedy move got wrong before, until it
    # does not: late blocks that few random openings reach
    "search.revisit": "0.25",
    # ties left among moves that hold the value go to the one that wins most against random
    # play: the only way past 78% second-seat wins against it (benchmarks/tictactoe_tie_breaks.py)
    "search.probe_opponent": "random",
    # 32 new roots a step, updates of 256 drawn from the newest 1024
    "search.replay": "1024",
    "search.train_roots": "256",
    "group_size": "1",
    "groups_per_batch": "32",
    "kl_penalty_coef": "0",
    # the next step's search runs while this one trains (its weights one update older)
    "max_steps_off_policy": "1",
    "learning_rate": "2e-3",
    # decayed linearly to 0 at max_steps: the greedy moves stop flipping between evaluations;
    # on a machine too slow for max_steps in max_minutes, at max_minutes instead
    "lr_schedule": "linear",
    "lr_schedule_by_time": "true",
    # a compact reply is one digit and the end token; room for "[4]" from chat models
    "max_tokens": "6",
    # the env is in-process code that never blocks: no watchdog thread per group (35% faster)
    "env_step_timeout_s": "0",
    # enough supervised steps (random legal games) for mostly legal replies before RL starts
    "warm_start.steps": "600",
    # the decay ends at 15 minutes (by time), or at 5000 steps on a machine fast enough
    "max_steps": "5000",
    "max_minutes": "15",
    "eval_every": "500",
    "save_every": "500",
    # every reachable position against minimax, and 400 games vs random and vs optimal
    "evals": "tictactoe-exhaustive",
}
"""Run-config overrides `cookbook rl --env tictactoe` starts from (the user's own win). The
measurements behind each value: plugins/tictactoe/README.md, "Why the recommended settings"."""

RECOMMENDED_TINY: dict[str, str] = {
    # each kept target trained on one of its board's 8 turns and mirror images, drawn per
    # update: one search teaches 8 positions (side by side at step 3499, seeds 0 and 2:
    # 0.965 / 0.963 and 0.969 / 0.955 optimal moves, against 0.944 / 0.956 and 0.936 / 0.934);
    # the tiny model's compact board can be turned, a chat model's text prompt cannot
    "search.symmetries": "true",
}
"""Applied over `RECOMMENDED_RUN` when the run uses the tiny model."""


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
            recommended_tiny=dict(RECOMMENDED_TINY),
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
