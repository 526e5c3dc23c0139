"""Contract checks for plugin authors: does an env, dataset, eval or preference model do what the
runners rely on?

From pytest:

    from cookbook.testing import assert_env_contract

    def test_coin_env_contract():
        assert_env_contract("coin")              # or the builder class, or a configured builder

From the command line: `cookbook check coin` (a table of every check; exit status 1 on a failure).

    report = check_env("coin", overrides=["sides=3"])   # the report, without raising
    print(report.format())

Each check is a named item of the report. Checks never raise for what the plugin does wrong:
every error becomes a failed item saying where it happened. Looking up an unknown name raises
`UserError` (the user's mistake).

One module per job: `env_checks`, `dataset_checks`, `eval_checks`, `preference_checks`, what
they share (`shared`),
the context they build with (`context`), the import-cost probe (`imports`), the scripted policy
(`policy`) and the report (`report`).

The names below load on first use: `cookbook --help` looks this package up to list `check`,
and must not pay for the checks' imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.testing.context import tiny_context
    from cookbook.testing.dataset_checks import assert_dataset_contract, check_dataset
    from cookbook.testing.env_checks import assert_env_contract, check_env
    from cookbook.testing.eval_checks import SMALL_EVAL_SETTINGS, assert_eval_contract, check_eval
    from cookbook.testing.imports import HEAVY_MODULES
    from cookbook.testing.policy import ScriptedPolicy
    from cookbook.testing.preference_checks import (
        assert_preference_model_contract,
        check_preference_model,
    )
    from cookbook.testing.report import CheckResult, ContractReport

_WHERE: dict[str, str] = {
    "SMALL_EVAL_SETTINGS": "eval_checks",
    "assert_dataset_contract": "dataset_checks",
    "assert_env_contract": "env_checks",
    "assert_eval_contract": "eval_checks",
    "check_dataset": "dataset_checks",
    "check_env": "env_checks",
    "check_eval": "eval_checks",
    "assert_preference_model_contract": "preference_checks",
    "check_preference_model": "preference_checks",
    "tiny_context": "context",
    "HEAVY_MODULES": "imports",
    "ScriptedPolicy": "policy",
    "CheckResult": "report",
    "ContractReport": "report",
}

__all__ = [
    "HEAVY_MODULES",
    "SMALL_EVAL_SETTINGS",
    "CheckResult",
    "ContractReport",
    "ScriptedPolicy",
    "assert_dataset_contract",
    "assert_env_contract",
    "assert_eval_contract",
    "assert_preference_model_contract",
    "check_dataset",
    "check_env",
    "check_eval",
    "check_preference_model",
    "tiny_context",
]


def __getattr__(name: str) -> object:
    """Import the submodule that defines `name` when it is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cookbook.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cookbook.testing.{module}"), name)
