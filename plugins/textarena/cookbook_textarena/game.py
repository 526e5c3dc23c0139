"""The game half of a textarena two-player game, and one game in progress (`GameSession`).

A game plugs in by subclassing `TwoPlayerGame`: it names its textarena env and supplies what
textarena does not have (a compact prompt for the tiny model, reply parsing, legal and optimal
moves). Everything else (envs, self-play, opponents, evals, demonstrations) is generic and lives
in the sibling modules.

textarena is the referee: each session plays a fresh textarena env, which validates every move
and decides the outcome. Players are textarena's ids: player 0 moves first.

Games with chance (cards, dice: textarena draws them from Python's global `random`) set
`TwoPlayerGame.chance`; each session then gives textarena a random stream of its own, seeded,
so such games replay exactly too (`seeding.ChanceStream`).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from cookbook.errors import UserError
from cookbook_textarena.seeding import ChanceStream

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv
    from textarena.wrappers import GameBoardObservationWrapper

PromptStyle = Literal["compact", "text"]
"""`compact`: a few dozen bytes for the tiny model; `text`: textarena's own observation."""

PROMPT_STYLES = ("auto", "compact", "text")
"""Values of a builder's `prompt_style` field (`auto`: compact for the tiny model, else text)."""


def resolve_prompt_style(prompt_style: str, is_tiny: bool) -> PromptStyle:
    """The concrete style for a builder's `prompt_style` field and the model it serves."""
    if prompt_style == "auto":
        return "compact" if is_tiny else "text"
    if prompt_style == "compact":
        return "compact"
    if prompt_style == "text":
        return "text"
    raise UserError(
        f"unknown prompt_style {prompt_style!r}; choose one of: {', '.join(PROMPT_STYLES)}"
    )


class Outcome(StrEnum):
    """How a finished game went for one player."""

    WIN = "win"
    DRAW = "draw"
    LOSS = "loss"
    ILLEGAL = "illegal_move"
    """This player made an illegal move, which ended the game."""
    OPPONENT_ILLEGAL = "opponent_illegal"
    """The other player's illegal move ended the game (only in self-play)."""


def score_metric(outcome: Outcome, score: float | None) -> float:
    """The `score` metric of a scored game for one player: its score, or -1 / +1 when an
    illegal move (its own / the other seat's) ended the game."""
    if score is not None:
        return score
    return {Outcome.ILLEGAL: -1.0, Outcome.OPPONENT_ILLEGAL: 1.0}.get(outcome, 0.0)


@dataclass(frozen=True)
class ParsedReply:
    """A model reply read as a move: `action` is textarena's action text (`"[4]"`), or `None`
    with `reason` saying why the reply is not a move."""

    action: str | None
    reason: str = ""


@dataclass(frozen=True)
class MoveResult:
    """What happened to one reply."""

    player: int
    """Who moved."""
    reply: str
    """The reply as given."""
    legal: bool
    """Whether textarena accepted the move."""
    reason: str
    """Why it was illegal (empty when legal)."""
    action: str | None
    """The parsed action (`None` when the reply had no move)."""


