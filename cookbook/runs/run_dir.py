"""A run's log directory: created fresh, or found again to resume.

<log_dir>/.cookbook-run              marks the directory as a run's; locked while a process runs
                                     it (holds that process's id)
<log_dir>/config.json                the resolved config (+ the command line), enough to rerun it
<log_dir>/metrics.jsonl              one line per step
<log_dir>/checkpoints.json           the checkpoint index; files under checkpoints/
<log_dir>/transcripts/               readable rollouts / samples
<log_dir>/warm_start_metrics.jsonl   RL: one line per step of the supervised warm start
<log_dir>/reference.json             RL: where the frozen reference policy of the KL penalty is
                                     (its weights under reference/)
<log_dir>/trackers.json              with `log_to`: the tracker runs metrics are mirrored to
<log_dir>/wandb/                     with `log_to=wandb` offline: its local run files

Only a directory that is new, empty, or recognisably a run's (it has `.cookbook-run`, or the
`config.json` of a run written before that marker existed) is used; `--fresh` deletes only the
entries above and leaves anything else there alone.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import shutil
import sys
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.runs.checkpoints import (
    Checkpoint,
    CheckpointIndex,
    resolve_run_path,
    run_relative_path,
)
from cookbook.runs.config_io import config_to_json
from cookbook.runs.files import atomic_write_json
from cookbook.runs.metrics import MetricsLog

if TYPE_CHECKING:
    from cookbook.trackers import MetricsSink

MARKER = ".cookbook-run"
"""The file that marks a run directory and carries its lock."""

RUN_ENTRIES = (
    "config.json",
    "metrics.jsonl",
    "checkpoints.json",
    "checkpoints",
    "transcripts",
    "warm_start_metrics.jsonl",
    "reference.json",
    "reference",
    "trackers.json",
    "wandb",
)
"""What a run writes besides its marker: all that `--fresh` deletes."""


class RunLock:
    """An exclusive `flock` on a run's marker file, held while a process runs the run.

    The kernel drops the lock when its holder exits, SIGKILL included, so a killed run never
    blocks its own resume; the file keeps the holder's pid for the message a second run gets."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, log_dir: str | Path) -> RunLock:
        """Lock `log_dir` (made if missing) for this process; a `UserError` naming the live
        run's pid when another process holds it."""
        path = Path(log_dir)
        check_usable(path)
        with os_errors_as_user_errors(path):
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / MARKER, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            import fcntl
        except ImportError:  # no flock (Windows): runs are not guarded
            os.close(fd)
            return cls(None)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise UserError(
                    f"another run (pid {holder}) is using {path}; wait for it to finish or stop "
                    "it, or set log_dir=... for a new run"
                ) from None
            with os_errors_as_user_errors(path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def release(self) -> None:
        """Let other processes use the run (closing the descriptor drops the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


@dataclass
class RunDir:
    """Paths and logs of one run, and where it resumes from. `cookbook.runs.setup.start_run`
    returns one holding the run's lock: use it as a context manager (`with start_run(...) as
    run_dir:`), which closes its trackers, releases the lock and turns a full disk or an
    unwritable directory into one `UserError` line."""

    path: Path
    metrics: MetricsLog
    checkpoints: CheckpointIndex
    resume_from: Checkpoint | None
    """The checkpoint to resume from, or `None` for a new run."""
    lock: RunLock | None = None
    """The run's lock, when this process holds it."""
    _trackers: MetricsSink | None = field(default=None, repr=False)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        self.release()
        if isinstance(exc, OSError):
            error = os_error_message(exc, self.path)
            if error is not None:
                raise UserError(error) from exc

    def open_trackers(self, names: Sequence[str], config: object) -> None:
        """Mirror every metrics line to the trackers `names` (`cookbook.trackers`) until
        `close()`; a resumed run continues its tracker runs."""
        from cookbook.trackers import open_trackers

        self.close()
        sink = open_trackers(names, self.path.name, config_to_json(config), self.path)
        self._trackers = self.metrics.mirror = sink
        atexit.register(sink.close)  # a run that ends by an exception still flushes them

    def close(self) -> None:
        """Close the run's trackers, if any (the files need no closing; the lock stays held
        until `release()`, as a loop still saves after closing its trackers)."""
        sink, self._trackers = self._trackers, None
        if sink is not None:
            self.metrics.mirror = None
            atexit.unregister(sink.close)
            sink.close()

    def release(self) -> None:
        """Release the run's lock (if held): another process may use the run from now on."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def transcripts_dir(self) -> Path:
        return self.path / "transcripts"

    @property
    def warm_start_metrics(self) -> MetricsLog:
        """The RL warm start's per-step metrics (kept apart from the RL steps' own)."""
        return MetricsLog(self.path / "warm_start_metrics.jsonl")

    @property
    def reference_dir(self) -> Path:
        """Where the KL penalty's reference weights are saved."""
        return self.path / "reference"

    def reference_sampler_path(self) -> str | None:
        """The saved reference policy's sampler path (`None` before it is saved)."""
        record = self.path / "reference.json"
        if not record.exists():
            return None
        path = json.loads(record.read_text(encoding="utf-8"))["sampler_path"]
        return self.relocate(str(path))

    def set_reference_sampler_path(self, path: str) -> None:
        """Record where the reference policy was saved (once per run; relative to the run)."""
        atomic_write_json(
            self.path / "reference.json", {"sampler_path": run_relative_path(path, self.path)}
        )

    def relocate(self, path: str) -> str:
        """A path this run stored, usable from here (`cookbook.runs.checkpoints.resolve_run_path`:
        relative paths, and absolute ones of a run directory moved since)."""
        return resolve_run_path(path, self.path)

    @property
    def start_step(self) -> int:
        """The first step this process runs."""
        return self.resume_from.step if self.resume_from else 0

    def check_resumable(self, config: object, changeable: Collection[str]) -> None:
        """Refuse to resume with other settings than the stored run's (the result would mix two
        experiments); top-level fields in `changeable` (cadences, `max_steps`, ...) may differ."""
        try:
            stored = json.loads(self.config_path.read_text(encoding="utf-8")).get("config")
        except (OSError, json.JSONDecodeError, AttributeError):
            return  # no readable config: nothing to compare with
        current = config_to_json(config)
        if not isinstance(stored, dict) or not isinstance(current, dict):
            return
        changed = sorted(
            key
            for key in set(stored) | set(current)
            if key not in changeable and stored.get(key) != current.get(key)
        )
        if changed:
            raise UserError(
                f"{self.path} holds a run with different settings ({', '.join(changed)}); "
                "rerun with --fresh to start over, or set log_dir=... for a new run"
            )

    def write_config(self, config: object, argv: list[str] | None = None) -> None:
        """Write `config.json` (atomically): the config tree plus the command that made it."""
        atomic_write_json(
            self.config_path,
            {
                "command": list(sys.argv if argv is None else argv),
                "config": config_to_json(config),
            },
        )

    def start_steps(self, config: object, argv: list[str] | None = None) -> None:
        """Call right before the loop's first step: `config` becomes the run's stored config (a
        resumed run may have changed `max_steps` or a cadence), and the metrics lines of steps
        from `start_step` on are dropped, as those steps run again. A run found already complete
        never gets here, so it is left exactly as it was."""
        self.write_config(config, argv)
        self.metrics.truncate_from(self.start_step)


def open_run_dir(log_dir: str | Path, fresh: bool = False) -> RunDir:
    """Open `log_dir` for a run.

    A new (or empty) directory starts a new run. A run's directory resumes from its last
    checkpoint, or starts over when it has none yet; what a save killed half-way left behind is
    removed first. `fresh=True` deletes the run's own files first (`RUN_ENTRIES`), nothing else.
    A directory holding other files and no run is refused, fresh or not: a run would overwrite
    or delete them. Open it through `cookbook.runs.setup.start_run`, which locks it first.
    """
    path = Path(log_dir)
    check_usable(path)
    with os_errors_as_user_errors(path):
        if fresh and path.exists():
            _delete_run_entries(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).touch()
        _remove_partial_writes(path)
    checkpoints = CheckpointIndex(path)
    try:
        resume_from = checkpoints.latest()
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError(
            f"{checkpoints.path} is unreadable ({e}); rerun with --fresh to start over"
        ) from None
    metrics = MetricsLog(path / "metrics.jsonl")
    return RunDir(path=path, metrics=metrics, checkpoints=checkpoints, resume_from=resume_from)


def check_usable(path: Path) -> None:
    """A `UserError` unless `path` is missing, an empty directory or a run's directory."""
    if path.exists() and not path.is_dir():
        raise UserError(f"log_dir {path} is a file; pick a directory path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"log_dir {path}: {parent} is a file, not a directory")
            break
    if not path.exists() or (path / MARKER).exists():
        return
    try:
        empty = not any(path.iterdir())
    except OSError as e:
        raise UserError(f"cannot read log_dir {path} ({e.strerror})") from None
    if not empty and not _is_run_config(path / "config.json"):
        raise UserError(
            f"log_dir {path} is not empty and holds no cookbook run; pick a new or empty "
            "directory (a run would overwrite or delete its files)"
        )


def _is_run_config(file: Path) -> bool:
    """Whether `file` is the `config.json` a run wrote (a run from before the marker file)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("command"), list)
        and isinstance(data.get("config"), dict)
        and "__chz__" in data["config"]
    )


def _delete_run_entries(path: Path) -> None:
    """Delete what a run wrote in `path` (its marker stays: it holds the lock); say what else
    is left there."""
    for name in RUN_ENTRIES:
        entry = path / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    _remove_partial_writes(path)
    kept = sorted(p.name for p in path.iterdir() if p.name != MARKER)
    if kept:
        shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
        print(f"note: --fresh kept what no run wrote in {path}: {shown}", file=sys.stderr)


def _remove_partial_writes(path: Path) -> None:
    """What a kill in the middle of a write left: temp folders of a checkpoint save
    (`.NAME.tmp-*`, deleted), a checkpoint moved aside to be replaced (`.NAME.old-*`: put back
    when the new one never took its place, deleted otherwise) and temp files of atomic writes."""
    for top in ("checkpoints", "reference"):
        root = path / top
        if not root.is_dir():
            continue
        for leftover in sorted(root.rglob(".*.tmp-*")):
            shutil.rmtree(leftover, ignore_errors=True)
        for old in sorted(root.rglob(".*.old-*")):
            final = old.with_name(old.name[1:].rpartition(".old-")[0])
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, final)
    for name in RUN_ENTRIES:
        for tmp in path.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def os_error_message(error: OSError, run: Path) -> str | None:
    """One line for an `OSError` a run's own writes can meet (a full disk, a read-only or
    unwritable directory), or `None` for any other."""
    where = error.filename or run
    if error.errno in _DISK_FULL:
        return (
            f"disk full: no space left on the device of {where} ({error.strerror}); free some "
            "space, then rerun the same command: the run resumes from its last checkpoint"
        )
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"cannot write {where} ({error.strerror}); pick a writable log_dir, or fix the "
            "directory's permissions and rerun"
        )
    if error.errno in (errno.ENOTDIR, errno.EEXIST) and error.filename is not None:
        return f"cannot make {where} ({error.strerror}); pick another log_dir"
    return None


@contextlib.contextmanager
def os_errors_as_user_errors(run: Path) -> Iterator[None]:
    """Turn an `OSError` of the block that `os_error_message` explains into a `UserError`."""
    try:
        yield
    except OSError as e:
        message = os_error_message(e, run)
        if message is None:
            raise
        raise UserError(message) from None
