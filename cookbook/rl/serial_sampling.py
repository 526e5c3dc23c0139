"""One sampling request at a time: what makes a seeded RL run replay exactly (`deterministic=true`).

Why a run is not reproducible otherwise. Every sample is seeded (`cookbook.rl.rollouts`), and the
local backend draws a row's random numbers from its own seed whatever else shares its batch
(`cookbook/backends/local/generation.py`). But the backend batches the requests that arrive
together, and which ones do depends on timing (env steps, threads, the machine's load). A row's
logits and logprobs are computed in a batch of another size, with other padding, so they differ
in the last bits; the importance-sampling loss reads those logprobs, so the first update already
differs by ~1e-6 (measured: two identical tic-tac-toe runs had the same rewards at step 0 and a
different `optim/loss_sum`), and the difference grows until a sampled token flips and the runs
part. Serving one request at a time removes the only input that changes between two runs: each
request is computed alone, so its numbers depend on the weights and its own prompt, parameters
and seed. Two runs then match bit for bit on the same machine and software (same torch, same
thread count). It costs the batching: every turn of every env waits for the one before.

`SerialSamplingClient` wraps a sampling client so that requests go out one by one, in the order
they were awaited; every client wrapped with the same `Gate` shares the one slot (the RL loop
wraps its sampler, the evaluators' client and the KL reference with one gate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import Future, SamplingClient
    from cookbook.tokenizers import Tokenizer

_T = TypeVar("_T")


class Gate:
    """The single slot requests wait for. Use it from one event loop."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self.in_flight = 0
        """Requests submitted and not finished (at most 1)."""
        self.most_in_flight = 0
        """The most requests ever in flight at once (1 when serialisation held)."""

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def run(self, submit: Callable[[], Future[_T]]) -> _T:
        """Wait for the slot, submit, wait for the answer, free the slot."""
        async with self.lock:
            return await self._served(submit)

    def run_blocking(self, submit: Callable[[], Future[_T]]) -> _T:
        """`run` for a caller that blocks (`.result()`): nothing else runs on the event loop
        meanwhile, and an awaited request cannot be in flight while it holds the slot."""
        if self._lock is not None and self._lock.locked():
            raise RuntimeError(
                "a blocking .result() while another request holds the slot; await the request"
            )
        self._enter()
        try:
            return submit().result()
        finally:
            self.in_flight -= 1

    async def _served(self, submit: Callable[[], Future[_T]]) -> _T:
        self._enter()
        try:
            return await submit()
        finally:
            self.in_flight -= 1

    def _enter(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)


class _GatedRequest(Generic[_T]):
    """A request not yet submitted: submitted when its turn comes (`await`) or at once
    (`.result()`). A `Future` of the protocol."""

    def __init__(self, gate: Gate, submit: Callable[[], Future[_T]]) -> None:
        self.gate = gate
        self.submit = submit

    def result(self, timeout: float | None = None) -> _T:
        return self.gate.run_blocking(self.submit)

    def __await__(self) -> Generator[Any, None, _T]:
        return self.gate.run(self.submit).__await__()


class SerialSamplingClient:
    """`inner` with its requests served one at a time through `gate` (see the module
    docstring). Same methods as the protocol's `SamplingClient`."""

    def __init__(self, inner: SamplingClient, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate

    def sample(
        self,
        prompt: tinker_types.ModelInput,
        num_samples: int,
        sampling_params: tinker_types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[tinker_types.SampleResponse]:
        """The inner `sample`, submitted when the slot is free."""
        return _GatedRequest(
            self.gate,
            lambda: self.inner.sample(
                prompt, num_samples, sampling_params, include_prompt_logprobs, topk_prompt_logprobs
            ),
        )

    def compute_logprobs(self, prompt: tinker_types.ModelInput) -> Future[list[float | None]]:
        """The inner `compute_logprobs`, submitted when the slot is free."""
        return _GatedRequest(self.gate, lambda: self.inner.compute_logprobs(prompt))

    def get_tokenizer(self) -> Tokenizer:
        """The inner client's tokenizer."""
        return self.inner.get_tokenizer()
