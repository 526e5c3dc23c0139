"""Contract checks for plugin authors: does an env, dataset or eval do what the runners rely on?

From pytest:

    from cookbook.testing import assert_env_contract

    def test_coin_env_contract():
        assert_env_contract("coin")              # or the builder class, or a configured builder

From the command line: `cookbook check coin` (a table of every check; exit status 1 on a failure).

The names below load on first use: `cookbook --help` looks this package up to list `check`,
and must not pay for the checks' imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.testing.checks import (
        SMALL_EVAL_SETTINGS,
        assert_dataset_contract,
        assert_env_contract,
        assert_eval_contract,
        check_dataset,
        check_env,
        check_eval,
        tiny_context,
    )
    from cookbook.testing.imports import HEAVY_MODULES
    from cookbook.testing.policy import ScriptedPolicy
    from cookbook.testing.report import CheckResult, ContractReport

_WHERE: dict[str, str] = {
    "SMALL_EVAL_SETTINGS": "checks",
    "assert_dataset_contract": "checks",
    "assert_env_contract": "checks",
    "assert_eval_contract": "checks",
    "check_dataset": "checks",
    "check_env": "checks",
    "check_eval": "checks",
    "tiny_context": "checks",
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
    "check_dataset",
    "check_env",
    "check_eval",
    "tiny_context",
]


def __getattr__(name: str) -> object:
    """Import the submodule that defines `name` when it is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cookbook.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cookbook.testing.{module}"), name)
