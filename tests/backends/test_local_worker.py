"""`LoopWaker` and `BatchedFuture`: results settled by another thread wake their coroutines,
in blocks or one by one, and cancelling a wait cancels a request that has not started."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError
from concurrent.futures import Future as ConcurrentFuture

import pytest

from cookbook.backends.local.worker import BatchedFuture, LoopWaker


def _settle_from_thread(waker: LoopWaker, futures: list[ConcurrentFuture[int]]) -> None:
    def settle() -> None:
        with waker, waker:  # the first half in a nested block, the rest one by one
            for i, future in enumerate(futures[: len(futures) // 2]):
                future.set_result(i)
        for i, future in enumerate(futures[len(futures) // 2 :], start=len(futures) // 2):
            future.set_result(i)

    threading.Thread(target=settle).start()


def test_results_settled_by_another_thread_wake_every_awaiting_coroutine() -> None:
    waker = LoopWaker()
    futures: list[ConcurrentFuture[int]] = [ConcurrentFuture() for _ in range(6)]

    async def wait_all() -> list[int]:
        waiting = [BatchedFuture(f, waker) for f in futures]
        _settle_from_thread(waker, futures)
        return list(await asyncio.wait_for(asyncio.gather(*waiting), timeout=30))

    assert asyncio.run(wait_all()) == list(range(6))


def test_a_cancelled_wait_cancels_the_pending_request_and_a_timeout_raises() -> None:
    waker = LoopWaker()
    pending: ConcurrentFuture[int] = ConcurrentFuture()

    async def cancel_the_wait() -> None:
        task = asyncio.ensure_future(BatchedFuture(pending, waker).result_async())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_the_wait())
    assert pending.cancelled()  # it had not started: nothing will run it

    running: ConcurrentFuture[int] = ConcurrentFuture()
    assert running.set_running_or_notify_cancel()

    async def time_out() -> None:
        await BatchedFuture(running, waker).result_async(timeout=0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(time_out())
    assert not running.cancelled()  # a started request runs to the end
    running.set_result(1)
    with pytest.raises(CancelledError):
        BatchedFuture(pending, waker).result()


def test_blocking_waits_hand_over_first() -> None:
    handed: list[str] = []
    future: ConcurrentFuture[int] = ConcurrentFuture()
    future.set_result(3)
    batched = BatchedFuture(future, LoopWaker(), lambda: handed.append("over"))
    assert batched.result() == 3
    assert batched.future() is future
    assert handed == ["over", "over"]