class TwoPlayerGame(ABC):
    """The game-specific half of a textarena two-player game.

    The contract, which the envs, players, demonstrations and evals rely on:

    - instances are plain data (picklable, cheap to make): they hold no game state, a
      `GameSession` does, and every method reads the textarena env it is given;
    - actions are textarena's action strings (`"[4]"`); `legal_actions` lists them in a fixed
      order (seeded random play replays exactly) and is never empty while the game goes on;
    - `parse_reply` never raises: an unreadable reply is a `ParsedReply` with a reason, which
      the session plays as an illegal move; `parse_reply(format_reply(a, style)).action == a`
      for every legal `a`;
    - `optimal_actions`, when implemented, is a non-empty subset of `legal_actions`; an action
      listed k times is k times as likely (how a mixed strategy, such as Kuhn poker's, is
      written: `["[check]", "[check]", "[bet]"]` bets one time in three);
    - `score`, when implemented, is a finished game's result in [-1, 1] beyond win / draw / loss
      (chips won at poker); it then is the reward of every game that ends without an illegal
      move, and is reported as the `score` metric.

    Games with hidden information show each player only what it may see in `compact_prompt`;
    textarena keeps the text observations apart itself."""

    name: str = ""
    """Registered env name and logging tag (`tictactoe`)."""

    chance: bool = False
    """Whether textarena draws chance events (deals, rolls) from Python's global `random`: each
    session then runs textarena on a seeded random stream of its own, so games replay exactly."""

    @abstractmethod
    def make_textarena_env(self) -> TextarenaEnv:
        """A fresh, unwrapped textarena env of this game (not reset)."""

    @abstractmethod
    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """The position as `player` should see it in the compact style (a few dozen bytes)."""

    @abstractmethod
    def render_board(self, env: TextarenaEnv) -> str:
        """The board for transcripts (absolute, not from one player's point of view)."""

    @abstractmethod
    def parse_reply(self, text: str) -> ParsedReply:
        """Read a model reply as a move. Never raises: anything unreadable is a reason."""

    @abstractmethod
    def format_reply(self, action: str, style: PromptStyle) -> str:
        """The reply a good model gives for `action` in `style` (for demonstrations)."""

    @abstractmethod
    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """The current player's legal actions, in a fixed order."""

    def candidate_actions(self, env: TextarenaEnv) -> list[str]:
        """The actions a search tries for the current player (`cookbook.rl.search`), in a fixed
        order: by default the legal ones. A game may list illegal ones too (tic-tac-toe lists
        every cell), so the search also teaches which moves lose at once."""
        return self.legal_actions(env)

    def symmetric_prompts(
        self, env: TextarenaEnv, player: int, actions: list[str]
    ) -> list[tuple[str, list[str]]]:
        """The position under each of the game's symmetries other than the identity (a board
        rotated or mirrored, where the game's value and rules are the same): the compact
        prompt `player` would see there and `actions` mapped to it, in the same order. Used by
        searches that train each target under a random symmetry (`search.symmetries`). By
        default none: a game without symmetries, or one that does not list them."""
        return []

    def optimal_actions(self, env: TextarenaEnv) -> list[str]:
        """The current player's best actions (ties all listed, in a fixed order). Games without
        a solver leave this unimplemented and cannot use the `optimal` opponent."""
        raise UserError(f"{self.name} has no optimal policy; use another opponent")

    def score(self, env: TextarenaEnv, player: int) -> float | None:
        """A finished game's score for `player` in [-1, 1], for games scored in more than win /
        draw / loss; `None` (the default): the outcome alone is the result."""
        return None

    @property
    def has_score(self) -> bool:
        """Whether this game implements `score` (rewards and metrics then use it)."""
        return type(self).score is not TwoPlayerGame.score

    @property
    def has_optimal_policy(self) -> bool:
        """Whether this game implements `optimal_actions` (the builders check it up front)."""
        return type(self).optimal_actions is not TwoPlayerGame.optimal_actions

    def require_optimal_policy(self, option: str) -> None:
        """Raise a one-line `UserError` naming `option` when the game has no optimal policy."""
        if not self.has_optimal_policy:
            raise UserError(
                f"{option} needs an optimal policy, which {self.name or type(self).__name__} "
                "does not have; play against random (or a checkpoint) instead"
            )


