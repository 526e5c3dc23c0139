"""What a plugin author meets first: a required env option, a builder without `@chz.chz`, a
mistyped key under an eval or the warm-start dataset, and an env whose name clashes with another
plugin's (its own recommended eval and warm-start dataset must still be found)."""

from __future__ import annotations

from pathlib import Path

import chz
import pytest

from cookbook.configs import check_decorated, describe_fields, make_config, undecorated_fields
from cookbook.errors import UserError
from cookbook.registry.specs import EnvSpec
from cookbook.rl.types import RLDatasetBuilder
from cookbook.runs.blueprints import rl_config


class NoDecorator(RLDatasetBuilder):
    """Forgot `@chz.chz`: chz would ignore `size`."""

    size: int = 3
    """Looks like an option, is not one."""


@chz.chz
class Decorated(RLDatasetBuilder):
    """A proper builder."""

    size: int
    """A required option."""


class NoNewFields(Decorated):
    """A subclass that adds only methods needs no decorator of its own."""

    def describe(self) -> str:
        return "no fields of its own"


def test_a_builder_without_the_decorator_is_named_with_the_fix() -> None:
    assert undecorated_fields(NoDecorator) == ["size"]
    assert undecorated_fields(Decorated) == [] and undecorated_fields(NoNewFields) == []
    with pytest.raises(UserError, match=r"declares size but its class is not decorated"):
        describe_fields(NoDecorator)
    check_decorated(NoNewFields, "fine")
    spec = EnvSpec(name="nodeco", builder=f"{__name__}:NoDecorator", distribution="dist-x")
    from cookbook.runs.blueprints import _load

    with pytest.raises(UserError, match=r"env nodeco: its builder .*:NoDecorator declares size"):
        _load(spec, RLDatasetBuilder)


def test_a_missing_env_option_is_asked_for_in_the_command_line_form() -> None:
    from cookbook.configs import Layer, build_config
    from cookbook.rl.train import Config

    layers = [Layer("env x", {"env": Decorated, "log_dir": "runs/x"})]
    with pytest.raises(UserError, match=r"missing required field env\.size; add env\.size=VALUE"):
        build_config(Config, layers, label="cookbook rl")
    assert make_config(Decorated, ["size=4"]).size == 4


def test_an_unknown_key_under_an_eval_or_dataset_lists_that_ones_keys() -> None:
    pytest.importorskip("cookbook_tictactoe")
    with pytest.raises(UserError) as raised:
        rl_config("tictactoe", ["evals.tictactoe-vs-random.num_gamez=1"])
    assert str(raised.value) == (
        "cookbook rl: unknown key 'evals.tictactoe-vs-random.num_gamez' (did you mean "
        "'evals.tictactoe-vs-random.num_games'?)"
    )
    with pytest.raises(UserError, match=r"unknown key 'env\.zzz'; valid keys: env\.opponent"):
        rl_config("tictactoe", ["env.zzz=1"])
    with pytest.raises(UserError, match=r"'warm_start\.dataset\.num_gamez' \(did you mean"):
        rl_config("tictactoe", ["warm_start.dataset.num_gamez=1"])


def test_a_clashing_env_finds_its_own_eval_and_warm_start_dataset(plugins_on_path: Path) -> None:
    """Both fixture distributions register an env, an eval and a dataset named `fixture-dup`;
    clash-a's env lists its eval (`evals=`), clash-b's names it only by an option."""
    for dist in ("cookbook-fixture-clash-a", "cookbook-fixture-clash-b"):
        module = dist.replace("cookbook-fixture-", "cbfix_").replace("-", "_") + ".plugin"
        config = rl_config(f"{dist}:fixture-dup", [])
        assert type(config.env).__module__ == module
        assert {n: type(b).__module__ for n, b in config.evals.items()} == {"fixture-dup": module}
        assert config.evals["fixture-dup"].size == 5  # type: ignore[attr-defined]
        assert config.warm_start is not None
        assert type(config.warm_start.dataset).__module__ == module
        assert config.warm_start.dataset.num_examples == 6  # type: ignore[attr-defined]
        assert config.log_dir == f"runs/rl-{dist}-fixture-dup"
        # The user's own settings still win, and a plain name of theirs is still ambiguous.
        mine = rl_config(
            f"{dist}:fixture-dup",
            ["evals.fixture-dup.size=9", "warm_start.dataset.num_examples=2"],
        )
        assert mine.evals["fixture-dup"].size == 9  # type: ignore[attr-defined]
        assert mine.warm_start is not None
        assert mine.warm_start.dataset.num_examples == 2  # type: ignore[attr-defined]
        with pytest.raises(UserError, match="registered by both"):
            rl_config(f"{dist}:fixture-dup", ["evals=fixture-dup"])
