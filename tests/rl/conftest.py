"""Fixtures of the RL runner tests: the fixture plugin installed for real and made visible."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_fixture_support import install_fixture_plugin


@pytest.fixture(scope="session")
def rl_fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fixture plugin is installed."""
    return install_fixture_plugin(tmp_path_factory)


@pytest.fixture
def rl_plugin(rl_fixture_site: Path) -> Iterator[Path]:
    """The fixture plugin importable and in the catalog for this test."""
    from cookbook.registry.catalog import load_catalog

    sys.path.insert(0, str(rl_fixture_site))
    load_catalog.cache_clear()
    try:
        yield rl_fixture_site
    finally:
        sys.path.remove(str(rl_fixture_site))
        load_catalog.cache_clear()
