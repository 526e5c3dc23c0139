"""Win / draw / loss / illegal-move rates of a model against a scripted opponent over seeded
games, half of them in each seat (or all in one)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.eval.types import Evaluator
from cookbook_textarena.game import GameSession, Outcome
from cookbook_textarena.players import ModelPlayer, Player, scripted_player
from cookbook_textarena.seeding import derive_seed

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.renderers.base import Renderer
    from cookbook_textarena.game import PromptStyle, TwoPlayerGame


@dataclass(frozen=True)
class GameRecord:
    """One finished eval game."""

    seat: int
    """The model's seat (0 moves first)."""
    outcome: Outcome
    """How it went for the model."""
    length: int
    """Legal moves played."""


async def play_game(
    game: TwoPlayerGame, players: tuple[Player, Player], rng: random.Random
) -> GameSession:
    """Play one game to the end; `players[i]` moves for player `i`."""
    session = GameSession(game)
    while not session.done:
        mover = players[session.current_player]
        session.play(await mover.reply(session, rng))
    return session


def rates(records: list[GameRecord]) -> dict[str, float]:
    """The eval's metrics: outcome rates overall and per seat played, mean game length."""
    n = max(len(records), 1)
    metrics: dict[str, float] = {"games": float(len(records))}
    for outcome in (Outcome.WIN, Outcome.DRAW, Outcome.LOSS, Outcome.ILLEGAL):
        name = "illegal" if outcome == Outcome.ILLEGAL else outcome.value
        metrics[f"{name}_rate"] = sum(r.outcome == outcome for r in records) / n
    for seat, label in ((0, "first"), (1, "second")):
        seated = [r for r in records if r.seat == seat]
        if seated:
            metrics[f"{label}_seat_win_rate"] = sum(r.outcome == Outcome.WIN for r in seated) / len(
                seated
            )
    metrics["mean_game_length"] = sum(r.length for r in records) / n
    return metrics


class TwoPlayerEvaluator(Evaluator):
    """Plays `num_games` games concurrently (so a backend that batches concurrent sampling
    requests serves them together), game i in seat `seats[i % len(seats)]`: with both seats, even
    games open and odd ones answer. `opponent` is one of `players.SCRIPTED_OPPONENTS`."""

    def __init__(
        self,
        game: TwoPlayerGame,
        opponent: str,
        renderer: Renderer,
        style: PromptStyle,
        num_games: int,
        seed: int,
        max_tokens: int,
        temperature: float,
        seats: tuple[int, ...] = (0, 1),
    ) -> None:
        self.game = game
        self.opponent = opponent
        self.renderer = renderer
        self.style = style
        self.num_games = num_games
        self.seats = seats
        self.seed = seed
        self.max_tokens = max_tokens
        self.temperature = temperature

    async def _one(self, index: int, model: ModelPlayer) -> GameRecord:
        seat = self.seats[index % len(self.seats)]
        opponent = scripted_player(self.opponent)
        players: tuple[Player, Player] = (model, opponent) if seat == 0 else (opponent, model)
        session = await play_game(self.game, players, random.Random(derive_seed(self.seed, index)))
        return GameRecord(seat, session.outcome(seat), session.num_moves)

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Rates over the seeded games (the same games for every checkpoint)."""
        model = ModelPlayer(
            sampling_client, self.renderer, self.style, self.max_tokens, self.temperature
        )
        records = await asyncio.gather(*(self._one(i, model) for i in range(self.num_games)))
        return rates(list(records))