def _copy_textarena(
    env: TextarenaEnv, wrapper: GameBoardObservationWrapper
) -> tuple[TextarenaEnv, GameBoardObservationWrapper]:
    """A deep copy of a textarena env and its observation wrapper, but for the state's
    observation queues and logs (and the wrapper's record of them), whose items (textarena
    appends `(from_id, message, type)` tuples) are immutable: those lists are copied, not their
    items, where `copy.deepcopy` walks every message of the game so far. Everything else is
    deep-copied, the env's and state's own references (a bound prompt function) pointing at
    the copies."""
    state = env.state
    twin_state = copy.copy(state)
    twin_env = copy.copy(env)
    twin_env.state = twin_state
    memo: dict[int, object] = {id(state): twin_state, id(env): twin_env}
    for name, value in vars(state).items():
        if name == "observations":
            twin_state.observations = {p: list(queue) for p, queue in value.items()}
        elif name == "logs":
            twin_state.logs = list(value)
        else:
            setattr(twin_state, name, _deepcopy(value, memo))
    for name, value in vars(env).items():
        if name != "state":
            setattr(twin_env, name, _deepcopy(value, memo))
    # The wrapper forwards unknown attributes to its env: `copy.copy` would recurse on it.
    twin_wrapper = object.__new__(type(wrapper))
    for name, value in vars(wrapper).items():
        if name == "env":
            twin_wrapper.env = twin_env
        elif name == "full_observations":  # the same tuples as the state's queues
            twin_wrapper.full_observations = {p: list(seen) for p, seen in value.items()}
        else:
            setattr(twin_wrapper, name, _deepcopy(value, memo))
    return twin_env, twin_wrapper


_ATOMS = frozenset({str, int, float, bool, type(None)})


