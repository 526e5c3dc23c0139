"""Any textarena two-player game as cookbook envs, demonstrations and evals.

A game is one small module on top of this package (a complete one:
`plugins/tictactoe/cookbook_tictactoe/tictactoe.py`; a minimal one:
`plugins/textarena/tests/nim_game.py`):

1. subclass `TwoPlayerGame`: which textarena env to make, a compact prompt for the tiny model,
   reply parsing, legal moves and, optionally, optimal moves (the `optimal` opponent);
2. subclass `TwoPlayerEnvBuilder`, `TwoPlayerDemosBuilder` and `TwoPlayerEvalBuilder` (one per
   scripted opponent) with a `game()` method returning it (evals also name their `opponent()`);
3. register those builders from the plugin's hook module (`cookbook/registry/hookspecs.py`).

Everything else is shared by every game and lives here, one concern per module:

- `game`: the contract a game implements (`TwoPlayerGame`) and one game in progress
  (`GameSession`, textarena as the referee), outcomes and prompt styles;
- `players`: who sits across the board (random, optimal, a frozen checkpoint);
- `opponents`: weighted mixtures of opponents chosen per group, and the pool of the run's own
  frozen snapshots;
- `seats`: which seat the policy takes, in training and in evals;
- `envs`: the RL envs (against an opponent, or self-play), groups and the dataset of groups;
- `demos`: demonstration games for supervised training and the RL warm start;
- `evaluate`: win / draw / loss / illegal-move rates over seeded games;
- `builders`: the chz configs (the user's `env.*`, `dataset.*` and `eval.*` options);
- `seeding`: per-game seeds, so every game replays exactly (deals of games of chance too);
- `catalog`: games by textarena id (`Nim-v0-large`) or by `module:Class`;
- `testing`: scripted text policies that drive a game's envs and evals in tests.

Importing this package is light (chz and cookbook's contracts); textarena, torch and tinker are
imported only when a config is called.
"""

from cookbook_textarena.builders import (
    TwoPlayerDemosBuilder,
    TwoPlayerEnvBuilder,
    TwoPlayerEvalBuilder,
)
from cookbook_textarena.game import (
    GameSession,
    MoveResult,
    Outcome,
    ParsedReply,
    PromptStyle,
    TwoPlayerGame,
)

__all__ = [
    "GameSession",
    "MoveResult",
    "Outcome",
    "ParsedReply",
    "PromptStyle",
    "TwoPlayerDemosBuilder",
    "TwoPlayerEnvBuilder",
    "TwoPlayerEvalBuilder",
    "TwoPlayerGame",
]
