"""The RL fixture plugin (tests/rl/fixture_plugin) registers the evals these tests run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rl"))
from rl_fixture_support import install_fixture_plugin


@pytest.fixture
def eval_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixture plugin installed (once per session) and in the catalog for this test."""
    from cookbook.registry.catalog import load_catalog

    site = install_fixture_plugin(tmp_path_factory)
    sys.path.insert(0, str(site))
    load_catalog.cache_clear()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        load_catalog.cache_clear()
