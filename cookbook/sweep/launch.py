"""Where a sweep's runs execute: local subprocesses, or tasks on a Ray cluster.

Each run is a `cookbook <loop> ...` subprocess, so a crashing run cannot take the sweep down.
A local run starts in its own session (Ctrl-C reaches the sweep, which stops its runs in turn)
and, on Linux, with a parent-death signal: when the sweep process dies, even by SIGKILL, the
kernel kills its runs, so no orphan keeps training while a rerun of the sweep resumes it.

On Ray, each run is a task that starts the same subprocess on a worker node (`cookbook` must be
installed there, and the sweep directory must be on a file system the workers share). `ray` is
imported only when `--ray` is given.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol
from urllib.parse import urlsplit

from cookbook.errors import UserError

_PR_SET_PDEATHSIG = 1
"""prctl option of Linux: the signal the process gets when its parent dies."""
_STOP_GRACE_S = 10.0
"""How long a stopped run may take to exit after SIGTERM before it is killed."""


@dataclass(frozen=True)
class Job:
    """One attempt of one run."""

    name: str
    args: list[str]
    """`cookbook` arguments (`["rl", "--env", "tictactoe", "seed=1", ...]`)."""
    cwd: str
    env: dict[str, str]
    """Variables set on top of the sweep's environment."""
    log_path: Path
    """Where its stdout and stderr go (appended)."""
    threads: int
    """CPU threads the run uses (Ray reserves that many CPUs)."""


class Handle(Protocol):
    """A started run."""

    pid: int | None

    def poll(self) -> int | None:
        """Its exit status once it has ended, else `None`."""
        ...

    def stop(self) -> None:
        """Stop it (and whatever it started), waiting a little for it to end."""
        ...


class Launcher(Protocol):
    """Starts runs."""

    def start(self, job: Job) -> Handle:
        """Start `job` and return at once."""
        ...

    def close(self) -> None:
        """Release what the launcher holds (a Ray connection)."""
        ...


def cookbook_argv(args: Sequence[str]) -> list[str]:
    """The command that runs `cookbook <args>` with this Python."""
    return [sys.executable, "-m", "cookbook", *args]


# ----- local subprocesses -----


class LocalLauncher:
    """Runs as subprocesses of this process (see the module docstring)."""

    def __init__(self) -> None:
        self._preexec = parent_death_hook()

    def start(self, job: Job) -> Handle:
        # Its own session: the sweep decides when its runs stop (see LocalHandle.stop).
        process = _spawn(job.args, job.cwd, job.env, job.log_path, self._preexec, session=True)
        return LocalHandle(process)

    def close(self) -> None:
        pass


class LocalHandle:
    """A run in a local subprocess (the leader of its own process group)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid: int | None = process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, sig)


def parent_death_hook() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child die with this process (Linux; `None` elsewhere,
    where the sweep still stops its runs on Ctrl-C and SIGTERM, but not on SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def run_attempt(args: Sequence[str], cwd: str, env: Mapping[str, str], log_path: str) -> int:
    """Run one attempt to completion and return its exit status (the body of a Ray task: the
    run dies with the Ray worker when the task is cancelled or its driver goes away)."""
    return _spawn(args, cwd, env, Path(log_path), parent_death_hook(), session=False).wait()


def _spawn(
    args: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    log_path: Path,
    preexec: Callable[[], None] | None,
    session: bool,
) -> subprocess.Popen[bytes]:
    """Start `cookbook <args>` with its output appended to `log_path` after a header line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(
            cookbook_argv(args),
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=session,
            preexec_fn=preexec,  # safe here: the sweep starts runs from its main thread only
        )


# ----- Ray -----


class RayLauncher:
    """Runs as Ray tasks (`connect_ray` makes one)."""

    def __init__(self, ray_module: ModuleType) -> None:
        self._ray = ray_module

    def start(self, job: Job) -> Handle:
        remote = self._ray.remote(num_cpus=job.threads, max_retries=0)(run_attempt)
        ref = remote.remote(job.args, job.cwd, job.env, str(job.log_path))
        return RayHandle(self._ray, ref)

    def close(self) -> None:
        self._ray.shutdown()


class RayHandle:
    """A run in a Ray task."""

    pid: int | None = None

    def __init__(self, ray_module: ModuleType, ref: object) -> None:
        self._ray = ray_module
        self._ref = ref

    def poll(self) -> int | None:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if not ready:
            return None
        try:
            return int(self._ray.get(self._ref))
        except Exception as e:  # the task itself died (worker lost, cancelled)
            print(f"warning: Ray task failed: {str(e).splitlines()[0]}", file=sys.stderr)
            return 1

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # it may have finished meanwhile
            self._ray.cancel(self._ref, force=True)


def connect_ray(address: str, num_cpus: int | None = None) -> RayLauncher:
    """Connect to the Ray cluster at `address` (`host:port`, `ray://host:port`, `auto`), or
    start a private one on this machine with `local`. An unreachable address or a missing `ray`
    package is a one-line `UserError`."""
    if address not in ("local", "auto"):
        host, port = _host_port(address)
        _check_reachable(address, host, port)
    try:
        import ray
    except ImportError:
        raise UserError(
            "--ray needs the ray package: pip install 'cookbook[ray]' (or pip install ray)"
        ) from None
    import logging

    try:
        if address == "local":
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    return RayLauncher(ray)


def _host_port(address: str) -> tuple[str, int]:
    text = address if "://" in address else "//" + address
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or not parts.hostname:
        raise UserError(
            f"--ray {address}: not an address; write HOST:PORT (the head node's GCS port, "
            "6379 by default), ray://HOST:PORT, auto or local"
        )
    default = 10001 if text.startswith("ray://") else 6379
    return parts.hostname, port or default


def _check_reachable(address: str, host: str, port: int, timeout_s: float = 5.0) -> None:
    """Fail fast with one line: `ray.init` on a dead address retries for a long time."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({host}:{port}: {reason}); start one "
            "with `ray start --head` and pass the address it prints, or use --ray local"
        ) from None
