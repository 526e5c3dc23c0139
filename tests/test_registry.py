"""The catalog against real installed fixture distributions (tests/fixtures/, see conftest)."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from cookbook import __version__
from cookbook.errors import UserError
from cookbook.registry import PLUGIN_API_VERSION, DatasetSpec, EnvSpec, hookimpl
from cookbook.registry.catalog import Catalog, load_catalog
from cookbook.registry.discovery import (
    DisabledPlugins,
    PluginSource,
    api_mismatch,
    find_sources,
    load_source,
)
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
    assert good.plugin_api == ">=1.0,<2" and broken.plugin_api is None


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


def test_unknown_name_mentions_plugins_not_loaded(catalog: Catalog) -> None:
    with pytest.raises(
        UserError,
        match=r"unknown eval 'nothing-like-it'.*plugins not loaded.*cookbook-fixture-broken "
        r"\(broken\).*cookbook-fixture-future \(incompatible\)",
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


# ----- plugin API versions -----


def test_a_plugin_built_for_another_plugin_api_is_incompatible(catalog: Catalog) -> None:
    info = catalog.plugin("cookbook-fixture-future")
    assert info is not None and info.status == "incompatible"
    assert info.plugin_api == ">=99.0,<100"
    assert info.error == (
        f"built for cookbook plugin API >=99.0,<100, but this cookbook-core ({__version__}) "
        f"provides plugin API {PLUGIN_API_VERSION}; install a release of cookbook-fixture-future "
        f"made for plugin API {PLUGIN_API_VERSION}, or a cookbook-core that provides >=99.0,<100"
    )
    assert info.provides == {"env": ["fixture-future"]}  # its hooks ran: the catalog knows
    assert "fixture-future" not in [s.name for s in catalog.list("env")]  # but offers nothing
    for name in ("fixture-future", "cookbook-fixture-future:fixture-future"):
        with pytest.raises(UserError) as err:
            catalog.get_env(name)
        message = str(err.value)
        assert message.startswith(f"env '{name}' comes from cookbook-fixture-future, which was ")
        assert message.endswith(info.error) and "\n" not in message
    assert info in catalog.broken()  # `cookbook list` notes it


def test_api_ranges_against_other_core_versions() -> None:
    source = PluginSource("cookbook-env-x", "1.0", [])
    assert api_mismatch(source, [">=1.0,<2"], provided="1.0") is None
    assert api_mismatch(source, [">=1.0,<2"], provided="1.7") is None
    assert api_mismatch(source, [], provided="5.0") is None  # declared nothing: any core
    line = api_mismatch(source, [">=1.0,<2"], provided="2.0")
    assert line is not None and ">=1.0,<2" in line and "plugin API 2.0;" in line
    assert api_mismatch(source, ["~=1.2"], provided="1.1") is not None


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        ("newest", "COOKBOOK_PLUGIN_API = 'newest' is not a version range such as '>=1.0,<2'"),
        (1.0, "COOKBOOK_PLUGIN_API must be a version range string such as '>=1.0,<2', got float"),
    ],
)
def test_a_malformed_api_declaration_is_broken(declared: object, error: str) -> None:
    module = _plugin(register_envs=_env("fine"))
    vars(module)["COOKBOOK_PLUGIN_API"] = declared  # what a plugin module would set
    (info,) = _load(module).plugins()
    assert info.status == "broken" and info.error is not None and error in info.error


# ----- COOKBOOK_DISABLE_PLUGINS -----


def _discover(monkeypatch: pytest.MonkeyPatch, setting: str) -> Catalog:
    monkeypatch.setenv("COOKBOOK_DISABLE_PLUGINS", setting)
    return Catalog.discover()


def test_disabled_plugins_are_listed_but_never_imported(
    plugins_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("cbfix_clash_a", "cbfix_clash_a.plugin"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    catalog = _discover(monkeypatch, " Cookbook_Fixture_Clash_A ,cookbook-fixture-broken")
    infos = {info.distribution: info for info in catalog.plugins()}
    for name in ("cookbook-fixture-clash-a", "cookbook-fixture-broken"):
        assert (infos[name].status, infos[name].provides) == ("disabled", {})
    assert "cbfix_clash_a.plugin" not in sys.modules
    assert infos["cookbook-fixture-good"].status == "ok"
    # with one of the twins disabled, the clash is gone
    assert catalog.get_env("fixture-dup").distribution == "cookbook-fixture-clash-b"
    assert catalog.disabled() == [
        infos["cookbook-fixture-broken"],
        infos["cookbook-fixture-clash-a"],
    ]
    assert infos["cookbook-fixture-broken"] not in catalog.broken()


def test_asking_for_what_a_disabled_plugin_provides_says_how_to_enable_it(
    plugins_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _discover(monkeypatch, "cookbook-fixture-good,cookbook-fixture-broken")
    enable = (
        r"which is disabled by COOKBOOK_DISABLE_PLUGINS; remove cookbook-fixture-good from it "
        r"\(or unset it\) to enable it"
    )
    with pytest.raises(UserError, match=r"env 'cookbook-fixture-good:fixture-coin' comes from "):
        catalog.get_env("cookbook-fixture-good:fixture-coin")
    with pytest.raises(UserError, match=enable):
        catalog.get_env("cookbook-fixture-good:fixture-coin")
    # not imported, so what it provides is a guess from its entry-point name
    with pytest.raises(UserError, match=r"env 'fixture-broken' may come from cookbook-fixture-br"):
        catalog.get_env("fixture-broken")
    with pytest.raises(
        UserError, match=r"unknown env 'fixture-coin'.*cookbook-fixture-good \(disabled\)"
    ):
        catalog.get_env("fixture-coin")


def test_star_disables_every_plugin_but_the_core(
    plugins_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _discover(monkeypatch, "*")
    status = {info.distribution: info.status for info in catalog.plugins()}
    assert status.pop("cookbook-core") == "ok"
    assert set(status.values()) == {"disabled"}
    assert catalog.get_dataset("jsonl").distribution == "cookbook-core"
    with pytest.raises(UserError, match=r"COOKBOOK_DISABLE_PLUGINS=\*; name only the plugins"):
        catalog.get_env("cookbook-fixture-good:fixture-coin")


def test_the_core_cannot_be_disabled_and_typos_are_reported(
    plugins_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        UserError,
        match=r"^COOKBOOK_DISABLE_PLUGINS names cookbook-core, the core's own plugin, which cannot "
        r"be disabled; remove it from COOKBOOK_DISABLE_PLUGINS$",
    ):
        _discover(monkeypatch, "cookbook_core")
    catalog = _discover(monkeypatch, "cookbook-fixture-godo,,nothing-here")
    assert catalog.unknown_disabled == [
        "cookbook-fixture-godo (did you mean 'cookbook-fixture-good'?)",
        "nothing-here",
    ]
    assert all(info.status != "disabled" for info in catalog.plugins())
    monkeypatch.delenv("COOKBOOK_DISABLE_PLUGINS")
    assert DisabledPlugins.from_environ() == DisabledPlugins()
    assert [s.distribution for s in find_sources() if s.core] == ["cookbook-core"]


def test_cookbook_plugins_shows_each_status(plugins_env: dict[str, str]) -> None:
    env = {**plugins_env, "COOKBOOK_DISABLE_PLUGINS": "cookbook-fixture-clash-b,no-such-plugin"}
    done = subprocess.run(
        [sys.executable, "-m", "cookbook.cli", "plugins"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:3] for line in lines if line.startswith("  cookbook")}
    assert rows["cookbook-fixture-future"] == ["3.0.0", "incompatible"]
    assert rows["cookbook-fixture-clash-b"] == ["0.1.0", "disabled"]
    assert rows["cookbook-fixture-broken"] == ["0.0.1", "broken"]
    assert rows["cookbook-fixture-good"] == ["1.2.3", "ok"]
    assert (
        "  cookbook-fixture-future: built for cookbook plugin API >=99.0,<100, but" in done.stdout
    )
    assert "  cookbook-fixture-clash-b: disabled by COOKBOOK_DISABLE_PLUGINS; remove" in done.stdout
    assert "  note: COOKBOOK_DISABLE_PLUGINS names no-such-plugin, which is not installed" in lines
    assert lines[-1] == f"cookbook-core {__version__} provides plugin API {PLUGIN_API_VERSION}"
