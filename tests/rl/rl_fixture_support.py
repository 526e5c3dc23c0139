"""Installs the fixture distribution under tests/rl/fixture_plugin/ for real (genuine dist-info,
entry points in the `cookbook` group), once per test session; tests/rl and tests/eval share it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE_PROJECT = Path(__file__).resolve().parent / "fixture_plugin"
REPO = Path(__file__).resolve().parents[2]


def install_fixture_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install --no-deps --target` the fixture project (a copy, so no build files land in
    the repo); returns the target directory. Installed once per session."""
    root = tmp_path_factory.getbasetemp() / "rl-fixture-plugin"
    target = root / "site"
    if (target / "cookbook_rl_fixture").is_dir():
        return target
    source = root / "src"
    shutil.copytree(
        FIXTURE_PROJECT, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    cmd += ["--no-build-isolation", "--disable-pip-version-check", "--target", str(target)]
    done = subprocess.run([*cmd, str(source)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of the fixture plugin failed:\n{done.stderr}")
    return target


def subprocess_env(site: Path) -> dict[str, str]:
    """Environment for a `cookbook` subprocess that sees the fixture plugin."""
    env = dict(os.environ)
    parts = [str(site), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def cookbook_command(*args: str) -> list[str]:
    """The `cookbook` console script of this venv (its module form when the script is absent)."""
    script = Path(sys.executable).with_name("cookbook")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "cookbook.cli", *args]
