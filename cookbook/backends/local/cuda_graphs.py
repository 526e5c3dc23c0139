"""Decode steps replayed from CUDA graphs.

At decode sizes a GPU spends most of a step waiting for the host to launch hundreds of small
kernels. The decode forward is the same computation at every step, only the values of its inputs
change, so `GraphedDecode` captures it once per shape and replays it:

- rows are rounded up to a power of two (at most the cache's slots): the extra rows are free
  slots, which compute values nothing reads and write only into their own slot;
- the attended length is rounded up to a multiple of 64 (at most the cache's length): keys past a
  row's position are masked.

A replay reads the engine's per-slot buffers (`token`, `offset`) and a one-element step tensor,
and leaves the logits in a static output. The graphs refer to those buffers and to the cache, so
the engine drops this object whenever it reallocates them. Without capture (any device but CUDA)
`run` computes the same bucketed forward eagerly, which is how the tests cover it on CPU.

An RL run captures while other threads use the GPU: each step's snapshot sampler has its own
engine thread, the previous step's may still decode, and the training client updates meanwhile.
So each object captures on a stream of its own (`torch.cuda.graph` uses one capture stream per
process, and its entry synchronises the device: either invalidates a capture running on another
thread), captures are serialised by one process-wide lock, and the capture mode is thread-local
(other threads may launch work meanwhile).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from cookbook.backends.local.generation import SlotDecoder
    from cookbook.backends.local.kv_cache import SlotCache

LENGTH_STEP = 64
"""Attended lengths are captured in multiples of this."""

_CAPTURE_LOCK = threading.Lock()
"""Held for each warm-up and capture: one capture at a time in the process."""


class GraphedDecode:
    """The decode forward over `cache`, captured per (rows, length) bucket."""

    def __init__(
        self,
        decoder: SlotDecoder,
        cache: SlotCache,
        state: dict[str, torch.Tensor],
        *,
        max_position: int,
        capture: bool | None = None,
    ) -> None:
        """`state` holds the engine's `token` and `offset` buffers (`[slots, 1]`); positions are
        clamped to `max_position` (free slots keep counting past their last row)."""
        self._decoder = decoder
        self._cache = cache
        self._token = state["token"]
        self._offset = state["offset"]
        self._max_position = max_position
        device = cache.device
        self._capture = device.type == "cuda" if capture is None else capture
        self._step = torch.zeros((), dtype=torch.long, device=device)
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._stream: torch.cuda.Stream | None = None  # created at the first capture
        self.captures = 0
        """Graphs captured so far."""

    def buckets(self, rows: int, read_length: int) -> tuple[int, int]:
        """The (rows, length) shape a decode of `rows` rows attending `read_length` runs at."""
        size = 1
        while size < rows:
            size *= 2
        length = -(-read_length // LENGTH_STEP) * LENGTH_STEP
        return min(size, self._cache.slots), min(length, self._cache.length)

    def run(self, rows: int, step: int, read_length: int) -> torch.Tensor:
        """Logits `[rows, V]` of the decode forward of slots `[0, rows)` at `step`."""
        bucket = self.buckets(rows, read_length)
        self._step.fill_(step)
        if not self._capture:
            return self._forward(*bucket)[:rows]
        entry = self._graphs.get(bucket)
        if entry is None:
            entry = self._record(*bucket)
        graph, logits = entry
        graph.replay()
        return logits[:rows]

    def _forward(self, rows: int, length: int) -> torch.Tensor:
        positions_B_1 = (self._offset[:rows] + self._step).clamp_(max=self._max_position)
        self._cache.plan_decode(rows, positions_B_1, length)
        return self._decoder(self._token[:rows], self._cache)

    def _record(self, rows: int, length: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self._cache.device)
        stream = self._stream
        graph = torch.cuda.CUDAGraph()
        with _CAPTURE_LOCK:
            # Warm up on the capture stream (lazy initialisations must not happen during
            # capture); the warm-up writes the same keys and values as the replay that follows.
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._forward(rows, length)
                # capture_begin/end, not `torch.cuda.graph`: its entry synchronises the whole
                # device and empties the allocator's cache, stalling every other thread's work
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    logits = self._forward(rows, length)
                finally:
                    graph.capture_end()
            torch.cuda.current_stream().wait_stream(stream)
        self._graphs[(rows, length)] = (graph, logits)
        self.captures += 1
        return graph, logits
