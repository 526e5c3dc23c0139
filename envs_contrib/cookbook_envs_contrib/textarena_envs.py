"""The configs that play textarena two-player games by id on the `cookbook_textarena` layer: the
env, its demonstration games and its evals, each with a `game_id` option.

`game_id` is a textarena id whose family has a game module here (`games.FAMILIES`:
`ConnectFour-v0`, `ConnectFour-v0-large`, `Nim-v0`, `Nim-v0-medium`, `Nim-v0-large`,
`KuhnPoker-v0`, `KuhnPoker-v0-short`, ...), or `module:Class` naming any `TwoPlayerGame`.
Everything else (opponents, seats, self-play, rewards, prompt styles) is the layer's, with the
same options as every game built on it.

The option is `game_id` rather than `game`: the layer's builders already have a `game()` method
(the game they play), and a chz field cannot share its name.

The named envs (`connect-four`, `nim`, `kuhn-poker`) are the same configs with another default
id, so `env.game_id=Nim-v0-large` works on `nim` as on `textarena`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import chz
from cookbook_textarena import TwoPlayerDemosBuilder, TwoPlayerEnvBuilder, TwoPlayerEvalBuilder

from cookbook_envs_contrib.games import FAMILIES

if TYPE_CHECKING:
    from cookbook_textarena import TwoPlayerGame

GAME_ID_DOC = (
    "a textarena id played by a game module of this package (ConnectFour-v0, "
    "ConnectFour-v0-large, Nim-v0, Nim-v0-large, KuhnPoker-v0, KuhnPoker-v0-short, ...) or "
    "module:Class naming your own TwoPlayerGame"
)


def _load(game_id: str) -> TwoPlayerGame:
    from cookbook_textarena.catalog import load_game

    return load_game(game_id, FAMILIES)


# --- any game, by id -------------------------------------------------------------------------


@chz.chz
class TextarenaEnvBuilder(TwoPlayerEnvBuilder):
    """A textarena two-player game by id, against random / optimal / checkpoint opponents or in
    self-play (the optimal opponent needs a game with a solver)."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC)

    def game(self) -> TwoPlayerGame:
        """The game of `game_id`."""
        return _load(self.game_id)

    def reward_range(self) -> tuple[float, float]:
        """Win +1, loss -1 (a scored game's score is in between), or the illegal-move penalty."""
        return (min(-1.0, self.illegal_penalty), max(1.0, self.illegal_penalty))


@chz.chz
class TextarenaDemosBuilder(TwoPlayerDemosBuilder):
    """Demonstration games of a textarena game by id: random legal moves (optionally some
    optimal ones, for games with a solver)."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC + "; the env's")

    def game(self) -> TwoPlayerGame:
        """The game of `game_id`."""
        return _load(self.game_id)


@chz.chz
class TextarenaVsRandomEval(TwoPlayerEvalBuilder):
    """Win / draw / loss / illegal rates (and the mean score of a scored game) against random
    legal play."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC)

    def game(self) -> TwoPlayerGame:
        """The game of `game_id`."""
        return _load(self.game_id)

    def opponent(self) -> str:
        """The random player."""
        return "random"


@chz.chz
class TextarenaVsOptimalEval(TwoPlayerEvalBuilder):
    """The same rates against the game's optimal policy (games with a solver only)."""

    game_id: str = chz.field(default="Nim-v0", doc=GAME_ID_DOC + " (with a solver)")

    def game(self) -> TwoPlayerGame:
        """The game of `game_id`."""
        return _load(self.game_id)

    def opponent(self) -> str:
        """The optimal player."""
        return "optimal"


# --- the verified games, by name -------------------------------------------------------------


@chz.chz
class ConnectFourEnvBuilder(TextarenaEnvBuilder):
    """Connect Four (textarena), the policy against random or checkpoint opponents, or
    self-play. No solver: the optimal opponent is refused."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC)


@chz.chz
class ConnectFourDemosBuilder(TextarenaDemosBuilder):
    """Connect Four games of random legal moves."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC + "; the env's")


@chz.chz
class ConnectFourVsRandomEval(TextarenaVsRandomEval):
    """Connect Four against random legal play, both seats."""

    game_id: str = chz.field(default="ConnectFour-v0", doc=GAME_ID_DOC)


@chz.chz
class NimEnvBuilder(TextarenaEnvBuilder):
    """Nim (textarena, piles 3 4 5), against random / optimal (nim-sum) / checkpoint opponents,
    or self-play."""

    game_id: str = chz.field(default="Nim-v0", doc=GAME_ID_DOC)


@chz.chz
class NimDemosBuilder(TextarenaDemosBuilder):
    """Nim games of random legal moves."""

    game_id: str = chz.field(default="Nim-v0", doc=GAME_ID_DOC + "; the env's")


@chz.chz
class NimVsRandomEval(TextarenaVsRandomEval):
    """Nim against random legal play, both seats."""

    game_id: str = chz.field(default="Nim-v0", doc=GAME_ID_DOC)


@chz.chz
class NimVsOptimalEval(TextarenaVsOptimalEval):
    """Nim against perfect (nim-sum) play, both seats: only the first seat of 3 4 5 can win."""

    game_id: str = chz.field(default="Nim-v0", doc=GAME_ID_DOC + " (with a solver)")


@chz.chz
class KuhnPokerEnvBuilder(TextarenaEnvBuilder):
    """Kuhn poker (textarena, 3 hands, bets counted), rewarded in chips won, against random /
    optimal (Nash equilibrium) / checkpoint opponents, or self-play."""

    game_id: str = chz.field(default="KuhnPoker-v0", doc=GAME_ID_DOC)


@chz.chz
class KuhnPokerDemosBuilder(TextarenaDemosBuilder):
    """Kuhn poker games of random legal actions."""

    game_id: str = chz.field(default="KuhnPoker-v0", doc=GAME_ID_DOC + "; the env's")


@chz.chz
class KuhnPokerVsRandomEval(TextarenaVsRandomEval):
    """Kuhn poker against random legal play, both seats: rates and `mean_score` (chips)."""

    game_id: str = chz.field(default="KuhnPoker-v0", doc=GAME_ID_DOC)


@chz.chz
class KuhnPokerVsOptimalEval(TextarenaVsOptimalEval):
    """Kuhn poker against the Nash equilibrium, both seats (its best `mean_score` is 0)."""

    game_id: str = chz.field(default="KuhnPoker-v0", doc=GAME_ID_DOC + " (with a solver)")
