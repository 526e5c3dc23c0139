"""RL envs for any `TwoPlayerGame`: the policy against a fixed opponent, or self-play where two
envs of one group are the two seats of the same game.

Each turn's observation is a fresh single-turn conversation holding the current position (the
shortest prompt, and the same prompt the demonstrations and evals use). Rewards arrive on the
last step of each env; the per-game outcome metrics come from `compute_group_rewards`, one dict
per trajectory, so batch averages are per-game rates whatever the game length.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cookbook.renderers.base import Message
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Metrics,
    Observation,
    RLDataset,
    StepResult,
    StopCondition,
    Trajectory,
)
from cookbook_textarena import players
from cookbook_textarena.game import GameSession, Outcome
from cookbook_textarena.seats import policy_seat
from cookbook_textarena.seeding import derive_seed

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook_textarena.game import MoveResult, PromptStyle, TwoPlayerGame
    from cookbook_textarena.players import Player


@dataclass(frozen=True)
class Rewards:
    """Reward per outcome, from the policy's point of view."""

    win: float = 1.0
    draw: float = 0.0
    loss: float = -1.0
    illegal: float = -1.0
    """The policy's own illegal move (it ends the game)."""
    opponent_illegal: float = 0.0
    """The other seat forfeited by an illegal move (self-play): no credit to either side's play."""

    def for_outcome(self, outcome: Outcome) -> float:
        """The reward of `outcome`."""
        return {
            Outcome.WIN: self.win,
            Outcome.DRAW: self.draw,
            Outcome.LOSS: self.loss,
            Outcome.ILLEGAL: self.illegal,
            Outcome.OPPONENT_ILLEGAL: self.opponent_illegal,
        }[outcome]


def outcome_metrics(outcome: Outcome, session: GameSession, seat: int, self_play: bool) -> Metrics:
    """Per-game metrics of one seat: one-hot outcome, game length, which seat it played."""
    outcomes = list(Outcome) if self_play else [o for o in Outcome if o != Outcome.OPPONENT_ILLEGAL]
    metrics: Metrics = {o.value: float(outcome == o) for o in outcomes}
    metrics["game_length"] = float(session.num_moves)
    metrics["moved_first"] = float(seat == 0)
    return metrics


def _move_logs(result: MoveResult, seat: int) -> dict[str, str]:
    """Transcript lines for one move: the policy's own reply is in the transcript already, so
    only its illegality is noted; the other player's move is shown."""
    who = "illegal_move" if result.player == seat else "opponent_illegal_move"
    if not result.legal:
        return {who: f"{result.reply!r}: {result.reason}"}
    if result.player == seat:
        return {}
    return {"opponent_move": result.action or result.reply}


class _SeatEnv(Env):
    """What both env kinds share: one seat of one game, rendered for one renderer."""

    def __init__(
        self,
        session: GameSession,
        seat: int,
        renderer: Renderer,
        style: PromptStyle,
        rewards: Rewards,
        self_play: bool,
    ) -> None:
        self.session = session
        self.seat = seat
        self.renderer = renderer
        self.style = style
        self.rewards = rewards
        self.self_play = self_play
        self._logged = 0  # moves of `session.history` already in a transcript

    def _observation(self) -> Observation:
        text = self.session.prompt(self.seat, self.style)
        return self.renderer.build_generation_prompt([Message(role="user", content=text)])

    def _stop(self) -> StopCondition:
        return self.renderer.get_stop_sequences()

    def _reply_text(self, action: Action) -> str:
        message, _ended = self.renderer.parse_response(action)
        return message["content"]

    def _result(self) -> StepResult:
        """The step's result once the policy's move (and any reply to it) has been played."""
        logs: dict[str, str] = {}
        for result in self.session.history[self._logged :]:
            for key, text in _move_logs(result, self.seat).items():
                logs[key] = f"{logs[key]}, {text}" if key in logs else text
        self._logged = len(self.session.history)
        logs["board"] = self.session.board()
        if self.session.done:
            outcome = self.outcome()
            logs["outcome"] = outcome.value
            return StepResult(
                reward=self.rewards.for_outcome(outcome),
                episode_done=True,
                next_observation=_empty_model_input(),
                next_stop_condition=self._stop(),
                logs=logs,
            )
        return StepResult(
            reward=0.0,
            episode_done=False,
            next_observation=self._observation(),
            next_stop_condition=self._stop(),
            logs=logs,
        )

    def outcome(self) -> Outcome:
        """How the (finished) game went for this seat."""
        return self.session.outcome(self.seat)

    def metrics(self) -> Metrics:
        """Per-game metrics of this seat (the game must be over)."""
        return outcome_metrics(self.outcome(), self.session, self.seat, self.self_play)


def _empty_model_input() -> Observation:
    from tinker import types as tinker_types

    return tinker_types.ModelInput.empty()


