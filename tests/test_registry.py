"""The catalog against real installed fixture distributions (tests/fixtures/, see conftest)."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import pytest

from cookbook.errors import UserError
from cookbook.registry import DatasetSpec, EnvSpec, hookimpl
from cookbook.registry.catalog import Catalog, load_catalog
from cookbook.registry.discovery import PluginSource, load_source
from cookbook.registry.errors import did_you_mean


@pytest.fixture
def catalog(plugins_on_path: Path) -> Catalog:
    return load_catalog()


def test_plugins_report_each_distribution(catalog: Catalog) -> None:
    infos = {info.distribution: info for info in catalog.plugins()}
    good = infos["cookbook-fixture-good"]
    assert (good.version, good.status, good.error) == ("1.2.3", "ok", None)
    assert good.provides == {
        "env": ["fixture-coin", "fixture-needs-missing"],
        "dataset": ["fixture-arithmetic"],
        "eval": ["fixture-exact"],
    }
    broken = infos["cookbook-fixture-broken"]
    assert broken.status == "broken"
    assert broken.error == "RuntimeError: fixture plugin is broken on purpose"
    badhook = infos["cookbook-fixture-badhook"]
    assert badhook.status == "broken"
    assert badhook.error == "ValueError: fixture hook fails on purpose"
    assert badhook.provides == {"env": ["fixture-halfway"]}
    assert infos["cookbook-core"].status == "ok"  # the core registers through the same door


def test_get_returns_spec_with_its_distribution(catalog: Catalog) -> None:
    spec = catalog.get_env("fixture-coin")
    assert isinstance(spec, EnvSpec)
    assert spec.distribution == "cookbook-fixture-good"
    assert spec.warm_start_dataset == "fixture-arithmetic"
    assert spec.recommended == {"max_tokens": "2"}
    assert spec.load().__name__ == "CoinEnvBuilder"
    assert catalog.get_dataset("fixture-arithmetic").kind == "dataset"
    assert catalog.get_eval("fixture-exact").kind == "eval"


def test_wrong_kind_is_named(catalog: Catalog) -> None:
    with pytest.raises(UserError, match=r"'fixture-arithmetic' is a dataset, not an env"):
        catalog.get("env", "fixture-arithmetic")
    with pytest.raises(UserError, match=r"'fixture-coin' is an env, not an eval"):
        catalog.get("eval", "fixture-coin")


def test_typo_gets_did_you_mean(catalog: Catalog) -> None:
    with pytest.raises(UserError, match=r"unknown env 'fixture-con' \(did you mean 'fixture-coin'"):
        catalog.get("env", "fixture-con")


def test_clash_names_both_and_qualified_name_resolves(catalog: Catalog) -> None:
    with pytest.raises(UserError) as err:
        catalog.get("env", "fixture-dup")
    message = str(err.value)
    assert "cookbook-fixture-clash-a" in message and "cookbook-fixture-clash-b" in message
    assert "'cookbook-fixture-clash-a:fixture-dup'" in message
    spec = catalog.get("env", "cookbook-fixture-clash-b:fixture-dup")
    assert spec.distribution == "cookbook-fixture-clash-b"
    # any spelling of the distribution name works
    assert catalog.get("env", "Cookbook_Fixture_Clash_A:fixture-dup").builder.startswith(
        "cbfix_clash_a"
    )
    listed = [s for s in catalog.list("env") if s.name == "fixture-dup"]
    assert len(listed) == 2 and all(catalog.is_clash(s) for s in listed)


def test_qualified_name_errors(catalog: Catalog) -> None:
    with pytest.raises(
        UserError, match=r"no plugin distribution 'cookbook-fixture-god'.*'cookbook-fixture-good'"
    ):
        catalog.get("env", "cookbook-fixture-god:fixture-coin")
    with pytest.raises(UserError, match=r"cookbook-fixture-good has no env 'fixture-dup'"):
        catalog.get("env", "cookbook-fixture-good:fixture-dup")


def test_broken_plugin_is_fatal_only_for_what_it_provides(catalog: Catalog) -> None:
    # the hook failed after registering this env: asking for it shows the plugin's error
    with pytest.raises(
        UserError, match=r"fixture-halfway' comes from cookbook-fixture-badhook.*ValueError"
    ) as err:
        catalog.get("env", "fixture-halfway")
    assert isinstance(err.value.__cause__, ValueError)  # --debug shows the plugin's traceback
    # the import failed, so what it provides is unknown; its entry-point name gives it away
    with pytest.raises(
        UserError, match=r"cookbook-fixture-broken, which failed to load .*RuntimeError"
    ):
        catalog.get("env", "fixture-broken")
    # everything else still works
    assert catalog.get_env("fixture-coin").name == "fixture-coin"


def test_unknown_name_mentions_broken_plugins(catalog: Catalog) -> None:
    with pytest.raises(
        UserError, match=r"unknown eval 'nothing-like-it'.*broken plugins.*cookbook-fixture-broken"
    ):
        catalog.get("eval", "nothing-like-it")


def test_builder_import_failure_is_one_clear_error(catalog: Catalog) -> None:
    spec = catalog.get_env("fixture-needs-missing")
    with pytest.raises(
        UserError,
        match=r"cannot be loaded: no module named 'cookbook_fixture_package_that_is_not_installed'.*pip install cookbook-fixture-good",
    ):
        spec.load()


def test_load_catalog_is_cached(plugins_on_path: Path) -> None:
    assert load_catalog() is load_catalog()


# ----- contract checks on registrations (real pluggy, plugins built in the test) -----


def _plugin(**hooks: Callable[..., None]) -> types.ModuleType:
    module = types.ModuleType("cbfix_inline")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def _load(*plugins: types.ModuleType, dist: str = "inline-dist") -> Catalog:
    entry_points = [(f"ep{i}", (lambda p=p: p)) for i, p in enumerate(plugins)]
    return Catalog([load_source(PluginSource(dist, "0.0.0", entry_points))])


def _env(
    name: str, builder: str = "pkg.mod:Builder"
) -> Callable[[Callable[[EnvSpec], None]], None]:
    def register_envs(register: Callable[[EnvSpec], None]) -> None:
        register(EnvSpec(name=name, builder=builder))

    return register_envs


@pytest.mark.parametrize(
    ("hooks", "error"),
    [
        ({"register_envs": _env("Bad Name")}, "bad name 'Bad Name'"),
        (
            {"register_envs": _env("ok", builder="no_colon")},
            "write it as 'package.module:ClassName'",
        ),
        (
            {"register_envs": lambda register: register(DatasetSpec(name="x", builder="a:B"))},
            "got DatasetSpec, expected EnvSpec",
        ),
        ({"register_env": _env("ok")}, "unknown hook 'register_env'"),
    ],
)
def test_contract_violations_mark_the_distribution_broken(
    hooks: dict[str, Callable[..., None]], error: str
) -> None:
    catalog = _load(_plugin(**hooks))
    (info,) = catalog.plugins()
    assert info.status == "broken"
    assert info.error is not None and error in info.error


def test_a_plugin_that_exits_on_import_is_only_broken() -> None:
    def loader() -> object:
        raise SystemExit("plugin gave up")

    catalog = Catalog([load_source(PluginSource("exits", "1.0", [("ep", loader)]))])
    (info,) = catalog.plugins()
    assert (info.status, info.error) == ("broken", "SystemExit: plugin gave up")


def test_registering_a_name_twice_in_one_distribution_is_an_error() -> None:
    catalog = _load(_plugin(register_envs=_env("twin")), _plugin(register_envs=_env("twin")))
    (info,) = catalog.plugins()
    assert info.error is not None and "registered the env 'twin' twice" in info.error


def test_same_name_in_different_kinds_is_fine() -> None:
    def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="shared", builder="pkg.mod:Data"))

    catalog = _load(_plugin(register_envs=_env("shared"), register_datasets=register_datasets))
    assert catalog.get_env("shared").builder == "pkg.mod:Builder"
    assert catalog.get_dataset("shared").builder == "pkg.mod:Data"


def test_did_you_mean_wording() -> None:
    assert did_you_mean("tictactoo", ["tictactoe", "math"]) == " (did you mean 'tictactoe'?)"
    assert did_you_mean("zzz", ["tictactoe"]) == ""
