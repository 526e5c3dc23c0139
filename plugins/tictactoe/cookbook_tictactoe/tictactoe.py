"""Tic-tac-toe on textarena's `TicTacToe` env: the compact board, reply parsing, an optimal
(minimax) policy, and the configs the plugin registers.

Cells are numbered 0-8, row by row. In textarena player 0 moves first and plays `O`, player 1
plays `X`; the compact prompt instead shows the board from the mover's side (`X` = own marks,
`O` = the opponent's, a digit = a free cell), so one policy serves both seats and the legal
replies are exactly the digits it can see. Nine bytes, no row breaks: `X1O3O567X` is

    X 1 O
    3 O 5
    6 7 X

(the tiny model learned to read this flat form faster than the same board with newlines: legal
replies after 500 SFT steps 0.90-0.95 vs 0.81-0.92 over three seeds, in a quick experiment).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import chz
from cookbook_textarena import (
    ParsedReply,
    PromptStyle,
    TwoPlayerDemosBuilder,
    TwoPlayerEnvBuilder,
    TwoPlayerEvalBuilder,
    TwoPlayerGame,
)

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv

EMPTY = "."
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
"""The eight winning lines."""

_BARE = re.compile(r"[0-9]+")
_BRACKETED = re.compile(r"\[\s*([0-9]+)\s*\]")
_MAX_DIGITS = 4  # longer numbers are out of range anyway; int() of huge strings would raise


def mark_of(player: int) -> str:
    """textarena's mark for `player` (0 moves first with `O`)."""
    return "O" if player == 0 else "X"


def other(mark: str) -> str:
    """The opponent's mark."""
    return "X" if mark == "O" else "O"


def cells_of(env: TextarenaEnv) -> str:
    """The board as 9 characters (`X`, `O`, `.`), row by row."""
    board: list[list[str]] = env.state.game_state["board"]
    return "".join(cell or EMPTY for row in board for cell in row)


def is_win(cells: str, mark: str) -> bool:
    """Whether `mark` holds a full line."""
    return any(cells[a] == cells[b] == cells[c] == mark for a, b, c in LINES)


def parse_move(text: str) -> int | str:
    """The cell a reply names, or why it names none.

    Accepted: a bare number (`4`) or a bracketed one (`[4]`) as the whole reply, or exactly one
    distinct bracketed number inside longer text (`I take the centre: [4]`, as chat models
    answer textarena's prompt). Range and occupancy are textarena's to judge."""
    stripped = text.strip()
    if not stripped:
        return "empty reply"
    if not text.isascii():
        return "reply has non-ASCII characters"
    if _BARE.fullmatch(stripped):
        digits = stripped
    else:
        found = {m.strip() for m in _BRACKETED.findall(stripped)}
        if not found:
            return "no move in reply (expected a cell number such as 4 or [4])"
        if len({d.lstrip("0") for d in found}) > 1:
            return "several different moves in reply"
        digits = found.pop()
    if len(digits.lstrip("0")) > _MAX_DIGITS:
        return f"cell {digits[:8]}... is out of range 0-8"
    return int(digits)


@functools.cache
def _value(cells: str, mark: str) -> int:
    """Minimax value for `mark` to move: positive wins (larger = sooner), 0 draws, negative loses."""
    best = -100
    for i, cell in enumerate(cells):
        if cell != EMPTY:
            continue
        after = cells[:i] + mark + cells[i + 1 :]
        free = after.count(EMPTY)
        if is_win(after, mark):
            value = free + 1
        elif free == 0:
            value = 0
        else:
            value = -_value(after, other(mark))
        best = max(best, value)
    return best


@functools.cache
def best_cells(cells: str, mark: str) -> tuple[int, ...]:
    """Every optimal cell for `mark` to move (the fastest win, else a draw, else the slowest loss)."""
    scores: dict[int, int] = {}
    for i, cell in enumerate(cells):
        if cell != EMPTY:
            continue
        after = cells[:i] + mark + cells[i + 1 :]
        free = after.count(EMPTY)
        if is_win(after, mark):
            scores[i] = free + 1
        elif free == 0:
            scores[i] = 0
        else:
            scores[i] = -_value(after, other(mark))
    if not scores:
        raise ValueError(f"no free cell on board {cells!r}")
    top = max(scores.values())
    return tuple(i for i, s in scores.items() if s == top)


