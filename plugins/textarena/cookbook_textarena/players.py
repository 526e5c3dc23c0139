"""Who sits across the board: scripted players (random, optimal) and a model behind a sampling
client (the policy in evals, or a frozen checkpoint as an opponent).

Every player draws its randomness from the `random.Random` of the game it plays, never from
Python's global `random`, so games are reproducible however the event loop interleaves them.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from cookbook.errors import UserError
from cookbook.renderers.base import Message

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.renderers.base import Renderer
    from cookbook_textarena.game import GameSession, PromptStyle

OPPONENTS = ("random", "optimal", "checkpoint")
"""Values of the `opponent` field of env builders."""

SCRIPTED_OPPONENTS = ("random", "optimal")
"""The opponents that need no model (the evals play these)."""


class Player(Protocol):
    """Chooses the reply of the player to move."""

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """The reply (text, as a model would write it) for `session.current_player`."""
        ...


class RandomPlayer:
    """A uniformly random legal move."""

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """A legal action chosen with `rng`."""
        return rng.choice(session.legal_actions())


class OptimalPlayer:
    """A best move by game-tree search; ties are broken with `rng`, so a group of games against
    it does not collapse into one game."""

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """An optimal action chosen with `rng` among the ties."""
        return rng.choice(session.optimal_actions())


class ModelPlayer:
    """A model behind a sampling client, prompted with a fresh single-turn conversation holding
    the current position."""

    def __init__(
        self,
        sampling_client: SamplingClient,
        renderer: Renderer,
        style: PromptStyle,
        max_tokens: int,
        temperature: float,
    ) -> None:
        self.sampling_client = sampling_client
        self.renderer = renderer
        self.style = style
        self.max_tokens = max_tokens
        self.temperature = temperature

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """One sample at a seed drawn from `rng`, decoded as the assistant's message."""
        from tinker import types as tinker_types

        text = session.prompt(session.current_player, self.style)
        prompt = self.renderer.build_generation_prompt([Message(role="user", content=text)])
        params = tinker_types.SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            stop=self.renderer.get_stop_sequences(),
            seed=rng.randrange(2**31),
        )
        response = await self.sampling_client.sample(prompt, num_samples=1, sampling_params=params)
        message, _ended = self.renderer.parse_response(list(response.sequences[0].tokens))
        return message["content"]


class FallbackPlayer:
    """An opponent model that never forfeits: when its reply is not a legal move, a random legal
    move is played instead (a free win would teach the policy nothing). Counts the fallbacks."""

    def __init__(self, model: ModelPlayer) -> None:
        self.model = model
        self.fallbacks = 0
        """How many of its replies were replaced."""

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """The model's move when legal, else a random legal one."""
        text = await self.model.reply(session, rng)
        action = session.game.parse_reply(text).action
        if action is not None and action in session.legal_actions():
            return action
        self.fallbacks += 1
        return rng.choice(session.legal_actions())


def scripted_player(kind: str) -> Player:
    """A fresh `RandomPlayer` or `OptimalPlayer` for `kind` (one of `SCRIPTED_OPPONENTS`)."""
    if kind == "random":
        return RandomPlayer()
    if kind == "optimal":
        return OptimalPlayer()
    raise UserError(
        f"unknown scripted opponent {kind!r}; choose one of: {', '.join(SCRIPTED_OPPONENTS)}"
    )


_checkpoint_clients: dict[str, SamplingClient] = {}


def checkpoint_sampling_client(path: str) -> SamplingClient:
    """The local backend's sampling client for the frozen weights at `path`, loaded once per
    process (every group of a run shares it)."""
    client = _checkpoint_clients.get(path)
    if client is None:
        from cookbook.backends import make_service_client

        client = make_service_client("local").create_sampling_client(model_path=path).result()
        _checkpoint_clients[path] = client
    return client


def check_opponent(opponent: str, opponent_checkpoint: str | None) -> None:
    """One-line errors for a bad opponent choice (called when the builder is made)."""
    if opponent not in OPPONENTS:
        raise UserError(f"unknown env.opponent {opponent!r}; choose one of: {', '.join(OPPONENTS)}")
    if opponent == "checkpoint" and not opponent_checkpoint:
        raise UserError(
            "env.opponent=checkpoint needs env.opponent_checkpoint=PATH (sampler weights saved "
            "by a previous run)"
        )
