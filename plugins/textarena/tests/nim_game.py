"""A minimal game on the two-player layer: textarena's Nim (take objects from one pile; whoever
takes the last object wins), in one small module. The textarena tests play it to show the layer
holds no tic-tac-toe assumption; it is also the shortest example of a game to copy.

A move is `[pile quantity]`; the compact prompt is the pile sizes (`1 0 3`), the compact reply
`pile quantity` (`2 3`). Optimal play is known in closed form: leave piles whose sizes XOR to 0.
"""

from __future__ import annotations

import functools
import operator
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

PILES = (1, 2, 3)
"""Six objects: games of 2-6 moves. Their sizes XOR to 0, so the second player wins."""

_MOVE = re.compile(r"\[?\s*([0-9])\s+([0-9])\s*\]?")


def piles_of(env: TextarenaEnv) -> list[int]:
    """The current pile sizes."""
    piles: list[int] = env.state.game_state["piles"]
    return list(piles)


class Nim(TwoPlayerGame):
    """textarena's `NimEnv` on `PILES`."""

    name = "nim"

    def make_textarena_env(self) -> TextarenaEnv:
        """A fresh unwrapped `NimEnv`."""
        from textarena.envs.Nim.env import NimEnv

        return NimEnv(piles=list(PILES))

    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """The pile sizes (the same for both players: Nim is impartial)."""
        return " ".join(str(n) for n in piles_of(env))

    def render_board(self, env: TextarenaEnv) -> str:
        """The pile sizes, `/`-separated."""
        return "/".join(str(n) for n in piles_of(env))

    def parse_reply(self, text: str) -> ParsedReply:
        """`[p q]` or `p q` as the whole reply."""
        match = _MOVE.fullmatch(text.strip())
        if match is None:
            return ParsedReply(None, "no move in reply (expected 'pile quantity', such as 2 3)")
        return ParsedReply(f"[{match[1]} {match[2]}]")

    def format_reply(self, action: str, style: PromptStyle) -> str:
        """`2 3` in the compact style, `[2 3]` in textarena's."""
        return action.strip("[]") if style == "compact" else action

    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """Every (pile, quantity) that leaves a pile at 0 or more."""
        return [f"[{p} {q}]" for p, n in enumerate(piles_of(env)) for q in range(1, n + 1)]

    def optimal_actions(self, env: TextarenaEnv) -> list[str]:
        """The moves that leave a nim-sum of 0; every legal move when none does (a lost game)."""
        piles = piles_of(env)
        total = functools.reduce(operator.xor, piles, 0)
        winning = [f"[{p} {n - (n ^ total)}]" for p, n in enumerate(piles) if n ^ total < n]
        return winning or self.legal_actions(env)


@chz.chz
class NimEnvBuilder(TwoPlayerEnvBuilder):
    """Nim against random / optimal / checkpoint opponents, or self-play."""

    def game(self) -> TwoPlayerGame:
        """Nim."""
        return Nim()


@chz.chz
class NimDemosBuilder(TwoPlayerDemosBuilder):
    """Demonstration Nim games."""

    def game(self) -> TwoPlayerGame:
        """Nim."""
        return Nim()


@chz.chz
class NimVsOptimalEval(TwoPlayerEvalBuilder):
    """Rates against perfect Nim play."""

    def game(self) -> TwoPlayerGame:
        """Nim."""
        return Nim()

    def opponent(self) -> str:
        """The nim-sum player."""
        return "optimal"


class NoSolverNim(Nim):
    """Nim without its solver: the `optimal` opponent is refused up front."""

    optimal_actions = TwoPlayerGame.optimal_actions


@chz.chz
class NoSolverNimEnvBuilder(TwoPlayerEnvBuilder):
    """Nim without a solver."""

    def game(self) -> TwoPlayerGame:
        """Nim without a solver."""
        return NoSolverNim()
