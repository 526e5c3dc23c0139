"""Seeds derived from a run seed and a position, so every game is reproducible on its own, and
the random stream a game of chance draws its deals from."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from `parts`, stable across processes and Python versions (no `hash()`).

    Every game gets its own `random.Random(derive_seed(run_seed, batch, group, game))`: games
    replay exactly however the event loop interleaves them, and the games of a group meet
    different opponent moves."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class ChanceStream:
    """A random stream of one game, lent to code that draws from Python's global `random`
    (textarena deals cards and rolls dice with it): `with stream.active(): env.step(...)`.

    Inside the block the global generator holds this stream's state; on the way out the stream
    keeps where it got to and the global generator gets its own state back. Games interleaved by
    an event loop therefore each draw their own sequence, whatever order their turns run in
    (every block is synchronous: nothing else runs in this thread meanwhile)."""

    def __init__(self, seed: int | None) -> None:
        self._state = random.Random(seed).getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        """The global `random` draws from this stream for the duration of the block."""
        outside = random.getstate()
        random.setstate(self._state)
        try:
            yield
        finally:
            self._state = random.getstate()
            random.setstate(outside)
