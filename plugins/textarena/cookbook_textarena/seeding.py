"""Seeds derived from a run seed and a position, so every game is reproducible on its own."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from `parts`, stable across processes and Python versions (no `hash()`).

    Every game gets its own `random.Random(derive_seed(run_seed, batch, group, game))`: games
    replay exactly however the event loop interleaves them, and the games of a group meet
    different opponent moves."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
