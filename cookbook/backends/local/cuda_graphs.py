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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from cookbook.backends.local.generation import SlotDecoder
    from cookbook.backends.local.kv_cache import SlotCache

LENGTH_STEP = 64
"""Attended lengths are captured in multiples of this."""


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
        # Warm up on a side stream (lazy initialisations must not happen during capture). The
        # warm-up writes the same keys and values as the replay that follows.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward(rows, length)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: a training client's thread may use the GPU while this one captures.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            logits = self._forward(rows, length)
        self._graphs[(rows, length)] = (graph, logits)
        self.captures += 1
        return graph, logits
