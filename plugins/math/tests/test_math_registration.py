"""Registration through the `cookbook` entry points (needs `pip install -e plugins/math`)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import chz
import pytest
from cookbook_math.plugin import ARITHMETIC_RECOMMENDED

from cookbook.eval.types import EvaluatorBuilder
from cookbook.registry.catalog import Catalog
from cookbook.registry.specs import EnvSpec
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDatasetBuilder

ENVS = {"arithmetic", "gsm8k-file", "math-file"}
DATASETS = {"arithmetic-sft"}
EVALS = {"arithmetic", "gsm8k-file", "math-file"}


def test_entry_point_is_published() -> None:
    points = {ep.name: ep.value for ep in entry_points(group="cookbook")}
    assert points.get("math") == "cookbook_math.plugin"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.discover()


def test_catalog_lists_everything_and_the_plugin_is_healthy(catalog: Catalog) -> None:
    info = catalog.plugin("cookbook-env-math")
    assert info is not None and info.ok
    mine = {(s.kind, s.name) for kind in ("env", "dataset", "eval") for s in catalog.list(kind)}
    assert {("env", n) for n in ENVS} <= mine
    assert {("dataset", n) for n in DATASETS} <= mine
    assert {("eval", n) for n in EVALS} <= mine


def test_builders_load_and_have_the_right_bases(catalog: Catalog) -> None:
    for name in ENVS:
        assert issubclass(catalog.get_env(f"cookbook-env-math:{name}").load(), RLDatasetBuilder)
    for name in DATASETS:
        builder = catalog.get_dataset(f"cookbook-env-math:{name}").load()
        assert issubclass(builder, SupervisedDatasetBuilder)
    for name in EVALS:
        assert issubclass(catalog.get_eval(f"cookbook-env-math:{name}").load(), EvaluatorBuilder)
    # Every builder works with its defaults (the demo files for the file envs).
    for name in ENVS:
        chz.Blueprint(catalog.get_env(f"cookbook-env-math:{name}").load()).make()


def test_arithmetic_warm_start_and_recommended_settings(catalog: Catalog) -> None:
    spec = catalog.get_env("cookbook-env-math:arithmetic")
    assert isinstance(spec, EnvSpec)
    assert spec.warm_start_dataset == "arithmetic-sft"
    assert catalog.get_dataset(f"cookbook-env-math:{spec.warm_start_dataset}")
    assert spec.recommended == ARITHMETIC_RECOMMENDED


def test_recommended_settings_are_fields_of_the_rl_config() -> None:
    from cookbook.rl.train import Config

    config = Config.for_env("cookbook-env-math:arithmetic")
    assert config.max_tokens == int(ARITHMETIC_RECOMMENDED["max_tokens"])
    assert config.warm_start is not None
    assert config.warm_start.steps == int(ARITHMETIC_RECOMMENDED["warm_start.steps"])


def test_listing_imports_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import cookbook_math.plugin\n"
        "heavy = ['torch', 'tinker', 'sympy', 'math_verify', 'transformers', 'pyarrow']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
