"""`cookbook new env|dataset|eval NAME`: what it writes is lint-clean, installs for real (pip,
from the files alone) and passes its own tests, which run cookbook's contract checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.scaffold import core_requirement, template_values

KINDS = ("env", "dataset", "eval")
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent))


def _new(capsys: pytest.CaptureFixture[str], kind: str, name: str, target: Path) -> str:
    assert cookbook_main(["new", kind, name, "--dir", str(target)]) == 0
    return capsys.readouterr().out


def _run_tests(projects: list[Path], site: Path, *select: str) -> subprocess.CompletedProcess[str]:
    """The generated projects' own tests (those `select`ed, e.g. `-k EXPR`), in a fresh
    interpreter that sees `site`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [*select]
        + [str(p / "tests") for p in projects],
        env=env,
        cwd=projects[0].parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_a_complete_lint_clean_distribution(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    for name in ("coin", "a-rather-long-plugin-name"):
        target = tmp_path / f"{kind}-{name}"
        out = _new(capsys, kind, name, target)
        values = template_values(kind, name)  # type: ignore[arg-type]
        assert f"wrote the {kind} plugin {name} in {target}/" in out
        assert f"cookbook check {name}" in out
        pyproject = tomllib.loads((target / "pyproject.toml").read_text())
        project = pyproject["project"]
        assert project["name"] == values.distribution == f"cookbook-{kind}-{name}"
        assert project["entry-points"]["cookbook"] == {name: f"{values.package}.plugin"}
        assert core_requirement() in project["dependencies"]
        files = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
        assert {"README.md", f"{values.package}/plugin.py", f"{values.package}/py.typed"} <= files
        assert f"tests/test_{values.package}.py" in files
        assert not [f for f in files if "PACKAGE" in f or f.endswith(".tmpl")]
        assert "${" not in "".join((target / f).read_text() for f in files)
        if RUFF is not None:  # the generated project's own lint settings
            for args in (["check", "."], ["format", "--check", "."]):
                done = subprocess.run([RUFF, *args], cwd=target, capture_output=True, text=True)
                assert done.returncode == 0, done.stdout + done.stderr


def test_mistakes_are_one_line_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    for args, says in [
        (["new", "env", "coin", "--dir", str(taken)], "already exists and is not an empty"),
        (["new", "env", "Coin", "--dir", str(tmp_path / "x")], "'Coin' cannot be a plugin name"),
        (["new", "game", "coin"], "unknown kind 'game'; use env, dataset or eval"),
        (["new", "env"], "name a kind and a name"),
        (["new", "env", "coin", "--dir", str(taken / "mine.txt" / "x")], "cannot write the"),
    ]:
        assert cookbook_main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    assert not (tmp_path / "x").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    _new(capsys, "envs", "coin", empty)  # an empty directory is fine, and "envs" means env
    assert (empty / "cookbook_env_coin" / "env.py").is_file()


Installer = Callable[[Sequence[Path], Path], None]


def test_a_new_env_installs_and_passes_its_unit_test(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pip_install: Installer,
    make_importable: Callable[[Path], AbstractContextManager[Path]],
) -> None:
    """The short version, in this process: installed, the env kind's own unit test passes (run
    by pytest on the project's tests, the package imported from where pip put it) and cookbook
    lists it. The slow test below runs every kind's tests, contract checks included, in a fresh
    interpreter."""
    project = tmp_path / "src" / "coin"
    _new(capsys, "env", "coin", project)
    site = tmp_path / "site"
    pip_install([project], site)
    monkeypatch.chdir(project.parent)
    before_path, before_modules = list(sys.path), set(sys.modules)
    try:
        with make_importable(site):
            status = pytest.main(
                ["-q", "-p", "no:cacheprovider", "-k", "not contract", str(project / "tests")]
            )
            run_out = capsys.readouterr().out
            assert status == 0, run_out[-3000:]
            assert "1 passed, 2 deselected" in run_out
            package = sys.modules["cookbook_env_coin"]
            assert str(package.__file__).startswith(str(site))  # the installed copy ran
            assert cookbook_main(["list", "--json"]) == 0
    finally:
        # Forget the path pytest put the project's tests on and the modules imported from this
        # test's files: later tests must not see them.
        sys.path[:] = before_path
        for name in set(sys.modules) - before_modules:
            if str(getattr(sys.modules[name], "__file__", "")).startswith(str(tmp_path)):
                del sys.modules[name]
    names = {(entry["kind"], entry["name"]) for entry in json.loads(capsys.readouterr().out)}
    assert {("env", "coin"), ("eval", "coin")} <= names, names


@pytest.mark.slow
def test_every_kind_installs_together_and_passes_its_tests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pip_install: Installer
) -> None:
    """One name for all three kinds: their packages and tests do not collide, and each test
    finds its own plugin by its qualified name although the names clash."""
    projects = [tmp_path / "src" / kind for kind in KINDS]
    for kind, project in zip(KINDS, projects, strict=True):
        _new(capsys, kind, "coin", project)
    site = tmp_path / "site"
    pip_install(projects, site)
    done = _run_tests(projects, site)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "6 passed" in done.stdout
