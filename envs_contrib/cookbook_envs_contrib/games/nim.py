"""Nim on textarena's `Nim` envs (`Nim-v0`: piles 3 4 5, `-medium`: 4 2 3 7, `-large`: 5 7 9 11 2).

A move takes at least one object from one pile; whoever takes the last object wins. The compact
prompt is the pile sizes (`3 0 5`), the same for both players (Nim is impartial); the compact
reply is `pile quantity` (`2 3`: three from pile 2), textarena's is `[2 3]`.

Optimal play is known in closed form (Bouton): move to a position whose pile sizes XOR to 0;
from such a position every move loses against perfect play.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import TYPE_CHECKING

from cookbook_textarena import ParsedReply, PromptStyle
from cookbook_textarena.catalog import RegisteredGame

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv

_MOVE = re.compile(r"\[?\s*([0-9]{1,3})\s+([0-9]{1,3})\s*\]?")


def piles_of(env: TextarenaEnv) -> list[int]:
    """The current pile sizes."""
    piles: list[int] = env.state.game_state["piles"]
    return list(piles)


def nim_sum(piles: list[int]) -> int:
    """The XOR of the pile sizes: 0 exactly when the player to move loses against perfect play."""
    return functools.reduce(operator.xor, piles, 0)


def winning_moves(piles: list[int]) -> list[tuple[int, int]]:
    """Every `(pile, quantity)` that leaves a nim-sum of 0 (none from a lost position)."""
    total = nim_sum(piles)
    return [(p, n - (n ^ total)) for p, n in enumerate(piles) if n ^ total < n]


class Nim(RegisteredGame):
    """textarena's Nim on the piles of its id."""

    name = "nim"

    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """The pile sizes, space-separated."""
        return " ".join(str(n) for n in piles_of(env))

    def render_board(self, env: TextarenaEnv) -> str:
        """The pile sizes, `/`-separated."""
        return "/".join(str(n) for n in piles_of(env))

    def parse_reply(self, text: str) -> ParsedReply:
        """`pile quantity` or `[pile quantity]` as the whole reply."""
        match = _MOVE.fullmatch(text.strip())
        if match is None:
            return ParsedReply(None, "no move in reply (expected 'pile quantity', such as 2 3)")
        return ParsedReply(f"[{int(match[1])} {int(match[2])}]")

    def format_reply(self, action: str, style: PromptStyle) -> str:
        """`2 3` in the compact style, `[2 3]` in textarena's."""
        return action.strip("[]") if style == "compact" else action

    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """Every (pile, quantity) that leaves the pile at 0 or more."""
        return [f"[{p} {q}]" for p, n in enumerate(piles_of(env)) for q in range(1, n + 1)]

    def optimal_actions(self, env: TextarenaEnv) -> list[str]:
        """The moves to a nim-sum of 0; from a lost position every legal move (all lose)."""
        moves = winning_moves(piles_of(env))
        return [f"[{p} {q}]" for p, q in moves] or self.legal_actions(env)
