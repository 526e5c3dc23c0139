"""Shared pieces of the tic-tac-toe tests: the tiny model's build context and scripted policies
that read the compact board the way a model would (the generic drivers are
`cookbook_textarena.testing`'s).

A plain module rather than a conftest.py, so its name cannot clash with other test folders."""

from __future__ import annotations

import random

from cookbook_textarena.testing import (
    TOKENIZER,
    ScriptedSamplingClient,
    TextPolicy,
    play_env,
    play_group,
    reply_tokens,
    user_text,
)
from cookbook_tictactoe.tictactoe import best_cells

from cookbook.build_context import BuildContext
from cookbook.testing import tiny_context

__all__ = [
    "RENDERER",
    "TOKENIZER",
    "ScriptedSamplingClient",
    "TextPolicy",
    "first_free",
    "free_cells",
    "optimal",
    "play_env",
    "play_group",
    "random_free",
    "reply_tokens",
    "tiny_ctx",
    "user_text",
]

RENDERER = tiny_context().renderer


def tiny_ctx(seed: int = 0, group_size: int = 4, groups_per_batch: int = 2) -> BuildContext:
    """What the runner passes to builders for the built-in tiny model (small batches)."""
    return tiny_context(seed=seed, group_size=group_size, groups_per_batch=groups_per_batch)


def free_cells(board: str) -> list[int]:
    """Free cells of a compact board (the digits it shows)."""
    return [int(c) for c in board if c.isdigit()]


def first_free(board: str) -> str:
    """Always the lowest free cell."""
    return str(free_cells(board)[0])


def random_free(rng: random.Random) -> TextPolicy:
    """A uniformly random free cell."""
    return lambda board: str(rng.choice(free_cells(board)))


def optimal(board: str) -> str:
    """A minimax move read from the compact board (`X` = own marks)."""
    cells = "".join("." if c.isdigit() else c for c in board.replace("\n", ""))
    return str(best_cells(cells, "X")[0])
