"""Run the runs of a sweep, N at a time, recording each start and end in `sweep.json`.

The scheduler is one loop in the main thread: start runs while fewer than `parallel` are
running, poll them, record what ended. Runs already `done` are skipped; runs a killed sweep left
`running` are started again and resume themselves from their own checkpoints (the loops resume a
run rerun in the same log_dir). Ctrl-C or SIGTERM stops the running runs and marks them
`interrupted`, so a rerun picks them up.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cookbook.sweep.launch import Handle, Job, Launcher
from cookbook.sweep.state import RunRecord, SweepState

_POLL_S = 0.2


@dataclass
class SweepResult:
    """What `run_sweep` returns."""

    done: int
    failed: list[RunRecord]
    started: int
    """Attempts started by this call."""


def run_sweep(
    sweep_dir: Path,
    state: SweepState,
    make_job: Callable[[RunRecord], Job],
    launcher: Launcher,
    parallel: int,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> SweepResult:
    """Run every run of `state` that is not `done`, at most `parallel` at a time."""
    for run in state.runs:
        if run.status == "running":  # a sweep that was killed left it so
            run.status = "interrupted"
            run.pid = None
    state.save(sweep_dir)
    todo = [run for run in state.runs if run.status != "done"]
    total = len(state.runs)
    skipped = total - len(todo)
    if skipped:
        log(f"{skipped} of {total} runs already done; running the other {len(todo)}")
    running: dict[str, tuple[RunRecord, Handle]] = {}
    started = 0
    try:
        with _sigterm_as_interrupt():
            while todo or running:
                while todo and len(running) < parallel:
                    run = todo.pop(0)
                    verb = {"interrupted": "resuming", "failed": "retrying"}.get(
                        run.status, "starting"
                    )
                    handle = launcher.start(make_job(run))
                    run.status = "running"
                    run.attempts += 1
                    run.started = time.time()
                    run.finished = None
                    run.returncode = None
                    run.error = None
                    run.pid = handle.pid
                    running[run.name] = (run, handle)
                    started += 1
                    state.save(sweep_dir)
                    log(f"{_progress(state)} {verb} {run.name}")
                time.sleep(_POLL_S)
                for name, (run, handle) in list(running.items()):
                    code = handle.poll()
                    if code is None:
                        continue
                    del running[name]
                    _finish(run, code, make_job(run).log_path)
                    state.save(sweep_dir)
                    took = (
                        f"{run.finished - run.started:.0f}s" if run.started and run.finished else ""
                    )
                    if run.status == "done":
                        log(f"{_progress(state)} done {run.name} ({took})")
                    else:
                        log(f"{_progress(state)} FAILED {run.name} ({took}): {run.error}")
    except KeyboardInterrupt:
        for run, handle in running.values():
            handle.stop()
            run.status = "interrupted"
            run.pid = None
            run.finished = time.time()
        state.save(sweep_dir)
        log(f"sweep interrupted; {len(running)} run(s) stopped (rerun the same command to resume)")
        raise
    failed = [run for run in state.runs if run.status == "failed"]
    done = sum(run.status == "done" for run in state.runs)
    return SweepResult(done=done, failed=failed, started=started)


def _finish(run: RunRecord, code: int, log_path: Path) -> None:
    run.returncode = code
    run.finished = time.time()
    run.pid = None
    if code == 0:
        run.status = "done"
        return
    run.status = "failed"
    run.error = last_error_line(log_path) or f"exit status {code}"


def last_error_line(log_path: Path, max_len: int = 300) -> str | None:
    """The last `error: ...` line of a run's output, else its last non-empty line."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(size - 64_000, 0))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("=== ")]  # attempt headers
    errors = [line for line in lines if line.startswith("error:")]
    chosen = errors[-1] if errors else (lines[-1] if lines else None)
    if chosen is None:
        return None
    return chosen if len(chosen) <= max_len else chosen[: max_len - 3] + "..."


def _progress(state: SweepState) -> str:
    counts = state.counts()
    width = len(str(len(state.runs)))
    return f"[{counts.get('done', 0):>{width}}/{len(state.runs)} done]"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the sweep the way Ctrl-C does (its runs are stopped, not orphaned)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
