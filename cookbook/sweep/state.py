"""`sweep.json`: a sweep's definition and each run's overrides and status, rewritten atomically
after every change, and the lock that keeps a second `cookbook sweep` off the same directory.

    <sweep_dir>/sweep.json        definition + runs (name, overrides, status, attempts, error)
    <sweep_dir>/<run name>/       each run's own log directory (config.json, metrics.jsonl, ...)
    <sweep_dir>/logs/<name>.log   each run's output (appended by every attempt)

Only the sweep process that holds the lock writes `sweep.json`; a killed sweep leaves runs
marked `running`, which the next sweep on the directory treats as interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, cast

from cookbook.errors import UserError
from cookbook.runs.files import atomic_write_json

Status = Literal["pending", "running", "done", "failed", "interrupted"]
SWEEP_FILE = "sweep.json"
LOCK_FILE = ".sweep.lock"
FORMAT_VERSION = 1


@dataclass
class RunRecord:
    """One run of a sweep."""

    name: str
    """Its directory under the sweep directory."""
    overrides: dict[str, str]
    """Its swept values (the fixed keys are in the sweep's definition)."""
    status: Status = "pending"
    attempts: int = 0
    """Times it was started (a resumed run counts again)."""
    returncode: int | None = None
    error: str | None = None
    """The last `error:` line (or last line) of a failed attempt."""
    started: float | None = None
    """Unix time the last attempt started."""
    finished: float | None = None
    pid: int | None = None
    """Process id of the running attempt (local runs)."""


@dataclass
class SweepState:
    """The content of `sweep.json`."""

    command: str
    """The loop: `rl` or `sft`."""
    target: str
    """The env or dataset name."""
    definition: dict[str, object]
    """`SweepSpec.definition()`: what decides the runs."""
    runs: list[RunRecord] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    """The `cookbook sweep` command line that made it (for the record)."""
    created: float = field(default_factory=time.time)
    version: int = FORMAT_VERSION

    @property
    def swept_keys(self) -> list[str]:
        """Keys whose value differs between runs."""
        grid = cast(dict[str, object], self.definition.get("grid", {}))
        random = cast(dict[str, object], self.definition.get("random", {}))
        return [*grid, *random]

    @property
    def fixed(self) -> dict[str, str]:
        """Keys every run sets to the same value."""
        return dict(cast(dict[str, str], self.definition.get("fixed", {})))

    def counts(self) -> dict[str, int]:
        """Runs per status."""
        out: dict[str, int] = {}
        for run in self.runs:
            out[run.status] = out.get(run.status, 0) + 1
        return out

    def save(self, sweep_dir: Path) -> None:
        """Rewrite `sweep.json` atomically."""
        atomic_write_json(sweep_dir / SWEEP_FILE, asdict(self))


def read_state(sweep_dir: Path) -> SweepState:
    """Read `<sweep_dir>/sweep.json`; a `UserError` when it is missing or unreadable."""
    path = sweep_dir / SWEEP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{sweep_dir} is not a sweep (no {SWEEP_FILE})") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is unreadable ({e}); start the sweep over with --fresh") from None
    try:
        runs = [RunRecord(**r) for r in data.pop("runs")]
        return SweepState(runs=runs, **data)
    except (KeyError, TypeError) as e:
        raise UserError(f"{path} is not a sweep file this version reads ({e})") from None


def is_sweep_dir(path: Path) -> bool:
    """Whether `path` holds a `sweep.json`."""
    return (path / SWEEP_FILE).is_file()


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold the sweep directory's lock for the block; a `UserError` if another process holds it.

    An advisory `flock`: the kernel drops it when the holder exits, SIGKILL included, so a
    killed sweep never leaves a stale lock behind."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): run unguarded
        yield
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"another `cookbook sweep` (pid {holder}) is running on {sweep_dir}; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
