"""Nim variants that exercise what some games need from the layer (the textarena tests play
them): chance (piles dealt from Python's global `random`, as textarena deals cards), a score
beyond win / loss, and a game found by its textarena id (`catalog`)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import chz
from cookbook_textarena import TwoPlayerEnvBuilder, TwoPlayerEvalBuilder, TwoPlayerGame
from cookbook_textarena.catalog import RegisteredGame
from nim_game import Nim

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv


def dealt_nim_env() -> TextarenaEnv:
    """textarena's `NimEnv` whose three piles (1-4 objects each) are dealt with the global
    `random` at every reset."""
    from textarena.envs.Nim.env import NimEnv

    class DealtNimEnv(NimEnv):
        def reset(self, num_players: int, seed: int | None = None) -> None:
            self.initial_piles = [random.randint(1, 4) for _ in range(3)]
            super().reset(num_players, seed)

    env: TextarenaEnv = DealtNimEnv()
    return env


class DealtNim(Nim):
    """Nim on dealt piles: a game of chance."""

    name = "dealt_nim"
    chance = True

    def make_textarena_env(self) -> TextarenaEnv:
        """A `NimEnv` dealing its piles."""
        return dealt_nim_env()


class ScoredNim(Nim):
    """Nim scored by how fast it was won: the winner scores 1 / moves, the loser minus that."""

    name = "scored_nim"

    def score(self, env: TextarenaEnv, player: int) -> float:
        """+-1 / moves played, signed by the outcome."""
        reward = env.state.rewards[player]
        return reward / env.state.turn


class RegisteredNim(RegisteredGame, Nim):
    """Nim by textarena id (the pile sizes of the id's variant)."""


@chz.chz
class DealtNimEnvBuilder(TwoPlayerEnvBuilder):
    """Nim on dealt piles."""

    def game(self) -> TwoPlayerGame:
        """Dealt Nim."""
        return DealtNim()


@chz.chz
class ScoredNimEnvBuilder(TwoPlayerEnvBuilder):
    """Scored Nim."""

    def game(self) -> TwoPlayerGame:
        """Scored Nim."""
        return ScoredNim()


@chz.chz
class ScoredNimVsRandomEval(TwoPlayerEvalBuilder):
    """Scored Nim against random play."""

    def game(self) -> TwoPlayerGame:
        """Scored Nim."""
        return ScoredNim()

    def opponent(self) -> str:
        """The random player."""
        return "random"
