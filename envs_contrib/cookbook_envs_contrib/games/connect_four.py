"""Connect Four on textarena's `ConnectFour` envs (`ConnectFour-v0`, `ConnectFour-v0-large`).

The compact prompt is the board from the mover's side, top row first, rows joined by `/`: `X` its
own discs, `O` the opponent's, `.` an empty cell, except that an empty cell of the top row shows
its column's label: the columns still open are exactly the labels the model can see, and the
reply is one of them. On the 7-column board (42 cells, 47 bytes)

    01.3456/..X..../..O..../..X..../..O..../.XOXO..

column 2 is full and the reply is a digit. Columns are labelled `0-9` then `a-z`, so the
15-column `-large` board keeps one-character replies (`b` is column 11); textarena's own
`[col 11]` (the text style) is accepted as well.

There is no solver: the `optimal` opponent and eval are refused up front.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cookbook_textarena import ParsedReply, PromptStyle
from cookbook_textarena.catalog import RegisteredGame

from cookbook.errors import UserError

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv

LABELS = string.digits + string.ascii_lowercase
"""Column labels of the compact style: `0`-`9`, then `a`-`z` (up to 36 columns)."""

EMPTY = "."
_BRACKETED = re.compile(r"\[\s*(?:col\s*)?([0-9]{1,3})\s*\]", re.IGNORECASE)


def board_of(env: TextarenaEnv) -> list[list[str]]:
    """The board, top row first (`X` player 0, `O` player 1, `.` empty)."""
    board: list[list[str]] = env.state.game_state["board"]
    return board


def disc_of(player: int) -> str:
    """textarena's disc for `player` (0 moves first with `X`)."""
    return "X" if player == 0 else "O"


def compact_board(board: list[list[str]], player: int) -> str:
    """The board from `player`'s side (see the module docstring)."""
    own = disc_of(player)
    rows = []
    for r, row in enumerate(board):
        cells = []
        for c, cell in enumerate(row):
            if cell == EMPTY:
                cells.append(LABELS[c] if r == 0 else EMPTY)
            else:
                cells.append("X" if cell == own else "O")
        rows.append("".join(cells))
    return "/".join(rows)


def parse_column(text: str) -> int | str:
    """The column a reply names, or why it names none: a column label (`4`, `b`) or a number
    (`12`) as the whole reply, or one bracketed number anywhere (`[4]`, `[col 11]`). Range and
    fullness are textarena's to judge."""
    stripped = text.strip()
    if not stripped:
        return "empty reply"
    if len(stripped) == 1 and stripped.lower() in LABELS:
        return LABELS.index(stripped.lower())
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 3:
        return int(stripped)
    found = {int(m) for m in _BRACKETED.findall(stripped)}
    if not found:
        return "no move in reply (expected a column such as 3 or [col 3])"
    if len(found) > 1:
        return "several different moves in reply"
    return found.pop()


class ConnectFour(RegisteredGame):
    """textarena's Connect Four (`ConnectFour-v0`: 6 rows, 7 columns), with its visible board."""

    name = "connect_four"

    def check_variant(self, arguments: Mapping[str, object]) -> None:
        """The blind variant hides the board from the players, which the compact prompt shows;
        boards wider than the 36 column labels cannot be written compactly."""
        if arguments.get("is_open") is False:
            raise UserError(f"{self.env_id} hides the board; play ConnectFour-v0 or -v0-large")
        num_cols = arguments.get("num_cols", 7)
        if isinstance(num_cols, int) and num_cols > len(LABELS):
            raise UserError(f"{self.env_id} has {num_cols} columns; at most {len(LABELS)} work")

    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """The board from `player`'s side, open columns labelled in the top row."""
        return compact_board(board_of(env), player)

    def render_board(self, env: TextarenaEnv) -> str:
        """Absolute discs (`X` moved first), rows top first, joined by `/`."""
        return "/".join("".join(row) for row in board_of(env))

    def parse_reply(self, text: str) -> ParsedReply:
        """`[col N]` for textarena, or the reason the reply is no move."""
        column = parse_column(text)
        if isinstance(column, str):
            return ParsedReply(None, column)
        return ParsedReply(f"[col {column}]")

    def format_reply(self, action: str, style: PromptStyle) -> str:
        """The column label (`3`, `b`) in the compact style, `[col 3]` in textarena's."""
        if style == "text":
            return action
        return LABELS[int(action.removeprefix("[col ").removesuffix("]"))]

    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """`[col N]` for every column whose top cell is empty, left to right."""
        top = board_of(env)[0]
        return [f"[col {c}]" for c, cell in enumerate(top) if cell == EMPTY]
