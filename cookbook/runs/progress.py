"""A live progress line for long loops: step, the headline metric, time per step and ETA.

On a terminal it is a rich progress bar; otherwise (CI, a log file) a plain line every few
seconds, so logs stay readable."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class RunProgress:
    """Use as a context manager; call `update(step, metrics)` after each step."""

    def __init__(
        self,
        description: str,
        total_steps: int,
        start_step: int = 0,
        headline: tuple[str, ...] = (),
        plain_every_s: float = 10.0,
        enabled: bool = True,
        time_limit_s: float | None = None,
    ) -> None:
        """`time_limit_s`: seconds from now after which the loop stops whatever its step (its
        `max_minutes`), so the ETA is never later than that."""
        self.description = description
        self.total_steps = total_steps
        self.start_step = start_step
        self.headline = headline
        self.plain_every_s = plain_every_s
        self.enabled = enabled
        self._t0 = time.monotonic()
        self._stops_at = None if time_limit_s is None else self._t0 + time_limit_s
        self._last_plain = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self._t0 = time.monotonic()
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeElapsedColumn(),
                TextColumn("eta {task.fields[eta]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description,
                total=self.total_steps,
                completed=self.start_step,
                summary="",
                eta="-:--:--",
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def summary(self, step: int, metrics: Mapping[str, object]) -> str:
        """`reward 0.53  1.20 s/step` style text of the headline metrics."""
        parts = []
        for key in self.headline:
            value = metrics.get(key)
            if isinstance(value, int | float):
                parts.append(f"{key.removesuffix('/mean')} {value:.3f}")
        done = step + 1 - self.start_step
        if done > 0:
            parts.append(f"{(time.monotonic() - self._t0) / done:.2f} s/step")
        return "  ".join(parts)

    def eta_s(self, step: int, now: float) -> float:
        """Seconds left after `step`: at the pace so far, or to the time limit if sooner."""
        done = step + 1 - self.start_step
        left = self.total_steps - step - 1
        eta = (now - self._t0) / max(done, 1) * left
        return eta if self._stops_at is None else max(min(eta, self._stops_at - now), 0.0)

    def update(self, step: int, metrics: Mapping[str, object]) -> None:
        """Report that `step` finished with `metrics`."""
        if not self.enabled:
            return
        text = self.summary(step, metrics)
        now = time.monotonic()
        eta = self.eta_s(step, now)
        if self._progress is not None and self._task is not None:
            clock = f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
            self._progress.update(self._task, completed=step + 1, summary=text, eta=clock)
            return
        if now - self._last_plain >= self.plain_every_s or step + 1 >= self.total_steps:
            self._last_plain = now
            print(
                f"{self.description} step {step + 1}/{self.total_steps}  {text}  eta {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )
