"""`metrics.jsonl`: one JSON object per step, each step exactly once, even across crashes.

A run appends a line per step (flushed at once). On resume from a checkpoint taken before
step k, every line with step >= k is dropped (those steps run again) and so is a torn last line
from a kill mid-write; the file is rewritten atomically before the first new line is added.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, SupportsFloat

from cookbook.runs.files import atomic_write_text

MetricValue = float | int | str | None


class MetricsMirror(Protocol):
    """Receives each record after it is written (`cookbook.trackers.MetricsSink` is one)."""

    def log(self, step: int, metrics: Mapping[str, object]) -> None: ...


def _clean(value: object) -> MetricValue:
    """JSON has no NaN/inf: write them as null rather than break strict readers."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, SupportsFloat):
        return str(value)
    f = float(value)  # numpy and torch scalars
    return f if math.isfinite(f) else None


class MetricsLog:
    """Append-only per-step metrics with crash-safe resume."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.mirror: MetricsMirror | None = None
        """Where each written record is sent too (a run's `log_to` trackers), if anywhere."""

    def read(self) -> list[dict[str, MetricValue]]:
        """All complete records (a torn last line is ignored)."""
        if not self.path.exists():
            return []
        records: list[dict[str, MetricValue]] = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # only a line cut by a kill can be malformed
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_from(self, step: int) -> None:
        """Keep only the records of steps before `step` (the resume point)."""
        kept = []
        for record in self.read():
            record_step = record.get("step")
            if isinstance(record_step, int) and record_step < step:
                kept.append(record)
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, step: int, metrics: Mapping[str, object]) -> dict[str, MetricValue]:
        """Append the record of `step`; returns what was written."""
        record: dict[str, MetricValue] = {"step": step}
        record.update({k: _clean(v) for k, v in metrics.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            # A flushed write survives SIGKILL (the page cache outlives the process); fsync
            # would only add power-loss safety at a few ms per step.
            f.write(json.dumps(record) + "\n")
        if self.mirror is not None:
            self.mirror.log(step, record)
        return record
