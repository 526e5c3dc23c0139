"""Registration: the entry point, the hooks, lazy builder references, and a light import."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import chz
import pluggy

from cookbook.eval.types import EvaluatorBuilder
from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookspecs
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDatasetBuilder


def test_entry_point_is_published() -> None:
    """Needs `pip install -e plugins/tictactoe --no-deps` (the README's set-up does it)."""
    points = importlib.metadata.entry_points(group="cookbook")
    ours = [p for p in points if p.name == "tictactoe"]
    assert len(ours) == 1 and ours[0].value == "cookbook_tictactoe.plugin"
    assert ours[0].dist is not None and ours[0].dist.name == "cookbook-env-tictactoe"


def _registered() -> list[EnvSpec | DatasetSpec | EvalSpec]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(importlib.metadata.entry_points(group="cookbook")["tictactoe"].load())
    specs: list[EnvSpec | DatasetSpec | EvalSpec] = []
    pm.hook.register_envs(register=specs.append)
    pm.hook.register_datasets(register=specs.append)
    pm.hook.register_evals(register=specs.append)
    return specs


def test_hooks_register_the_env_dataset_and_evals() -> None:
    specs = {spec.name: spec for spec in _registered()}
    assert set(specs) == {
        "tictactoe",
        "tictactoe-demos",
        "tictactoe-vs-random",
        "tictactoe-vs-optimal",
        "tictactoe-exhaustive",
    }
    env = specs["tictactoe"]
    assert isinstance(env, EnvSpec)
    assert env.warm_start_dataset == "tictactoe-demos" and env.warm_start_dataset in specs
    assert all(name in specs for name in env.recommended["evals"].split(","))
    expected_base = {
        EnvSpec: RLDatasetBuilder,
        DatasetSpec: SupervisedDatasetBuilder,
        EvalSpec: EvaluatorBuilder,
    }
    for spec in specs.values():
        builder = spec.load()
        assert issubclass(builder, expected_base[type(spec)]) and chz.is_chz(builder)
        builder()  # every option has a default
        assert spec.summary


def test_listing_imports_nothing_heavy() -> None:
    code = (
        "import sys, importlib.metadata as m\n"
        "mod = m.entry_points(group='cookbook')['tictactoe'].load()\n"
        "from cookbook_tictactoe.tictactoe import TicTacToeEnvBuilder\n"
        "heavy = {'torch', 'tinker', 'textarena', 'transformers'}\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recommended_settings_are_fields_of_the_rl_config() -> None:
    from cookbook_tictactoe.tictactoe import TicTacToeEnvBuilder

    from cookbook.rl.train import Config

    config = Config.for_env("tictactoe")
    assert config.kl_penalty_coef == 0.0 and config.max_steps == 5000
    assert config.lr_schedule == "linear" and config.lr_schedule_by_time
    assert config.max_minutes == 15.0 and config.max_steps_off_policy == 1
    assert config.warm_start is not None and config.warm_start.steps == 600
    assert list(config.evals) == ["tictactoe-exhaustive"]
    search = config.search
    assert search is not None and (search.horizon, search.deep_horizon) == (1, 0)
    assert (search.deepen_at_step, search.replay, search.train_roots) == (1000, 1024, 256)
    assert (search.walk_turns, search.revisit, search.probe_opponent) == (4, 0.25, "random")
    assert search.symmetries
    env = config.env
    assert isinstance(env, TicTacToeEnvBuilder)
    assert (env.opponent, env.seat, env.opening_plies) == ("optimal", "alternate", 8)
    # Plain RL is one setting away (and its settings of before remain valid).
    plain = Config.for_env("tictactoe", "search=None", "group_size=8", "groups_per_batch=16")
    assert plain.search is None and plain.group_size == 8
