"""Preference models as a registry kind: registered through `register_preference_models` (real
pluggy, plugins built in the test), looked up, listed, and named in errors like the other kinds."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

from cookbook.errors import UserError
from cookbook.registry import EnvSpec, PreferenceModelSpec, hookimpl
from cookbook.registry.catalog import Catalog
from cookbook.registry.discovery import PluginSource, load_source
from cookbook.registry.errors import PLURALS, a_kind, label


def _catalog(**hooks: Callable[..., None]) -> Catalog:
    module = types.ModuleType("cbfix_inline_preference")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return Catalog([load_source(PluginSource("inline-judges", "0.1", [("ep", lambda: module)]))])


def _register_judges(register: Callable[[PreferenceModelSpec], None]) -> None:
    register(PreferenceModelSpec(name="shorter", builder="pkg.rules:Shorter", summary="a rule"))
    register(PreferenceModelSpec(name="oracle", builder="pkg.judges:Oracle"))


def _register_env(register: Callable[[EnvSpec], None]) -> None:
    register(EnvSpec(name="duel", builder="pkg.env:Duel"))


def test_preference_models_register_and_list_like_any_kind() -> None:
    catalog = _catalog(register_preference_models=_register_judges, register_envs=_register_env)
    (info,) = catalog.plugins()
    assert info.status == "ok"
    assert info.provides == {"env": ["duel"], "preference_model": ["shorter", "oracle"]}
    assert info.to_json()["provides"] == {
        "envs": ["duel"],
        "datasets": [],
        "evals": [],
        "preference-models": ["shorter", "oracle"],
    }
    spec = catalog.get_preference_model("shorter")
    assert (spec.kind, spec.builder, spec.distribution) == (
        "preference_model",
        "pkg.rules:Shorter",
        "inline-judges",
    )
    assert [s.name for s in catalog.list("preference_model")] == ["oracle", "shorter"]
    assert catalog.get_preference_model("inline-judges:oracle").name == "oracle"


def test_errors_name_the_kind_in_words() -> None:
    catalog = _catalog(register_preference_models=_register_judges, register_envs=_register_env)
    with pytest.raises(UserError, match=r"unknown preference model 'shortr' \(did you mean"):
        catalog.get_preference_model("shortr")
    with pytest.raises(UserError, match=r"'duel' is an env, not a preference model"):
        catalog.get_preference_model("duel")
    with pytest.raises(UserError, match=r"'oracle' is a preference model, not an env"):
        catalog.get_env("oracle")
    with pytest.raises(UserError, match=r"inline-judges has no preference model 'x'"):
        catalog.get_preference_model("inline-judges:x")
    assert (label("preference_model"), a_kind("preference_model")) == (
        "preference model",
        "a preference model",
    )
    assert PLURALS["preference_model"] == "preference-models"


def test_a_wrong_spec_marks_the_plugin_broken() -> None:
    def register(register: Callable[[EnvSpec], None]) -> None:
        register(EnvSpec(name="oops", builder="pkg.mod:Oops"))

    catalog = _catalog(register_preference_models=register)
    (info,) = catalog.plugins()
    assert info.status == "broken"
    assert info.error is not None
    assert "got EnvSpec, expected PreferenceModelSpec" in info.error


def test_spec_strings_give_the_builders_settings() -> None:
    import chz

    from cookbook.preference.spec import ParsedSpec, builder_settings, parse_spec
    from cookbook.preference.types import PreferenceModelBuilder

    @chz.chz
    class Judge(PreferenceModelBuilder):
        arg_field = "path"
        path: str = "x"
        mode: str = "a"

    @chz.chz
    class Rule(PreferenceModelBuilder):
        pass

    parsed = parse_spec("Judge:runs/a,b:c,mode=s")
    assert parsed == ParsedSpec("judge", "runs/a,b:c", ("mode=s",))
    assert builder_settings(Judge, parsed, "Judge:runs/a,b:c,mode=s") == [
        "path=runs/a,b:c",
        "mode=s",
    ]
    assert parse_spec("inline-judges:oracle:r", frozenset({"inline-judges"})).name == (
        "inline-judges:oracle"
    )
    with pytest.raises(UserError, match="rule takes no argument; write rule, not rule:3"):
        builder_settings(Rule, parse_spec("rule:3"), "rule:3")
