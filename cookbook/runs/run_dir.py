"""A run's log directory: created fresh, or found again to resume.

<log_dir>/config.json                the resolved config (+ the command line), enough to rerun it
<log_dir>/metrics.jsonl              one line per step
<log_dir>/checkpoints.json           the checkpoint index; files under checkpoints/
<log_dir>/transcripts/               readable rollouts / samples
<log_dir>/warm_start_metrics.jsonl   RL: one line per step of the supervised warm start
<log_dir>/reference.json             RL: where the frozen reference policy of the KL penalty is
                                     (its weights under reference/)
<log_dir>/trackers.json              with `log_to`: the tracker runs metrics are mirrored to
"""

from __future__ import annotations

import atexit
import json
import shutil
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.runs.checkpoints import Checkpoint, CheckpointIndex
from cookbook.runs.config_io import config_to_json
from cookbook.runs.files import atomic_write_json
from cookbook.runs.metrics import MetricsLog

if TYPE_CHECKING:
    from cookbook.trackers import MetricsSink


@dataclass
class RunDir:
    """Paths and logs of one run, and where it resumes from."""

    path: Path
    metrics: MetricsLog
    checkpoints: CheckpointIndex
    resume_from: Checkpoint | None
    """The checkpoint to resume from, or `None` for a new run."""
    _trackers: MetricsSink | None = field(default=None, repr=False)

    def open_trackers(self, names: Sequence[str], config: object) -> None:
        """Mirror every metrics line to the trackers `names` (`cookbook.trackers`) until
        `close()`; a resumed run continues its tracker runs."""
        from cookbook.trackers import open_trackers

        self.close()
        sink = open_trackers(names, self.path.name, config_to_json(config), self.path)
        self._trackers = self.metrics.mirror = sink
        atexit.register(sink.close)  # a run that ends by an exception still flushes them

    def close(self) -> None:
        """Close the run's trackers, if any (the files need no closing)."""
        sink, self._trackers = self._trackers, None
        if sink is not None:
            self.metrics.mirror = None
            atexit.unregister(sink.close)
            sink.close()

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
        """Record where the reference policy was saved (once per run)."""
        atomic_write_json(self.path / "reference.json", {"sampler_path": path})

    def relocate(self, path: str) -> str:
        """A path this run saved, found again under the run directory when the directory was
        moved (the index and records keep the paths the backend returned when saving)."""
        if "://" in path or Path(path).exists():
            return path
        parts = Path(path).parts
        for top in ("checkpoints", "reference"):
            if top in parts:
                last = len(parts) - 1 - parts[::-1].index(top)
                moved = self.path.joinpath(*parts[last:])
                if moved.exists():
                    return str(moved)
        return path

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


def open_run_dir(log_dir: str | Path, fresh: bool = False) -> RunDir:
    """Open `log_dir` for a run.

    A new directory starts a new run. An existing one resumes from its last checkpoint (its
    metrics after that point are dropped, as those steps run again), or starts over when it has
    no checkpoint yet. `fresh=True` deletes what is there first.
    """
    path = Path(log_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"log_dir {path} is a file; pick a directory path")
    if fresh and path.exists():
        if not (path / "config.json").exists() and any(path.iterdir()):
            raise UserError(
                f"refusing to delete {path}: it is not empty and has no config.json of a run; "
                "pick another log_dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    checkpoints = CheckpointIndex(path)
    try:
        resume_from = checkpoints.latest()
    except (json.JSONDecodeError, TypeError) as e:
        raise UserError(
            f"{checkpoints.path} is unreadable ({e}); rerun with --fresh to start over"
        ) from None
    metrics = MetricsLog(path / "metrics.jsonl")
    metrics.truncate_from(resume_from.step if resume_from else 0)
    return RunDir(path=path, metrics=metrics, checkpoints=checkpoints, resume_from=resume_from)
