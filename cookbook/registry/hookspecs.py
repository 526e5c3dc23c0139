"""The plugin contract. A plugin is a module of `@hookimpl` functions named in the entry-point
group `cookbook` of its distribution's metadata:

    [project]
    dependencies = ["cookbook-core>=0.2,<0.3"]

    [project.entry-points.cookbook]
    tictactoe = "cookbook_tictactoe.plugin"

and in that module:

    from cookbook.registry import hookimpl, EnvSpec

    COOKBOOK_PLUGIN_API = ">=1.0,<2"   # optional: the plugin API versions it was built for

    @hookimpl
    def register_envs(register):
        register(EnvSpec(name="tictactoe", builder="cookbook_tictactoe.env:TicTacToeBuilder",
                         summary="Tic-tac-toe on textarena"))

Keep that module light: import nothing heavy at its top level; the `builder` strings are imported
only when someone uses the thing they name. The core's own envs, datasets and evals register
through these same hooks.

Plugin API version. `PLUGIN_API_VERSION` below is the version of this contract: the hooks, the
specs they register (`cookbook/registry/specs.py`) and the builder and env types those specs
name (`RLDatasetBuilder` and `cookbook/rl/types.py`, `SupervisedDatasetBuilder`,
`EvaluatorBuilder`, `BuildContext`, `PreferenceModelBuilder` and `cookbook/preference/types.py`).
It is `MAJOR.MINOR`: the minor number grows when the
contract gains something (a hook, an optional spec field), the major one when something a plugin
may rely on changes or goes. It moves independently of the core's own version, which changes
with every release. A plugin may declare the versions it was built for as a PEP 440 range in a
module-level `COOKBOOK_PLUGIN_API` string of its hook module (`">=1.0,<2"`: 1.0 or any later 1.x);
one that declares nothing is taken to work with any. A plugin whose range excludes this core's
version is shown as `incompatible` by `cookbook plugins`, with one line naming both versions,
and asking for anything it provides fails with that line (its hooks still run, so the catalog
knows its names). The declaration is read after the module is imported: a plugin whose import
itself fails on this core is `broken`. The pip-level guard is the dependency on the core's
distribution, `cookbook-core`, with a version range (as above).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from cookbook.registry.specs import DatasetSpec, EnvSpec, EvalSpec, PreferenceModelSpec

PROJECT = "cookbook"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

PLUGIN_API_VERSION = "1.1"
"""The version of the plugin contract this core provides (see the module docstring)."""

PLUGIN_API_ATTRIBUTE = "COOKBOOK_PLUGIN_API"
"""The hook-module attribute in which a plugin declares the plugin API range it was built for."""


@hookspec
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """Register RL environments: call `register(EnvSpec(...))` once per env."""


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register supervised datasets: call `register(DatasetSpec(...))` once per dataset."""


@hookspec
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """Register evaluators: call `register(EvalSpec(...))` once per eval."""


@hookspec
def register_preference_models(register: Callable[[PreferenceModelSpec], None]) -> None:
    """Register preference models (what compares two completions of a prompt, for pairwise
    envs and evals): call `register(PreferenceModelSpec(...))` once per model. The builder is a
    `PreferenceModelBuilder` (`cookbook/preference/types.py`)."""
