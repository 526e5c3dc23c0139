"""The optimal opponent: minimax never loses, against any line of play."""

from __future__ import annotations

import asyncio
import random

from cookbook_textarena.evaluate import play_game
from cookbook_textarena.game import Outcome
from cookbook_textarena.players import OptimalPlayer, Player, RandomPlayer
from cookbook_tictactoe.tictactoe import EMPTY, TicTacToe, best_cells, is_win, other


def _worst_result(cells: str, to_move: str, solver: str) -> int:
    """Over every opponent reply and every optimal choice of the solver: the solver's worst
    result (+1 win, 0 draw, -1 loss)."""
    for mark in ("X", "O"):
        if is_win(cells, mark):
            return 1 if mark == solver else -1
    if EMPTY not in cells:
        return 0
    moves = best_cells(cells, to_move) if to_move == solver else range(9)
    worst = 1
    for i in moves:
        if cells[i] != EMPTY:
            continue
        after = cells[:i] + to_move + cells[i + 1 :]
        worst = min(worst, _worst_result(after, other(to_move), solver))
    return worst


def test_minimax_never_loses_whoever_starts() -> None:
    assert _worst_result(EMPTY * 9, "O", solver="O") == 0  # moving first
    assert _worst_result(EMPTY * 9, "O", solver="X") == 0  # moving second


def test_minimax_takes_a_win_and_blocks_a_loss() -> None:
    # X to move, X X . on top: win at 2
    assert best_cells("XX.OO....", "X") == (2,)
    # X to move, O threatens the middle row and X has no win: block at 5
    assert best_cells("X..OO...X", "X") == (5,)


def _rates(players: tuple[Player, Player], seat: int, games: int) -> dict[Outcome, int]:
    async def run() -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        for i in range(games):
            session = await play_game(TicTacToe(), players, random.Random(i))
            counts[session.outcome(seat)] += 1
        return counts

    return asyncio.run(run())


def test_minimax_beats_random_play_through_textarena() -> None:
    first = _rates((OptimalPlayer(), RandomPlayer()), seat=0, games=60)
    second = _rates((RandomPlayer(), OptimalPlayer()), seat=1, games=60)
    assert first[Outcome.LOSS] == second[Outcome.LOSS] == 0
    # Known rates: about 99% wins moving first, about 80% moving second.
    assert first[Outcome.WIN] >= 54
    assert second[Outcome.WIN] >= 40
    assert sum(first.values()) == sum(second.values()) == 60


def test_minimax_against_itself_always_draws() -> None:
    counts = _rates((OptimalPlayer(), OptimalPlayer()), seat=0, games=10)
    assert counts[Outcome.DRAW] == 10
