"""The `small_fs` fixture: a real small filesystem (a tmpfs) for the disk-full and read-only
tests, skipped where this machine does not let tests mount one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from small_fs import SmallFilesystem


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFilesystem]:
    """A `SmallFilesystem` under `tmp_path` (not mounted yet); skips the test when this machine
    does not let the tests mount one."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    fs = SmallFilesystem(tmp_path / "small")
    try:
        fs.mount("64k")
        fs.unmount()
    except OSError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield fs
    finally:
        fs.unmount()
