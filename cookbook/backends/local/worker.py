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
The sampling client returns `BatchedFuture`, the same class with one difference when awaited:
the coroutines waiting on results settled together (one decode step's finished requests) are
woken with one call into their event loop (`LoopWaker`), not one per request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future as ConcurrentFuture
from types import TracebackType
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


def release_frames(exc: BaseException) -> None:
    """Clear the local variables of the finished frames in `exc`'s traceback (and in those of
    its causes and contexts), keeping the message and the traceback's lines.

    A request that fails is delivered as its future's exception, and that exception's traceback
    holds every frame it passed through, with their locals: for a failed `forward_backward`, the
    hidden states whose autograd graph holds every activation of the step (tens of GB on a GPU).
    The frame that caught it refers to the job, the job to its future and the future to the
    exception: a reference cycle, which frees those tensors only when the garbage collector next
    runs, not when the caller drops the future."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # skips frames still running
        todo += (current.__cause__, current.__context__)


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
    so requests fired concurrently from threads land in the same batch (a burst queued at once
    with `put_many(gather=False)` starts without that wait); while it runs it may take the jobs
    queued since with `poll()`.
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
        self._gather = False
        """A job queued since the last take asked for the gathering window."""
        self._current: list[J] = []
        _LIVE_QUEUES.add(self)

    def put(self, job: J) -> None:
        """Queue `job`; starts the worker thread if none is running."""
        self.put_many((job,))

    def put_many(self, jobs: Iterable[J], *, gather: bool = True) -> None:
        """Queue `jobs` with one wake-up of the worker. `gather=False`: they are a complete
        burst, so (batch mode) the worker starts on them without the gathering window."""
        with self._cv:
            self._jobs.extend(jobs)
            self._gather = self._gather or gather
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

    @property
    def waiting(self) -> bool:
        """Whether jobs are queued (a hint, read without the lock: `poll()` takes them)."""
        return bool(self._jobs)

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
            while self._gather and time.monotonic() < deadline:
                seen = len(self._jobs)
                self._cv.wait(timeout=self._gather_s)
                if len(self._jobs) == seen:
                    break
            self._gather = False
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            self._serve(jobs)
            # Not held while waiting for the next jobs: a done job's result (a sampling
            # client, its weights) goes when its caller drops it.
            del jobs

    def _serve(self, jobs: list[J]) -> None:
        live = [job for job in jobs if job.start()]
        if not live:
            return
        self._current = live
        try:
            self._process(list(live))
        except BaseException as exc:  # delivered through the futures, never lost
            release_frames(exc)
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
            release_frames(exc)
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


# --- waking awaiting coroutines in batches --------------------------------------------------------


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


def _call_soon(loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future[None]]) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_wake_all, waiters)


class LoopWaker:
    """Wakes the coroutines awaiting futures that one thread settles, one event-loop call per
    loop for all the futures settled inside a `with waker:` block of that thread (elsewhere,
    one call per future, as `asyncio.wrap_future` makes). Each wake-up is a write to the loop's
    self-pipe and a hand-off of the GIL: a decode step that finishes 128 requests makes one."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __enter__(self) -> None:
        if getattr(self._local, "pending", None) is None:  # a nested block joins the outer one
            self._local.pending = {}
            self._local.depth = 0
        self._local.depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._local.depth -= 1
        if self._local.depth:
            return
        pending: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = self._local.pending
        self._local.pending = None
        for loop, waiters in pending.items():
            _call_soon(loop, waiters)

    def waiter(self, future: ConcurrentFuture[T]) -> asyncio.Future[None]:
        """A future of the running loop that completes (with None) once `future` is done."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: ConcurrentFuture[T]) -> None:
            pending = getattr(self._local, "pending", None)
            if pending is None:
                _call_soon(loop, [waiter])
            else:
                pending.setdefault(loop, []).append(waiter)

        future.add_done_callback(wake)
        return waiter


class BatchedFuture(AwaitableConcurrentFuture[T]):
    """tinker's `AwaitableConcurrentFuture`, awaited through a `LoopWaker`. `before_wait`
    runs before anything that could block on the result (`result()`, `future()`): the sampling
    client hands the requests it holds back until the end of the event loop's tick to the worker
    then, so a coroutine that blocks on its own request cannot wait for itself."""

    def __init__(
        self,
        future: ConcurrentFuture[T],
        waker: LoopWaker,
        before_wait: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(future)
        self._waker = waker
        self._before_wait = before_wait

    def result(self, timeout: float | None = None) -> T:
        """Block until the result is there (`TimeoutError` after `timeout` seconds)."""
        if self._before_wait is not None:
            self._before_wait()
        return self._future.result(timeout)

    async def result_async(self, timeout: float | None = None) -> T:
        """Wait on the event loop; cancelling the wait (or its timeout) cancels the request if
        it has not started, as awaiting the SDK's future does."""
        future = self._future
        if not future.done():
            waiter = self._waker.waiter(future)
            try:
                if timeout is None:
                    await waiter
                else:
                    async with asyncio.timeout(timeout):
                        await waiter
            except (asyncio.CancelledError, TimeoutError):
                future.cancel()
                raise
        return future.result()

    def future(self) -> ConcurrentFuture[T]:
        """The underlying `concurrent.futures.Future`."""
        if self._before_wait is not None:
            self._before_wait()
        return self._future
