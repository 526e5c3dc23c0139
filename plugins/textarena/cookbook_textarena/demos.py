"""Demonstration games for supervised training (and the RL warm start).

Each move of a demonstration game, by either player, becomes one example: the single-turn
prompt the RL env would show at that position, and the move as the reply. Moves are uniformly
random legal moves, except that with probability `optimal_fraction` an optimal one is played.
Random legal play teaches the format and the rules while keeping every legal move likely, which
is what RL needs to explore from; optimal moves raise the starting strength at some cost in
diversity.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.supervised.types import SupervisedDataset
from cookbook_textarena.game import GameSession
from cookbook_textarena.seeding import derive_seed

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.renderers.base import Renderer
    from cookbook_textarena.game import PromptStyle, TwoPlayerGame


@dataclass(frozen=True)
class Demonstration:
    """One position and the move played there."""

    prompt: str
    reply: str


def demonstration_game(
    game: TwoPlayerGame, style: PromptStyle, rng: random.Random, optimal_fraction: float
) -> list[Demonstration]:
    """Play one game (legal moves only) and return every position with its move."""
    session = GameSession(game)
    demos: list[Demonstration] = []
    while not session.done:
        player = session.current_player
        use_optimal = optimal_fraction > 0 and rng.random() < optimal_fraction
        actions = session.optimal_actions() if use_optimal else session.legal_actions()
        action = rng.choice(actions)
        demos.append(Demonstration(session.prompt(player, style), game.format_reply(action, style)))
        result = session.play(action)
        assert result.legal, f"demonstration move {action!r} was rejected: {result.reason}"
    return demos


def demonstrations(
    game: TwoPlayerGame, style: PromptStyle, num_games: int, seed: int, optimal_fraction: float
) -> list[Demonstration]:
    """Every position of `num_games` seeded demonstration games, in game order."""
    out: list[Demonstration] = []
    for index in range(num_games):
        rng = random.Random(derive_seed(seed, index))
        out.extend(demonstration_game(game, style, rng, optimal_fraction))
    return out


def demonstration_datum(demo: Demonstration, renderer: Renderer) -> tinker_types.Datum:
    """A `cross_entropy` datum: position i of the input predicts token i+1; only the reply
    (and the token that ends it) carries weight."""
    import numpy as np
    from tinker import types as tinker_types

    messages = [
        Message(role="user", content=demo.prompt),
        Message(role="assistant", content=demo.reply),
    ]
    tokens_T, weights_T = renderer.build_supervised_example(
        messages, TrainOnWhat.LAST_ASSISTANT_MESSAGE
    )
    return tinker_types.Datum(
        model_input=tinker_types.ModelInput.from_ints(tokens_T[:-1]),
        loss_fn_inputs={
            "target_tokens": tinker_types.TensorData.from_numpy(
                np.asarray(tokens_T[1:], dtype=np.int64)
            ),
            "weights": tinker_types.TensorData.from_numpy(
                np.asarray(weights_T[1:], dtype=np.float32)
            ),
        },
    )


class DemonstrationDataset(SupervisedDataset):
    """Shuffled batches of demonstration datums (built per batch, so a large set stays cheap)."""

    def __init__(
        self, demos: list[Demonstration], renderer: Renderer, batch_size: int, seed: int
    ) -> None:
        self.demos = demos
        self.renderer = renderer
        self.batch_size = batch_size
        self.seed = seed
        self._order = list(range(len(demos)))
        self.set_epoch(0)

    def set_epoch(self, seed: int = 0) -> None:
        """A new shuffle, the same for the same `seed`."""
        self._order = list(range(len(self.demos)))
        random.Random(derive_seed(self.seed, "epoch", seed)).shuffle(self._order)

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        """Batch `index` of the current epoch (the last one may be short)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (dataset has {len(self)} batches)")
        picked = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return [demonstration_datum(self.demos[i], self.renderer) for i in picked]

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.demos) / self.batch_size)