class VsOpponentEnv(_SeatEnv):
    """The policy holds `seat`; `opponent` moves for the other seat between the policy's turns."""

    def __init__(
        self,
        session: GameSession,
        seat: int,
        renderer: Renderer,
        style: PromptStyle,
        rewards: Rewards,
        opponent: Player,
        rng: random.Random,
    ) -> None:
        super().__init__(session, seat, renderer, style, rewards, self_play=False)
        self.opponent = opponent
        self.rng = rng

    def metrics(self) -> Metrics:
        """Per-game metrics; against a checkpoint also how many of its moves were replaced."""
        metrics = super().metrics()
        if isinstance(self.opponent, players.FallbackPlayer):
            metrics["opponent_fallbacks"] = float(self.opponent.fallbacks)
        return metrics

    async def _opponent_turns(self) -> None:
        while not self.session.done and self.session.current_player != self.seat:
            self.session.play(await self.opponent.reply(self.session, self.rng))

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The first position the policy sees (after the opening move when the opponent starts)."""
        await self._opponent_turns()
        return self._observation(), self._stop()

    async def step(self, action: Action) -> StepResult:
        """Play the policy's move, then the opponent's answer."""
        self.session.play(self._reply_text(action))
        await self._opponent_turns()
        return self._result()


class SelfPlayMatch:
    """One game shared by two `SelfPlayEnv`s. Each seat waits on the condition for its turn, so
    the runner must step the envs of a group concurrently (it does: it gathers their rollouts)."""

    def __init__(self, session: GameSession) -> None:
        self.session = session
        self._turn = asyncio.Condition()

    async def wait_for_turn(self, seat: int) -> None:
        """Return when `seat` is to move or the game is over."""
        async with self._turn:
            await self._turn.wait_for(
                lambda: self.session.done or self.session.current_player == seat
            )

    async def play(self, reply: str) -> MoveResult:
        """Play the current player's reply and wake the other seat."""
        async with self._turn:
            result = self.session.play(reply)
            self._turn.notify_all()
        return result


class SelfPlayEnv(_SeatEnv):
    """One seat of a self-play game; the other seat is another env of the same group."""

    def __init__(
        self,
        match: SelfPlayMatch,
        seat: int,
        renderer: Renderer,
        style: PromptStyle,
        rewards: Rewards,
    ) -> None:
        super().__init__(match.session, seat, renderer, style, rewards, self_play=True)
        self.match = match

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        """The first position this seat sees (the second seat waits for the opening move)."""
        await self.match.wait_for_turn(self.seat)
        return self._observation(), self._stop()

    async def step(self, action: Action) -> StepResult:
        """Play this seat's move, then wait for the other seat's answer."""
        if not self.session.done:
            # The game can already be over only when the other seat forfeited the first move.
            await self.match.play(self._reply_text(action))
            await self.match.wait_for_turn(self.seat)
        return self._result()


@dataclass(frozen=True)
class TwoPlayerGroupBuilder(EnvGroupBuilder):
    """One group: `len(game_seeds)` games against an opponent (one env each), or
    `len(game_seeds)` self-play games (two envs each, seats 0 and 1 next to each other).

    Plain data: the opponent checkpoint is a path, opened through a per-process cache."""

    game: TwoPlayerGame
    renderer: Renderer
    style: PromptStyle
    game_seeds: tuple[int, ...]
    """One seed per game: each game's own `random.Random` (opponent moves, opponent sampling)."""
    self_play: bool = False
    seat: int = 0
    """The policy's seat against an opponent (0 moves first)."""
    opponent: str = "random"
    opponent_checkpoint: str | None = None
    opponent_max_tokens: int = 16
    opponent_temperature: float = 1.0
    rewards: Rewards = field(default_factory=Rewards)

    def _make_opponent(self) -> Player:
        if self.opponent == "checkpoint" and self.opponent_checkpoint:
            client = players.checkpoint_sampling_client(self.opponent_checkpoint)
            model = players.ModelPlayer(
                client,
                self.renderer,
                self.style,
                self.opponent_max_tokens,
                self.opponent_temperature,
            )
            return players.FallbackPlayer(model)
        players.check_opponent(self.opponent, self.opponent_checkpoint)
        return players.scripted_player(self.opponent)

    async def make_envs(self) -> Sequence[Env]:
        """Fresh textarena games: one env per game, or two (both seats) in self-play."""
        if self.self_play:
            envs: list[Env] = []
            for _ in self.game_seeds:
                match = SelfPlayMatch(GameSession(self.game))
                for seat in (0, 1):
                    envs.append(SelfPlayEnv(match, seat, self.renderer, self.style, self.rewards))
            return envs
        return [
            VsOpponentEnv(
                GameSession(self.game),
                self.seat,
                self.renderer,
                self.style,
                self.rewards,
                self._make_opponent(),  # one per game: its counters are per game
                random.Random(seed),
            )
            for seed in self.game_seeds
        ]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        """No extra reward (each env's last step carries it); the per-game outcome metrics."""
        out: list[tuple[float, Metrics]] = []
        for env in envs_G:
            assert isinstance(env, _SeatEnv)
            out.append((0.0, env.metrics()))
        return out

    def logging_tags(self) -> list[str]:
        """The game's name."""
        return [self.game.name]


class TwoPlayerRLDataset(RLDataset):
    """Batches of groups; every group and game seed derives from the dataset seed and its
    position, so batch `i` is the same whenever it is asked for."""

    def __init__(
        self,
        template: TwoPlayerGroupBuilder,
        seed: int,
        num_batches: int,
        groups_per_batch: int,
        games_per_group: int,
        seat_mode: str,
    ) -> None:
        """`seat_mode` is one of `seats.ENV_SEATS` (ignored in self-play)."""
        self.template = template
        self.seed = seed
        self.num_batches = num_batches
        self.groups_per_batch = groups_per_batch
        self.games_per_group = games_per_group
        self.seat_mode = seat_mode

    def get_batch(self, index: int) -> Sequence[TwoPlayerGroupBuilder]:
        """Batch `index`: `groups_per_batch` groups with their own game seeds."""
        from dataclasses import replace

        builders = []
        for g in range(self.groups_per_batch):
            group_index = index * self.groups_per_batch + g
            seeds = tuple(
                derive_seed(self.seed, index, g, game) for game in range(self.games_per_group)
            )
            builders.append(
                replace(
                    self.template, game_seeds=seeds, seat=policy_seat(self.seat_mode, group_index)
                )
            )
        return builders

    def __len__(self) -> int:
        """Number of batches."""
        return self.num_batches
