"""A real small filesystem for the disk-full and read-only tests: a tmpfs mounted for one test
(mounting needs root with CAP_SYS_ADMIN; `conftest.small_fs` skips the tests elsewhere)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class SmallFilesystem:
    """A tmpfs at `path`, remountable with another size or read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounted = False

    def _mount(self, *args: str) -> None:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OSError(done.stderr.strip() or f"mount {' '.join(args)} failed")

    def mount(self, size: str) -> Path:
        """Mount a tmpfs of `size` (`3m`) at `path`; returns `path`."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(self.path))
        self.mounted = True
        return self.path

    def remount(self, options: str) -> None:
        """`size=8m`, `ro`, `rw`."""
        self._mount("-o", f"remount,{options}", str(self.path))

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
            self.mounted = False
