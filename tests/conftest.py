"""Shared test set-up: real installs of plugin distributions, made visible to a test or to a
`cookbook` subprocess (`--runslow` is in /conftest.py).

Two sets of distributions are installed for real (`pip install --no-deps --target`, once per
session): tests/fixtures/* (a good plugin, a broken one, one whose hook raises, two that clash)
and tests/rl/fixture_plugin (a scripted env, evals and a warm-start dataset the loops run).
Keep this file small; fixtures used by one test module belong in that module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DISTS = REPO / "tests" / "fixtures"
RL_FIXTURE = REPO / "tests" / "rl" / "fixture_plugin"


# Builds each project's wheel with its own PEP 517 backend, all in one interpreter: pip would
# run two fresh interpreters per project for the same hooks (~0.7 s a project, most of it
# importing setuptools each time). Wheels only, like pip's default for these projects.
_BUILD_WHEELS = """
import importlib, os, sys, tomllib
out = sys.argv[1]
for project in sys.argv[2:]:
    with open(os.path.join(project, "pyproject.toml"), "rb") as f:
        system = tomllib.load(f).get("build-system", {})
    module, _, attr = system.get("build-backend", "setuptools.build_meta:__legacy__").partition(":")
    backend = importlib.import_module(module)
    if attr:
        backend = getattr(backend, attr)
    os.chdir(project)
    backend.build_wheel(out)
"""


def pip_install_target(projects: Sequence[Path], target: Path) -> None:
    """`pip install --no-deps --target` real projects, so the target holds genuine dist-info
    (entry points included): their wheels, built by each project's own build backend (in one
    interpreter for all of them, which is faster than pip building them one by one). Sources are
    copied first so no build files land in the repo."""
    staged = target.parent / f"{target.name}-src"
    wheels = target.parent / f"{target.name}-wheels"
    copies = []
    for project in projects:
        copy = staged / project.name
        shutil.copytree(
            project, copy, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
        )
        copies.append(str(copy))
    build = [sys.executable, "-c", _BUILD_WHEELS, str(wheels), *copies]
    done = subprocess.run(build, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the wheels failed:\n{done.stdout}\n{done.stderr}")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    cmd += ["--disable-pip-version-check", "--target", str(target)]
    built = sorted(str(w) for w in wheels.glob("*.whl"))
    assert len(built) == len(projects), built
    done = subprocess.run([*cmd, *built], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def pip_install() -> Callable[[Sequence[Path], Path], None]:
    """`pip_install_target`, for tests that install projects they made themselves."""
    return pip_install_target


@pytest.fixture(scope="session")
def fixture_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the fixture distributions of tests/fixtures/ (a good one, a broken
    one, one whose hook raises, two that clash), installed for real. Put it on `sys.path`
    (`plugins_on_path`) or `PYTHONPATH` (`plugins_env`) to make them visible."""
    target = tmp_path_factory.mktemp("plugins") / "site"
    projects = sorted(p for p in FIXTURE_DISTS.iterdir() if (p / "pyproject.toml").is_file())
    pip_install_target(projects, target)
    return target


@contextlib.contextmanager
def importable(site: Path) -> Iterator[Path]:
    """`site` on `sys.path` (its modules importable, its plugins in a fresh catalog) for the
    block, and gone again after it (later tests must not see it)."""
    from cookbook.registry.catalog import load_catalog

    sys.path.insert(0, str(site))
    load_catalog.cache_clear()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        load_catalog.cache_clear()


@pytest.fixture(scope="session")
def make_importable() -> Callable[[Path], contextlib.AbstractContextManager[Path]]:
    """`importable`, for tests that install projects they made themselves."""
    return importable


@pytest.fixture
def plugins_on_path(fixture_plugins: Path) -> Iterator[Path]:
    """The fixture distributions of tests/fixtures on `sys.path` for this test."""
    with importable(fixture_plugins) as site:
        yield site


@pytest.fixture(scope="session")
def rl_fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests/rl/fixture_plugin (`cookbook-rl-fixture`) is installed."""
    target = tmp_path_factory.mktemp("rl-fixture") / "site"
    pip_install_target([RL_FIXTURE], target)
    return target


@pytest.fixture(scope="module")
def rl_plugin(rl_fixture_site: Path) -> Iterator[Path]:
    """The RL fixture plugin importable and in the catalog, for a whole test module (its
    builders are used directly as well as through the registry)."""
    with importable(rl_fixture_site) as site:
        yield site


@pytest.fixture(scope="session")
def rl_plugin_env(rl_fixture_site: Path) -> dict[str, str]:
    """Environment for `cookbook` subprocesses that see the RL fixture plugin."""
    return env_with_path(rl_fixture_site)


@pytest.fixture(scope="session")
def plugins_env(fixture_plugins: Path) -> dict[str, str]:
    """Environment for subprocess runs of the CLI that see the fixture distributions."""
    return env_with_path(fixture_plugins)


def _repo_plugin_projects() -> list[Path]:
    """Plugin distributions of this repo: plugins/*, envs_contrib/ itself or its subfolders."""
    found = [*REPO.glob("plugins/*/pyproject.toml"), *REPO.glob("envs_contrib/pyproject.toml")]
    found += REPO.glob("envs_contrib/*/pyproject.toml")
    return sorted(p.parent for p in found)


@pytest.fixture(scope="session")
def repo_plugin_names() -> list[str]:
    """Distribution names of this repo's plugins (plugins/*, envs_contrib/*) that register
    something: those with a `cookbook` entry point (`cookbook-textarena` is a library)."""
    projects = [tomllib.loads((p / "pyproject.toml").read_text()) for p in _repo_plugin_projects()]
    return [
        project["project"]["name"]
        for project in projects
        if "cookbook" in project["project"].get("entry-points", {})
    ]


@pytest.fixture(scope="session")
def all_plugins_env(
    tmp_path_factory: pytest.TempPathFactory, fixture_plugins: Path
) -> dict[str, str]:
    """Environment for subprocess runs that see every repo plugin, installed for real from its
    current source, plus the fixture distributions."""
    target = tmp_path_factory.mktemp("repo-plugins") / "site"
    projects = _repo_plugin_projects()
    if projects:
        pip_install_target(projects, target)
    return env_with_path(target, fixture_plugins)


def env_with_path(*dirs: Path) -> dict[str, str]:
    """`os.environ` with `dirs` prepended to `PYTHONPATH` and a wide terminal for tables."""
    env = dict(os.environ)
    parts = [str(d) for d in dirs] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["COLUMNS"] = "200"  # tables unwrapped, whatever the terminal
    return env
