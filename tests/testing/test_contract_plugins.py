"""The repo's real plugins keep the contract: the checks pass on them, with real textarena games,
real math problems, the shipped JSONL demo and the real tiny model for evals."""

from __future__ import annotations

import importlib.util

import pytest

from cookbook.testing import (
    assert_dataset_contract,
    assert_env_contract,
    assert_eval_contract,
    check_env,
)


def needs(package: str) -> pytest.MarkDecorator:
    """Skip when the plugin distribution providing `package` is not installed."""
    missing = importlib.util.find_spec(package) is None
    return pytest.mark.skipif(
        missing, reason=f"{package} is not installed (pip install ./plugins/...)"
    )


@needs("cookbook_tictactoe")
def test_tictactoe_env_keeps_the_contract() -> None:
    report = assert_env_contract("tictactoe")
    assert {r.status for r in report.results} == {"passed"}
    # the import-cost check probed the hook module `cookbook list` imports, and the builder's
    assert "cookbook_tictactoe.plugin" in report.result("import cost").detail
    assert "cookbook_tictactoe.tictactoe" in report.result("import cost").detail


@needs("cookbook_tictactoe")
def test_tictactoe_self_play_keeps_the_contract() -> None:
    report = assert_env_contract("tictactoe", ["self_play=true"], check_imports=False)
    assert "self_play=true" in report.result("config").detail


@needs("cookbook_tictactoe")
def test_tictactoe_demos_and_eval_keep_the_contract() -> None:
    assert_dataset_contract("tictactoe-demos", check_imports=False)
    report = assert_eval_contract("tictactoe-vs-random", check_imports=False)
    assert "num_games=2" in report.result("config").detail
    assert "an untrained tiny model" in report.result("runs").detail


@needs("cookbook_math")
def test_math_arithmetic_keeps_the_contract() -> None:
    report = assert_env_contract("arithmetic", check_imports=False)
    assert "test: " in report.result("builds").detail
    assert "test group 0" not in report.result("rollouts").detail  # no failure to name
    assert_dataset_contract("arithmetic-sft", check_imports=False)
    report = assert_eval_contract("arithmetic", check_imports=False)
    assert "num_problems=4" in report.result("config").detail


def test_core_jsonl_dataset_and_nll_eval_keep_the_contract() -> None:
    report = assert_dataset_contract("jsonl")
    assert report.result("import cost").status == "passed"
    report = assert_eval_contract("nll", check_imports=False)
    assert "max_examples=4" in report.result("config").detail


@needs("cookbook_tictactoe")
def test_a_declared_range_is_checked_on_a_real_env() -> None:
    """tictactoe declares no range; a too-narrow one given here must fail on real games."""
    report = check_env("tictactoe", reward_range=(0.0, 1.0), check_imports=False)
    assert {r.name for r in report.failures} == {"rewards"}
    assert "outside the declared reward_range [0, 1]" in report.result("rewards").detail
