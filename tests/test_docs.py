"""The docs and docstrings cite files of this repo only: nothing points at notes kept outside
the repo, and every repo path a Markdown doc names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"DESIGN\.md|DEVELOPMENT-seed|\bnotes/[\w-]+\.md|\.\./shared/")
CITED = re.compile(
    r"(?<![\w/.-])((?:cookbook|plugins|tests|benchmarks|scripts|docs|envs_contrib)/"
    r"[\w./-]*\w\.(?:py|md|toml|sh|jsonl))"
)


def _tracked() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed if name.endswith((".py", ".md", ".toml", ".tmpl"))]


def test_nothing_points_outside_the_repo() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in _tracked()
        if path.is_file() and path.name != "test_docs.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, offenders


def test_every_repo_path_the_docs_cite_exists() -> None:
    missing = []
    for path in _tracked():
        if not path.is_file() or path.suffix != ".md":
            continue
        base = path.parent
        for cited in CITED.findall(path.read_text(encoding="utf-8")):
            # a path from the repo root, or (in a plugin's own files) from its distribution
            if not any((root / cited).exists() for root in (REPO, *base.parents)):
                missing.append(f"{path.relative_to(REPO)}: {cited}")
    assert not missing, missing
