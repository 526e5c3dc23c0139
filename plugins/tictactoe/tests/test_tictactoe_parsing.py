"""Reply parsing: `[4]` and a bare `4` are moves; anything else is a reason, never an error."""

from __future__ import annotations

import pytest
from cookbook_tictactoe.tictactoe import TicTacToe, parse_move
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("reply", "cell"),
    [
        ("4", 4),
        ("[4]", 4),
        (" [ 4 ] \n", 4),
        ("0", 0),
        ("8\n", 8),
        ("[04]", 4),
        ("12", 12),  # a number, out of range: textarena rejects it, not the parser
        ("I take the centre: [4]", 4),
        ("[4] is best, so [4]", 4),
    ],
)
def test_moves_are_read(reply: str, cell: int) -> None:
    assert parse_move(reply) == cell


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("  \n", "empty reply"),
        ("four", "no move"),
        ("4.", "no move"),
        ("-1", "no move"),
        ("[-1]", "no move"),
        ("4 5", "no move"),
        ("[4] or [5]", "several different moves"),
        ("٤", "non-ASCII"),  # an Arabic-Indic four: a digit to Python, not a move
        ("[4]\ufffd", "non-ASCII"),  # what undecodable sampled bytes turn into
        ("9" * 5000, "out of range"),  # int() of this would raise in Python 3.11
    ],
)
def test_non_moves_give_a_reason(reply: str, reason: str) -> None:
    result = parse_move(reply)
    assert isinstance(result, str)
    assert reason in result


@given(st.text(max_size=40))
def test_parsing_never_raises(reply: str) -> None:
    parsed = TicTacToe().parse_reply(reply)
    assert (parsed.action is None) == bool(parsed.reason)
    if parsed.action is not None:
        assert parsed.action.startswith("[") and parsed.action.endswith("]")


def test_reply_format_per_prompt_style() -> None:
    game = TicTacToe()
    assert game.format_reply("[4]", "compact") == "4"
    assert game.format_reply("[4]", "text") == "[4]"
