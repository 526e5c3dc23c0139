"""The checkpoint index of a run: `checkpoints.json`, a list rewritten atomically after each save.

A checkpoint is listed only after the backend has finished writing it, so the newest entry is
always complete; resume loads it and restarts from its `step` (the next step to run). Paths under
the run directory are stored relative to it, so a moved (or copied) run still finds its files;
absolute paths written by older versions are found again under the new place too.
`resolve_checkpoint` turns what a user passes as `load_checkpoint_path` into a loadable path."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from cookbook.errors import UserError
from cookbook.runs.files import atomic_write_json


@dataclass(frozen=True)
class Checkpoint:
    """One saved point of a run."""

    step: int
    """The next step to run after loading this checkpoint (steps before it are done)."""
    state_path: str
    """Weights and optimizer state (`TrainingClient.load_state` takes it)."""
    sampler_path: str | None = None
    """Weights for sampling (`create_sampling_client(model_path=...)` takes it), if saved."""
    created: float = field(default_factory=time.time)
    """Unix time of the save."""
    extra: dict[str, float | int | str] = field(default_factory=dict)
    """Loop state that is not in the weights (data position, phase, ...)."""


class CheckpointIndex:
    """Reads and appends to `<log_dir>/checkpoints.json`."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.path = Path(log_dir) / "checkpoints.json"

    def all(self) -> list[Checkpoint]:
        """Every listed checkpoint, oldest first, its paths usable from here (see
        `resolve_run_path`)."""
        if not self.path.exists():
            return []
        entries = json.loads(self.path.read_text(encoding="utf-8"))
        run = self.path.parent
        return [
            replace(
                c,
                state_path=resolve_run_path(c.state_path, run),
                sampler_path=None
                if c.sampler_path is None
                else resolve_run_path(c.sampler_path, run),
            )
            for c in (Checkpoint(**e) for e in entries)
        ]

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, or `None`."""
        entries = self.all()
        return entries[-1] if entries else None

    def add(self, checkpoint: Checkpoint) -> None:
        """List `checkpoint` (call after its files are fully written)."""
        entries = [c for c in self.all() if c.step < checkpoint.step]
        entries.append(checkpoint)
        run = self.path.parent
        stored = [
            replace(
                c,
                state_path=run_relative_path(c.state_path, run),
                sampler_path=None
                if c.sampler_path is None
                else run_relative_path(c.sampler_path, run),
            )
            for c in entries
        ]
        atomic_write_json(self.path, [asdict(c) for c in stored])

    def state_dir(self, step: int) -> Path:
        """Where the checkpoint taken before `step` should be written."""
        return self.path.parent / "checkpoints" / f"step{step:06d}"


def run_relative_path(path: str, run: Path) -> str:
    """How a run stores `path`: relative to the run directory `run` when it lies under it, as is
    otherwise (a server's `tinker://` path, a file elsewhere)."""
    if "://" in path:
        return path
    try:
        return Path(path).resolve().relative_to(run.resolve()).as_posix()
    except (ValueError, OSError):
        return path


def resolve_run_path(stored: str, run: Path) -> str:
    """A path a run stored, usable from here: a relative one joined to the run directory `run`;
    an absolute one (older runs stored those) found again under `run` when the directory was
    moved since (its `checkpoints/...` or `reference/...` tail)."""
    if "://" in stored:
        return stored
    path = Path(stored)
    if not path.is_absolute():
        return str(run / path)
    if path.exists():
        return stored
    parts = path.parts
    for top in ("checkpoints", "reference"):
        if top in parts:
            last = len(parts) - 1 - parts[::-1].index(top)
            moved = run.joinpath(*parts[last:])
            if moved.exists():
                return str(moved)
    return stored


def resolve_checkpoint(path: str) -> str:
    """The `load_state` path for `path`: a checkpoint path as is, or a run's log directory (its
    newest checkpoint). Raises `UserError` for a run with no checkpoint or a missing path."""
    p = Path(path)
    if p.is_dir() and (p / "checkpoints.json").exists():
        latest = CheckpointIndex(p).latest()
        if latest is None:
            raise UserError(f"run {path} has no checkpoint yet; train longer or pass a state path")
        return latest.state_path
    if not p.exists() and "://" not in path:
        raise UserError(
            f"load_checkpoint_path {path} does not exist; pass a run's log directory or a "
            "checkpoint path listed in its checkpoints.json"
        )
    return path
