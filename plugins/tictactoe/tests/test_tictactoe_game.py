"""Games on textarena's TicTacToe: outcomes, illegal moves and the two prompt styles."""

from __future__ import annotations

import random

import pytest
from cookbook_textarena.game import GameSession, Outcome
from cookbook_tictactoe.tictactoe import TicTacToe


def play(replies: list[str]) -> GameSession:
    session = GameSession(TicTacToe())
    for reply in replies:
        session.play(reply)
    return session


@pytest.mark.parametrize(
    ("replies", "winner"),
    [
        (["0", "3", "1", "4", "2"], 0),  # top row for the first player
        (["4", "0", "8", "3", "2", "6"], 1),  # left column for the second player
        (["[0]", "[1]", "[4]", "[2]", "[8]"], 0),  # diagonal, bracketed replies
        (["2", "0", "4", "1", "6"], 0),  # anti-diagonal
    ],
)
def test_wins_are_scored_for_both_players(replies: list[str], winner: int) -> None:
    session = play(replies)
    assert session.done
    assert session.outcome(winner) == Outcome.WIN
    assert session.outcome(1 - winner) == Outcome.LOSS
    assert session.num_moves == len(replies)


def test_full_board_without_line_is_a_draw() -> None:
    # O X O / O X X / X O O : no line for anyone
    session = play(["0", "1", "2", "4", "3", "5", "7", "6", "8"])
    assert session.done
    assert session.outcome(0) == session.outcome(1) == Outcome.DRAW
    assert session.board() == "OXO/OXX/XOO"


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        (["4", "4"], "occupied"),
        (["4", "9"], "between 0 and 8"),
        (["4", "[12]"], "between 0 and 8"),
        (["4", ""], "empty reply"),
        (["4", "centre please"], "no move"),
        (["4", "é"], "non-ASCII"),
    ],
)
def test_illegal_move_ends_the_game_against_the_mover(replies: list[str], reason: str) -> None:
    session = play(replies)
    assert session.done
    last = session.history[-1]
    assert not last.legal and reason in last.reason
    assert session.outcome(1) == Outcome.ILLEGAL
    assert session.outcome(0) == Outcome.OPPONENT_ILLEGAL
    assert session.num_moves == 1


def test_compact_prompt_shows_the_board_from_the_movers_side() -> None:
    session = play(["4", "0"])  # player 0 (O) took the centre, player 1 (X) the corner
    assert session.prompt(0, "compact") == "O123X5678"
    assert session.prompt(1, "compact") == "X123O5678"
    assert len(session.prompt(0, "compact").encode()) < 24


def test_text_prompt_is_textarenas_observation() -> None:
    session = play(["4"])
    text = session.prompt(1, "text")
    assert "You are Player 1 in Tic Tac Toe." in text
    assert "Current Board" in text and "Available Moves" in text
    assert "'[4]'" not in text.split("Available Moves")[1]
    # asking again (a self-play seat may) gives the same view
    assert session.prompt(1, "text") == text


def test_sessions_leave_global_random_alone() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    play(["0", "3", "1", "4", "2"])
    assert random.random() == expected
