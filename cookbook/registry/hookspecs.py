"""The plugin contract. A plugin is a module of `@hookimpl` functions named in the entry-point
group `cookbook` of its distribution's metadata:

    [project.entry-points.cookbook]
    tictactoe = "cookbook_tictactoe.plugin"

and in that module:

    from cookbook.registry import hookimpl, EnvSpec

    @hookimpl
    def register_envs(register):
        register(EnvSpec(name="tictactoe", builder="cookbook_tictactoe.env:TicTacToeBuilder",
                         summary="Tic-tac-toe on textarena"))

Keep that module light: import nothing heavy at its top level; the `builder` strings are imported
only when someone uses the thing they name. The core's own envs, datasets and evals register
through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from cookbook.registry.specs import DatasetSpec, EnvSpec, EvalSpec

PROJECT = "cookbook"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """Register RL environments: call `register(EnvSpec(...))` once per env."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register supervised datasets: call `register(DatasetSpec(...))` once per dataset."""


@hookspec
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """Register evaluators: call `register(EvalSpec(...))` once per eval."""
