"""One worker thread per client, and the futures it hands back.

Every client owns a `JobQueue`: jobs run on a single thread in submission order (the tinker
ordering guarantee: `forward_backward` then `optim_step` submitted back to back apply in that
order). The thread starts on the first job and exits after a few idle seconds, so a sampling
client nobody uses any more holds no thread and can be garbage collected.

A sampling client's queue runs in batch mode: the thread hands every request that has arrived to
one call, which can take more with `poll()` while it runs (continuous batching: requests that
arrive during a generation join it).

Results come back as tinker's own `AwaitableConcurrentFuture`: `.result(timeout)` blocks,
`await` waits on the event loop without blocking it (it wraps a `concurrent.futures.Future`).
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from typing import Generic, Protocol, TypeVar, cast

from tinker.lib.public_interfaces import APIFuture, AwaitableConcurrentFuture

T = TypeVar("T")
C = TypeVar("C")

LocalFuture = AwaitableConcurrentFuture
"""The future every local client method returns (the SDK's class: `.result()` and `await`)."""


class ReadyFuture(APIFuture[C]):
    """A client that is also the finished future of itself.

    The SDK's client-creating methods return a future of the client (`.result()` or `await`
    it). Local clients are built at call time, so the client is that future, already done:
    `service.create_lora_training_client(...)`, its `.result()` and `await` of it are the same
    object, and code written either way runs unchanged."""

    def result(self, timeout: float | None = None) -> C:
        """This client (nothing to wait for)."""
        return cast("C", self)

    async def result_async(self, timeout: float | None = None) -> C:
        """This client (nothing to wait for)."""
        return cast("C", self)

    def future(self) -> ConcurrentFuture[C]:
        """A finished `concurrent.futures.Future` holding this client."""
        done: ConcurrentFuture[C] = ConcurrentFuture()
        done.set_result(cast("C", self))
        return done


class Job(Protocol):
    """What a `JobQueue` needs from a queued job: it settles its own future."""

    def start(self) -> bool:
        """Mark the job running; False when it was cancelled before it started."""
        ...

    def fail(self, exc: BaseException) -> None:
        """Settle the job with `exc` unless it is already settled."""
        ...


J = TypeVar("J", bound=Job)


class _Closable(Protocol):
    def close(self, timeout: float = 2.0) -> None: ...


_LIVE_QUEUES: weakref.WeakSet[_Closable] = weakref.WeakSet()


@atexit.register
def _close_all_queues() -> None:
    # Idle workers are daemon threads parked in a wait; wake them so they exit before the
    # interpreter tears down torch underneath them.
    for queue in list(_LIVE_QUEUES):
        queue.close(timeout=1.0)


class JobQueue(Generic[J]):
    """Runs `process` on queued jobs from one lazily started thread, in submission order.

    In serial mode `process` gets one job at a time. In batch mode it gets every job that has
    arrived, after waiting until no new job came for `gather_s` seconds (at most `max_gather_s`),
    so requests fired concurrently from asyncio land in the same batch; while it runs it may
    take the jobs queued since with `poll()`.
    `process` must settle each job; if it raises, the error goes to every job of that call
    (polled ones included) still pending.
    """

    def __init__(
        self,
        name: str,
        process: Callable[[list[J]], None],
        *,
        batch: bool = False,
        gather_s: float = 0.001,
        max_gather_s: float = 0.05,
        idle_exit_s: float = 5.0,
    ) -> None:
        self._name = name
        self._process = process
        self._batch = batch
        self._gather_s = gather_s
        self._max_gather_s = max_gather_s
        self._idle_exit_s = idle_exit_s
        self._jobs: deque[J] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._current: list[J] = []
        _LIVE_QUEUES.add(self)

    def put(self, job: J) -> None:
        """Queue `job`; starts the worker thread if none is running."""
        with self._cv:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self._cv.notify()

    def close(self, timeout: float = 2.0) -> None:
        """Let the worker finish its queue and exit; waits up to `timeout` seconds for it."""
        with self._cv:
            self._closing = True
            thread = self._thread
            self._cv.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def poll(self) -> list[J]:
        """From inside `process` (batch mode): the jobs queued since, marked started; they
        become part of the running call."""
        with self._cv:
            jobs = list(self._jobs)
            self._jobs.clear()
        live = [job for job in jobs if job.start()]
        self._current.extend(live)
        return live

    def _take(self) -> list[J] | None:
        """The next job(s), or None when the queue stayed empty for `idle_exit_s`."""
        with self._cv:
            if not self._jobs and not self._closing:
                self._cv.wait(timeout=self._idle_exit_s)
            if not self._jobs:
                self._thread = None
                return None
            if not self._batch:
                return [self._jobs.popleft()]
            deadline = time.monotonic() + self._max_gather_s
            while time.monotonic() < deadline:
                seen = len(self._jobs)
                self._cv.wait(timeout=self._gather_s)
                if len(self._jobs) == seen:
                    break
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            live = [job for job in jobs if job.start()]
            if not live:
                continue
            self._current = live
            try:
                self._process(list(live))
            except BaseException as exc:  # delivered through the futures, never lost
                for job in self._current:
                    job.fail(exc)
            finally:
                self._current = []


class _Runnable(Job, Protocol):
    def run(self) -> None: ...


class _Call(Generic[T]):
    """A function to run on a `SerialExecutor`, and the future for its result."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.future: ConcurrentFuture[T] = ConcurrentFuture()

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


def _run_all(calls: list[_Runnable]) -> None:
    for call in calls:
        call.run()


class SerialExecutor:
    """Runs submitted functions one at a time, in submission order, on one worker thread."""

    def __init__(self, name: str) -> None:
        self._queue: JobQueue[_Runnable] = JobQueue(name, _run_all)

    def submit(self, fn: Callable[[], T]) -> AwaitableConcurrentFuture[T]:
        """Queue `fn`; its return value (or exception) arrives through the future."""
        call = _Call(fn)
        self._queue.put(call)
        return AwaitableConcurrentFuture(call.future)
