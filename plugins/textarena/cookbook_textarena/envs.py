"""RL envs for any `TwoPlayerGame`: the policy against a fixed opponent, or self-play where two
envs of one group are the two seats of the same game.

Each turn's observation is a fresh single-turn conversation holding the current position (the
shortest prompt, and the same prompt the demonstrations and evals use). Rewards arrive on the
last step of each env; the per-game outcome metrics come from `compute_group_rewards`, one dict
per trajectory, so batch averages are per-game rates whatever the game length.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.renderers.base import Message, TrainOnWhat
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
from cookbook_textarena.game import GameSession, Outcome, score_metric
from cookbook_textarena.opponents import (
    MODEL_KINDS,
    POOL_CLIENTS,
    Snapshot,
    SnapshotPool,
    allocate,
)
from cookbook_textarena.seats import policy_seat
from cookbook_textarena.seeding import derive_seed

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook_textarena.game import MoveResult, PromptStyle, TwoPlayerGame
    from cookbook_textarena.players import Player


@dataclass(frozen=True)
class Rewards:
    """Reward per outcome, from the policy's point of view (a scored game, `TwoPlayerGame.score`,
    is rewarded by its score instead, unless an illegal move ended it)."""

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
    if session.game.has_score:
        metrics["score"] = score_metric(outcome, session.score(seat))
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
        self._prompt: str | None = None  # the text of the latest observation

    def _observation(self) -> Observation:
        self._prompt = self.session.prompt(self.seat, self.style)
        return self.renderer.build_generation_prompt([Message(role="user", content=self._prompt)])

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
            score = self.session.score(self.seat)
            return StepResult(
                # a scored game (chips) is rewarded by its score unless an illegal move ended it
                reward=self.rewards.for_outcome(outcome) if score is None else score,
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
    """The policy holds `seat`; `opponent` moves for the other seat between the policy's turns.

    Searchable (`cookbook.rl.search.SearchableEnv`): at the policy's turn it lists the game's
    candidate actions as reply tokens and forks itself (game, random stream and opponent), also
    against another opponent (`ProbeableEnv`)."""

    def __init__(
        self,
        session: GameSession,
        seat: int,
        renderer: Renderer,
        style: PromptStyle,
        rewards: Rewards,
        opponent: Player,
        rng: random.Random,
        reply_tokens: dict[str, Action] | None = None,
    ) -> None:
        """`reply_tokens`: where `candidate_actions` keeps the tokens of each action's reply,
        shared by the envs of one renderer and style (a group builder's), so each is rendered
        once per run rather than once per search root (a reply's tokens are the same whatever
        the position: the renderer's training example extends the prompt, which is checked)."""
        super().__init__(session, seat, renderer, style, rewards, self_play=False)
        self.opponent = opponent
        self.rng = rng
        self.reply_tokens = {} if reply_tokens is None else reply_tokens

    def metrics(self) -> Metrics:
        """Per-game metrics; against a checkpoint also how many of its moves were replaced."""
        metrics = super().metrics()
        if isinstance(self.opponent, players.FallbackPlayer):
            metrics["opponent_fallbacks"] = float(self.opponent.fallbacks)
        return metrics

    def candidate_actions(self) -> list[Action]:
        """The game's candidate actions (`TwoPlayerGame.candidate_actions`) as the tokens of the
        reply a good model gives for each, end-of-turn token included."""
        if self._prompt is None or self.session.done:
            raise RuntimeError("candidate_actions is for the policy's turn, after an observation")
        actions = self.session.game.candidate_actions(self.session.raw_env)
        missing = [a for a in actions if a not in self.reply_tokens]
        if missing:
            self.reply_tokens.update(zip(missing, self._render_replies(missing), strict=True))
        return [list(self.reply_tokens[a]) for a in actions]

    def symmetric_views(
        self, candidates: Sequence[Action]
    ) -> list[tuple[Observation, list[Action]]]:
        """This position under the game's other symmetries (`TwoPlayerGame.symmetric_prompts`)
        with `candidates` (this position's `candidate_actions`) mapped to each
        (`cookbook.rl.search.SymmetricEnv`). Compact prompts only: textarena's own text (its
        history included) cannot be transformed."""
        if self._prompt is None or self.session.done:
            raise RuntimeError("symmetric_views is for the policy's turn, after an observation")
        actions = self.session.game.candidate_actions(self.session.raw_env)
        if len(actions) != len(candidates):
            raise ValueError("symmetric_views takes this position's candidate_actions")
        if self.style != "compact":
            raise UserError(
                f"search.symmetries needs the compact prompt style ({self.session.game.name} is"
                f" in {self.style!r}, whose text cannot be turned or mirrored); set"
                " env.prompt_style=compact or drop search.symmetries=true"
            )
        views = self.session.game.symmetric_prompts(self.session.raw_env, self.seat, actions)
        missing = sorted({a for _, mapped in views for a in mapped} - self.reply_tokens.keys())
        if missing:
            self.reply_tokens.update(zip(missing, self._render_replies(missing), strict=True))
        return [
            (
                self.renderer.build_generation_prompt([Message(role="user", content=text)]),
                [list(self.reply_tokens[a]) for a in mapped],
            )
            for text, mapped in views
        ]

    def _render_replies(self, actions: list[str]) -> list[Action]:
        """The tokens of the reply to this position for each action: the renderer's training
        example of prompt + reply, less the prompt."""
        user = Message(role="user", content=self._prompt or "")
        prompt = self.renderer.build_generation_prompt([user]).to_ints()
        out: list[Action] = []
        for action in actions:
            content = self.session.game.format_reply(action, self.style)
            tokens, _weights = self.renderer.build_supervised_example(
                [user, Message(role="assistant", content=content)],
                TrainOnWhat.LAST_ASSISTANT_MESSAGE,
            )
            if tokens[: len(prompt)] != prompt:
                raise RuntimeError("the renderer's training example does not extend its prompt")
            out.append(tokens[len(prompt) :])
        return out

    def fork(self) -> VsOpponentEnv:
        """An independent copy at this point: the game, the opponent's random stream and its
        counters are copied (a frozen-policy opponent shares its sampling client)."""
        twin = copy.copy(self)
        twin.session = self.session.fork()
        # Not `Random()`: seeding it from os.urandom, which setstate overwrites, costs as much.
        twin.rng = type(self.rng).__new__(type(self.rng))
        twin.rng.setstate(self.rng.getstate())
        twin.opponent = copy.copy(self.opponent)
        return twin

    def fork_against(self, opponent: str) -> VsOpponentEnv:
        """A `fork` in which a scripted `opponent` (`random` or `optimal`) answers from now on
        (`cookbook.rl.search.ProbeableEnv`)."""
        twin = self.fork()
        twin.opponent = players.scripted_player(opponent)
        return twin

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

    Plain data: a frozen opponent is a path, opened through a per-process cache."""

    game: TwoPlayerGame
    renderer: Renderer
    style: PromptStyle
    game_seeds: tuple[int, ...]
    """One seed per game: each game's own `random.Random` (opponent moves, opponent sampling)."""
    self_play: bool = False
    seat: int = 0
    """The policy's seat against an opponent (0 moves first)."""
    opponent: str = "random"
    """`random`, `optimal`, `checkpoint` or `pool` (a snapshot of this run, at
    `opponent_checkpoint`); ignored in self-play."""
    opponent_checkpoint: str | None = None
    opponent_max_tokens: int = 16
    opponent_temperature: float = 1.0
    rewards: Rewards = field(default_factory=Rewards)
    pool_size: int = 0
    """Snapshots in the pool when this group was made (pool groups)."""
    snapshot_age: int = 0
    """Steps between the pool snapshot played and this group's batch (pool groups)."""
    opening_plies: int = 0
    """Each game opens with 0 to this many random legal moves (`play_opening`)."""
    reply_tokens: dict[str, Action] = field(default_factory=dict, compare=False, repr=False)
    """The reply tokens of each action (`VsOpponentEnv.candidate_actions`), shared by the
    builders `dataclasses.replace` makes of this one."""

    @property
    def kind(self) -> str:
        """Who the policy plays: `self` in self-play, else the opponent kind."""
        return "self" if self.self_play else self.opponent

    def _make_opponent(self) -> Player:
        if self.opponent in MODEL_KINDS and self.opponent_checkpoint:
            if self.opponent == "pool":
                client = POOL_CLIENTS.get(self.opponent_checkpoint, self.pool_size)
            else:
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

    def _session(self, seed: int) -> GameSession:
        session = GameSession(self.game, derive_seed(seed, "chance"))
        if self.opening_plies:
            rng = random.Random(derive_seed(seed, "opening"))
            seat = None if self.self_play else self.seat
            session = play_opening(session, self.opening_plies, rng, seat)
        return session

    async def make_envs(self) -> Sequence[Env]:
        """Fresh textarena games (after their openings): one env per game, or two (both seats)
        in self-play."""
        if self.self_play:
            envs: list[Env] = []
            for seed in self.game_seeds:
                match = SelfPlayMatch(self._session(seed))
                for seat in (0, 1):
                    envs.append(SelfPlayEnv(match, seat, self.renderer, self.style, self.rewards))
            return envs
        return [
            VsOpponentEnv(
                self._session(seed),
                self.seat,
                self.renderer,
                self.style,
                self.rewards,
                self._make_opponent(),  # one per game: its counters are per game
                random.Random(seed),
                self.reply_tokens,
            )
            for seed in self.game_seeds
        ]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        """No extra reward (each env's last step carries it); per game: the outcome metrics, and
        what shows a group collapsing (its share of distinct games, the sampled tokens' entropy);
        against a pool snapshot, the pool's size and the snapshot's age."""
        sessions = {id(env.session): env.session for env in envs_G if isinstance(env, _SeatEnv)}
        distinct = len({_moves(s) for s in sessions.values()}) / max(len(sessions), 1)
        # Scripted drivers (cookbook_textarena.testing) may pass no trajectories.
        trajectories = (
            trajectories_G if len(trajectories_G) == len(envs_G) else [None] * len(envs_G)
        )
        out: list[tuple[float, Metrics]] = []
        for env, trajectory in zip(envs_G, trajectories, strict=True):
            assert isinstance(env, _SeatEnv)
            metrics = env.metrics()
            metrics["distinct_games"] = distinct
            logprobs = [] if trajectory is None else trajectory_logprobs(trajectory)
            if logprobs:
                metrics["entropy"] = -sum(logprobs) / len(logprobs)
            if self.opponent == "pool" and not self.self_play:
                metrics["pool_size"] = float(self.pool_size)
                metrics["snapshot_age"] = float(self.snapshot_age)
            out.append((0.0, metrics))
        return out

    def logging_tags(self) -> list[str]:
        """The game's name, `vs_<kind>` and, against an opponent, the seat: the runner reports
        rewards and env metrics per tag (`tag/vs_optimal/env/draw`, `tag/second_seat/...`)."""
        tags = [self.game.name, f"vs_{self.kind}"]
        if not self.self_play:
            tags.append("first_seat" if self.seat == 0 else "second_seat")
        return tags


def play_opening(
    session: GameSession, max_plies: int, rng: random.Random, seat: int | None = None
) -> GameSession:
    """`session` after up to `max_plies` random legal moves, both sides: positions a policy
    would not reach on its own. The length is uniform over 0 to `max_plies`; with `seat`, over
    the lengths after which `seat` is to move (every length then is as likely over the two
    seats as without one), so no opponent move comes between the opening and the policy's
    turn. A move that would end the game ends the opening before it instead (cut back, with
    `seat`, to the latest position where `seat` is to move): the game is never over."""
    lengths = [n for n in range(max_plies + 1) if seat is None or n % 2 == seat] or [0]
    played = [session]
    for _ in range(rng.choice(lengths)):
        trial = played[-1].fork()
        trial.play(rng.choice(played[-1].legal_actions()))
        if trial.done:
            break
        played.append(trial)
    if seat is not None:
        played = [s for s in played if s.current_player == seat] or [session]
    return played[-1]


def trajectory_logprobs(trajectory: Trajectory) -> list[float]:
    """The sampling logprobs of every action token of a trajectory."""
    return [lp for t in trajectory.transitions for lp in t.ac_logprobs]


def _moves(session: GameSession) -> tuple[tuple[int, str], ...]:
    """A game's moves, to tell identical games apart."""
    return tuple((m.player, m.reply) for m in session.history)


class TwoPlayerRLDataset(RLDataset):
    """Batches of groups; every group and game seed derives from the dataset seed and its
    position, so batch `i` is the same whenever it is asked for (pool groups: given the same
    saved snapshots, which a resumed run has).

    Each batch splits its groups between the opponent kinds by weight (`opponents.allocate`);
    the k-th group of a kind in batch i takes seat `policy_seat(seat_mode, i * n + k)`, n being
    the kind's groups per batch, so with `alternate` a kind's groups alternate seats within a
    batch and, when it has an odd number of them, from one batch to the next."""

    def __init__(
        self,
        template: TwoPlayerGroupBuilder,
        seed: int,
        num_batches: int,
        groups_per_batch: int,
        group_size: int,
        seat_mode: str,
        weights: dict[str, float] | None = None,
        pool: SnapshotPool | None = None,
    ) -> None:
        """`seat_mode` is one of `seats.ENV_SEATS`; `weights` the opponent mixture
        (`opponents.parse_mixture`; default: the template's opponent, or self-play); `pool` the
        run's snapshots (needed for `pool` groups to play anything but self-play)."""
        self.template = template
        self.seed = seed
        self.num_batches = num_batches
        self.groups_per_batch = groups_per_batch
        self.group_size = group_size
        self.seat_mode = seat_mode
        self.weights = weights or {template.kind: 1.0}
        self.pool = pool

    def get_batch(self, index: int) -> Sequence[TwoPlayerGroupBuilder]:
        """Batch `index`: `groups_per_batch` groups with their own opponent, seat and seeds."""
        rng = random.Random(derive_seed(self.seed, "opponents", index))
        kinds = allocate(self.weights, self.groups_per_batch, rng)
        snapshots = self.pool.snapshots(index) if self.pool and "pool" in self.weights else []
        per_kind = {kind: kinds.count(kind) for kind in self.weights}
        seen: dict[str, int] = {}
        builders = []
        for g, kind in enumerate(kinds):
            k = seen[kind] = seen.get(kind, -1) + 1
            seat = policy_seat(self.seat_mode, index * per_kind[kind] + k)
            builders.append(self._group(index, g, kind, seat, snapshots, rng))
        return builders

    def _group(
        self,
        index: int,
        g: int,
        kind: str,
        seat: int,
        snapshots: list[Snapshot],
        rng: random.Random,
    ) -> TwoPlayerGroupBuilder:
        from dataclasses import replace

        if kind == "pool" and not snapshots:
            kind = "self"  # nothing saved yet: the newest policy is the whole pool
        self_play = kind == "self"
        games = self.group_size // 2 if self_play else self.group_size
        seeds = tuple(derive_seed(self.seed, index, g, game) for game in range(games))
        if kind == "pool":
            snapshot = rng.choice(snapshots)
            return replace(
                self.template,
                game_seeds=seeds,
                seat=seat,
                self_play=False,
                opponent="pool",
                opponent_checkpoint=snapshot.path,
                pool_size=len(snapshots),
                snapshot_age=index - snapshot.step,
            )
        opponent = self.template.opponent if self_play else kind
        return replace(
            self.template, game_seeds=seeds, seat=seat, self_play=self_play, opponent=opponent
        )

    def __len__(self) -> int:
        """Number of batches."""
        return self.num_batches