def _symmetries() -> tuple[tuple[int, ...], ...]:
    """The board's 8 symmetries as cell permutations (`view[i] = cells[p[i]]`), the identity
    first: each power of a quarter turn, and each of those mirrored left to right."""
    turn = (6, 3, 0, 7, 4, 1, 8, 5, 2)
    mirror = (2, 1, 0, 5, 4, 3, 8, 7, 6)
    out = [tuple(range(9))]
    for _ in range(3):
        out.append(tuple(out[-1][turn[i]] for i in range(9)))
    return (*out, *(tuple(p[mirror[i]] for i in range(9)) for p in out))


SYMMETRIES = _symmetries()
"""The board's rotations and mirror images as cell permutations (`view[i] = cells[p[i]]`),
the identity first."""


def compact_board(cells: str, mover: str) -> str:
    """The board from `mover`'s side, row by row: `X` own, `O` opponent's, digits for free cells."""
    return "".join(
        str(i) if c == EMPTY else ("X" if c == mover else "O") for i, c in enumerate(cells)
    )


class TicTacToe(TwoPlayerGame):
    """textarena's `TicTacToe-v0` with cookbook's prompt, parsing and solver."""

    name = "tictactoe"

    def make_textarena_env(self) -> TextarenaEnv:
        """A fresh unwrapped `TicTacToeEnv`."""
        from textarena.envs.TicTacToe.env import TicTacToeEnv

        return TicTacToeEnv()

    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """9 bytes: the cells from `player`'s side."""
        return compact_board(cells_of(env), mark_of(player))

    def symmetric_prompts(
        self, env: TextarenaEnv, player: int, actions: list[str]
    ) -> list[tuple[str, list[str]]]:
        """The board's 7 other rotations and mirror images: the compact prompt of each and
        every `[N]` of `actions` moved to its cell there."""
        cells = cells_of(env)
        out = []
        for p in SYMMETRIES[1:]:
            view = "".join(cells[p[i]] for i in range(9))
            where = {f"[{p[i]}]": f"[{i}]" for i in range(9)}
            out.append((compact_board(view, mark_of(player)), [where[a] for a in actions]))
        return out

    def render_board(self, env: TextarenaEnv) -> str:
        """Absolute marks (player 0 is `O`), `.` for free cells, rows joined by `/`."""
        cells = cells_of(env)
        return "/".join(cells[r * 3 : r * 3 + 3] for r in range(3))

    def parse_reply(self, text: str) -> ParsedReply:
        """`[N]` for textarena, or the reason the reply is no move."""
        move = parse_move(text)
        if isinstance(move, str):
            return ParsedReply(None, move)
        return ParsedReply(f"[{move}]")

    def format_reply(self, action: str, style: PromptStyle) -> str:
        """`4` in the compact style (two tokens with the end token), `[4]` in textarena's."""
        return action.strip("[]") if style == "compact" else action

    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """`[N]` for every free cell."""
        return [f"[{i}]" for i, c in enumerate(cells_of(env)) if c == EMPTY]

    def candidate_actions(self, env: TextarenaEnv) -> list[str]:
        """`[N]` for all nine cells: an occupied one is an illegal move, which a search then
        scores as the loss it is."""
        return [f"[{i}]" for i in range(9)]

    def optimal_actions(self, env: TextarenaEnv) -> list[str]:
        """`[N]` for every minimax-optimal cell of the player to move."""
        mover = mark_of(env.state.current_player_id)
        return [f"[{i}]" for i in best_cells(cells_of(env), mover)]


@chz.chz
class TicTacToeEnvBuilder(TwoPlayerEnvBuilder):
    """Tic-tac-toe (textarena) against random / optimal / checkpoint opponents, or self-play."""

    def game(self) -> TwoPlayerGame:
        """Tic-tac-toe."""
        return TicTacToe()


@chz.chz
class TicTacToeDemosBuilder(TwoPlayerDemosBuilder):
    """Demonstration tic-tac-toe games: random legal moves, optionally some optimal ones."""

    def game(self) -> TwoPlayerGame:
        """Tic-tac-toe."""
        return TicTacToe()


@chz.chz
class TicTacToeVsRandomEval(TwoPlayerEvalBuilder):
    """Win / draw / loss / illegal rates against uniformly random legal play."""

    def game(self) -> TwoPlayerGame:
        """Tic-tac-toe."""
        return TicTacToe()

    def opponent(self) -> str:
        """The random player."""
        return "random"


@chz.chz
class TicTacToeVsOptimalEval(TwoPlayerEvalBuilder):
    """Win / draw / loss / illegal rates against minimax play (a perfect player draws at best)."""

    def game(self) -> TwoPlayerGame:
        """Tic-tac-toe."""
        return TicTacToe()

    def opponent(self) -> str:
        """The minimax player."""
        return "optimal"