def _deepcopy(value: object, memo: dict[int, object]) -> object:
    """`copy.deepcopy(value, memo)`, 3x faster on what game states are made of (dicts, lists
    and tuples of numbers and strings): those are copied here, sharing `memo` (an object met
    twice is copied once), anything else by `copy.deepcopy`."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    seen = memo.get(id(value))
    if seen is not None:
        return seen
    if kind is list:
        items: list[object] = []
        memo[id(value)] = items
        items.extend([v if type(v) in _ATOMS else _deepcopy(v, memo) for v in value])  # type: ignore[attr-defined]
        return items
    if kind is dict:
        table: dict[object, object] = {}
        memo[id(value)] = table
        for key, v in value.items():  # type: ignore[attr-defined]
            if type(key) not in _ATOMS:
                key = _deepcopy(key, memo)
            table[key] = v if type(v) in _ATOMS else _deepcopy(v, memo)
        return table
    if kind is tuple:
        if all(type(v) in _ATOMS for v in value):  # type: ignore[attr-defined]
            return value  # immutable all through: shared, as `copy.deepcopy` does
        return copy.deepcopy(value, memo)
    return copy.deepcopy(value, memo)


class GameSession:
    """One game in progress on a fresh textarena env. Illegal moves end the game at once (the
    env's retry allowance is set to zero), scored by textarena as a loss for the mover.

    `chance_seed` seeds the chance events of a game with `chance` (None: fresh entropy); games
    without chance ignore it."""

    def __init__(self, game: TwoPlayerGame, chance_seed: int | None = None) -> None:
        from textarena.wrappers import GameBoardObservationWrapper

        self.game = game
        self._chance_seed = chance_seed
        self._chance = ChanceStream(chance_seed) if game.chance else None
        # (moves played, player) of every text prompt read: reading one consumes textarena's
        # pending observations, which a replaying `fork` repeats.
        self._text_reads: list[tuple[int, int]] = []
        self.raw_env = game.make_textarena_env()
        # textarena's own text: the game prompt and the latest board, one turn at a time.
        self._text_env = GameBoardObservationWrapper(self.raw_env)
        with self._textarena_turn():
            # seed=None: textarena would otherwise reseed Python's global `random`.
            self._text_env.reset(num_players=2, seed=None)
        self.raw_env.state.error_allowance = 0
        self.history: list[MoveResult] = []
        """Every reply played, in order."""

    def fork(self) -> GameSession:
        """An independent copy of the game so far: moves played in either leave the other
        unchanged. A game without chance copies textarena's env (`_copy_textarena`: 3x faster
        than replaying the moves on a fresh env, which is 1.2x faster than `copy.deepcopy`);
        a game of chance replays the moves (and text prompt reads) on the same chance seed, or
        is deep-copied when seeded from fresh entropy."""
        if self._chance is None:
            twin = copy.copy(self)
            twin.raw_env, twin._text_env = _copy_textarena(self.raw_env, self._text_env)
            twin.history = list(self.history)
            twin._text_reads = list(self._text_reads)
            return twin
        if self._chance_seed is None:
            twin = copy.copy(self)
            twin.raw_env, twin._text_env, twin._chance = copy.deepcopy(
                (self.raw_env, self._text_env, self._chance)
            )
            twin.history = list(self.history)
            twin._text_reads = list(self._text_reads)
            return twin
        twin = GameSession(self.game, self._chance_seed)
        reads = iter(self._text_reads)
        read = next(reads, None)
        for moves, result in enumerate([*self.history, None]):
            while read is not None and read[0] == moves:
                twin.prompt(read[1], "text")
                read = next(reads, None)
            if result is not None:
                twin.play(result.reply)
        return twin

    def _textarena_turn(self) -> AbstractContextManager[None]:
        """Around every call into textarena: this game's own random stream, if it has chance."""
        return self._chance.active() if self._chance is not None else nullcontext()

    @property
    def current_player(self) -> int:
        """Whose turn it is (after an illegal move: the player who made it)."""
        player: int = self.raw_env.state.current_player_id
        return player

    @property
    def done(self) -> bool:
        """Whether the game is over."""
        return bool(self.raw_env.state.done)

    @property
    def num_moves(self) -> int:
        """Legal moves played so far (the game length once it is over)."""
        return sum(1 for m in self.history if m.legal)

    def prompt(self, player: int, style: PromptStyle) -> str:
        """The position as `player` sees it, in `style`."""
        if style == "compact":
            return self.game.compact_prompt(self.raw_env, player)
        # What the wrapper's get_observation() does, but for any player (a self-play seat may
        # need its view while the other seat is to move).
        self._text_reads.append((len(self.history), player))
        state = self.raw_env.state
        pending = state.observations[player]
        state.observations[player] = []
        text: str = self._text_env.observation(player, pending)
        return text

    def board(self) -> str:
        """The board for transcripts."""
        return self.game.render_board(self.raw_env)

    def play(self, reply: str) -> MoveResult:
        """Play the current player's `reply`. An unreadable or illegal reply ends the game."""
        if self.done:
            raise RuntimeError("the game is over; no more moves")
        player = self.current_player
        parsed = self.game.parse_reply(reply)
        state = self.raw_env.state
        if parsed.action is None:
            state.set_invalid_move(reason=parsed.reason)
            with self._textarena_turn():
                state.step()
            result = MoveResult(player, reply, False, parsed.reason, None)
        else:
            with self._textarena_turn():
                self.raw_env.step(parsed.action)
            info = state.game_info[player]
            if info["invalid_move"]:
                result = MoveResult(player, reply, False, str(info["reason"]), parsed.action)
            else:
                result = MoveResult(player, reply, True, "", parsed.action)
        self.history.append(result)
        return result

    def outcome(self, player: int) -> Outcome:
        """How the finished game went for `player`."""
        if not self.done:
            raise RuntimeError("the game is not over yet")
        state = self.raw_env.state
        if state.game_info[player]["invalid_move"]:
            return Outcome.ILLEGAL
        if state.game_info[1 - player]["invalid_move"]:
            return Outcome.OPPONENT_ILLEGAL
        reward = state.rewards[player]
        if reward > 0:
            return Outcome.WIN
        if reward < 0:
            return Outcome.LOSS
        return Outcome.DRAW

    def score(self, player: int) -> float | None:
        """The game's own score for `player` (`TwoPlayerGame.score`) once it is over, or `None`
        when the game has none or an illegal move ended it."""
        if not self.done:
            raise RuntimeError("the game is not over yet")
        if any(not m.legal for m in self.history):
            return None
        return self.game.score(self.raw_env, player)

    def legal_actions(self) -> list[str]:
        """The current player's legal actions."""
        return self.game.legal_actions(self.raw_env)

    def optimal_actions(self) -> list[str]:
        """The current player's best actions."""
        return self.game.optimal_actions(self.raw_env)
