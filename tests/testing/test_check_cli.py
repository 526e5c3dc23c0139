"""`cookbook check NAME`: through the real `cookbook` entry point, on the repo's plugins and on
the fixture distributions of tests/fixtures (installed for real by tests/conftest.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main

needs_tictactoe = pytest.mark.skipif(
    importlib.util.find_spec("cookbook_tictactoe") is None,
    reason="cookbook-env-tictactoe is not installed",
)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@needs_tictactoe
def test_check_tictactoe_prints_a_table_and_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert cookbook_main(["check", "tictactoe"]) == 0
    out = capsys.readouterr().out
    assert "env tictactoe (from cookbook-env-tictactoe)" in out
    for check in ("import cost", "picklable", "rollouts", "group size", "determinism"):
        assert check in out
    assert "FAILED" not in out
    assert "env tictactoe: passed (12 passed, 0 failed, 0 skipped" in out


@needs_tictactoe
def test_check_json_with_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cookbook_main(["check", "tictactoe", "--json", "env.opponent=optimal"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["kind"] == "env" and report["passed"] is True
    config = next(c for c in report["checks"] if c["name"] == "config")
    assert "opponent=optimal" in config["detail"]


def test_a_failing_plugin_exits_1_with_the_reason(
    plugins_on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture env registers a builder without `__call__`; its dataset needs a path."""
    assert cookbook_main(["check", "fixture-coin", "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["import cost"]["status"] == "passed"
    assert by_name["builds"]["status"] == "failed"
    assert "CoinEnvBuilder must implement __call__(ctx)" in by_name["builds"]["detail"]
    assert by_name["rollouts"]["status"] == "skipped"

    assert cookbook_main(["check", "fixture-arithmetic", "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    config = next(c for c in report["checks"] if c["name"] == "config")
    assert "missing required field path; add path=VALUE" in config["detail"]


def test_a_builder_module_that_cannot_import_fails_import_cost(
    plugins_on_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # the table unwrapped
    assert cookbook_main(["check", "fixture-needs-missing"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert "cookbook_fixture_package_that_is_not_installed" in out


def test_usage_mistakes_are_one_line_errors(
    plugins_on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cookbook_main(["check", "fixture-con"]) == 2
    assert "did you mean 'fixture-coin'" in one_line_error(capsys)
    assert cookbook_main(["check", "fixture-coin", "dataset.path=x"]) == 2
    assert "dataset.KEY=VALUE given, but this checks the env" in one_line_error(capsys)
    assert cookbook_main(["check", "fixture-coin", "flips=3"]) == 2
    assert "write env.KEY=VALUE" in one_line_error(capsys)
    assert cookbook_main(["check", "fixture-coin", "--kind", "dataset"]) == 2
    assert "is an env, not a dataset" in one_line_error(capsys)
    assert cookbook_main(["check"]) == 2
    assert "usage: cookbook check NAME" in one_line_error(capsys)


def test_a_name_from_a_broken_plugin_reports_the_plugin_error(
    plugins_on_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cookbook_main(["check", "broken"]) == 2
    line = one_line_error(capsys)
    assert "cookbook-fixture-broken" in line and "failed to load" in line


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cookbook_main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cookbook check NAME")
    assert "assert_env_contract" in out
