"""`tictactoe-exhaustive`: the policy's greedy move in every reachable position, scored against
minimax, and what that greedy policy does against random and optimal play.

A win rate over sampled games can look good while the policy has holes: it may never meet the
positions where it blunders, or it may have memorised the lines of one opponent. This eval asks
the model once for its greedy (temperature 0) reply in each of the 4,520 non-terminal positions
reachable from the empty board (2,423 with the first seat to move, 2,097 with the second) and
scores every reply against the game-theoretic value of each move (win, draw or loss under
perfect play from then on), per seat:

- `optimal_rate`: the move keeps the position's value (a won position stays won, a drawn one
  drawn; in a lost position every legal move is optimal: a slower loss is not asked for);
- `blunder_rate`: over the won or drawn positions, the share where the reply gives value away
  (won -> drawn or lost, drawn -> lost, or an illegal reply);
- `illegal_rate`: the reply is no legal move.

The greedy policy is a fixed function of the position, so what it does against an opponent
follows from the same table of replies, with no more model calls:

- `exact/...`: the exact probability of each outcome against uniformly random legal play and
  against the optimal player (minimax, ties broken uniformly at random, as the `optimal`
  opponent plays), per seat;
- `games/...`: `num_games` seeded textarena games against each, half in each seat, played from
  the table with textarena as the referee (the counts a reader can check; `exact` is their
  limit).

Metric names: `first/optimal_rate`, `second/blunder_rate`, `exact/vs_random/first/win_rate`,
`games/vs_optimal/second/draw_rate`, ... and the pooled `optimal_rate`.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import chz
from cookbook_textarena.game import PROMPT_STYLES, resolve_prompt_style

from cookbook.errors import UserError
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook_tictactoe.tictactoe import (
    EMPTY,
    TicTacToe,
    best_cells,
    cells_of,
    compact_board,
    is_win,
    parse_move,
)

if TYPE_CHECKING:
    from cookbook_textarena.game import GameSession, PromptStyle
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer

SEATS = ((0, "first"), (1, "second"))
"""Seat index (0 moves first) and its metric label."""

OUTCOMES = ("win", "draw", "loss", "illegal")
"""How a game ends for the policy (`illegal`: its own illegal move ended it)."""

OPPONENTS = ("random", "optimal")
"""The scripted opponents the policy's table is played against."""

START = EMPTY * 9


def mover_mark(cells: str) -> str:
    """The mark of the player to move (player 0, who opens, plays `O`)."""
    return "O" if cells.count(EMPTY) % 2 == 1 else "X"


def mover_seat(cells: str) -> int:
    """The seat to move: 0 when an even number of marks is on the board."""
    return 0 if mover_mark(cells) == "O" else 1


def is_terminal(cells: str) -> bool:
    """A line is complete or the board is full."""
    return is_win(cells, "O") or is_win(cells, "X") or EMPTY not in cells


def play(cells: str, cell: int) -> str:
    """`cells` after the player to move takes `cell` (which must be free)."""
    return cells[:cell] + mover_mark(cells) + cells[cell + 1 :]


@functools.cache
def position_value(cells: str) -> int:
    """Game-theoretic value for the player to move: 1 won, 0 drawn, -1 lost (non-terminal
    `cells`)."""
    return max(move_values(cells).values())


@functools.cache
def move_values(cells: str) -> dict[int, int]:
    """Value of each free cell for the player to move (1 win, 0 draw, -1 loss)."""
    mark = mover_mark(cells)
    values: dict[int, int] = {}
    for i, c in enumerate(cells):
        if c != EMPTY:
            continue
        after = play(cells, i)
        if is_win(after, mark):
            values[i] = 1
        elif EMPTY not in after:
            values[i] = 0
        else:
            values[i] = -position_value(after)
    return values


@functools.cache
def reachable_positions() -> tuple[str, ...]:
    """Every non-terminal position reachable from the empty board by legal play, in order of
    the number of marks, then of the cells (4,520 of them)."""
    seen = {START}
    frontier = [START]
    out: list[str] = []
    while frontier:
        out.extend(frontier)
        following: set[str] = set()
        for cells in frontier:
            for i, c in enumerate(cells):
                if c == EMPTY:
                    after = play(cells, i)
                    if after not in seen and not is_terminal(after):
                        seen.add(after)
                        following.add(after)
        frontier = sorted(following)
    return tuple(out)


def path_to(cells: str) -> list[int]:
    """One move order that reaches `cells` from the empty board (the opener's marks and the
    answerer's, alternately), for replaying a position in textarena."""
    first = [i for i, c in enumerate(cells) if c == "O"]
    second = [i for i, c in enumerate(cells) if c == "X"]
    moves: list[int] = []
    for k in range(len(first)):
        moves.append(first[k])
        if k < len(second):
            moves.append(second[k])
    # No line is complete in a non-terminal position, so none is on the way to it either.
    return moves


PolicyTable = Mapping[str, int | None]
"""The policy's move in each position (absolute cells -> cell, None: an illegal reply)."""


def table_move(table: PolicyTable, cells: str) -> int | None:
    """The policy's legal move in `cells`, None when its reply was no legal move."""
    move = table[cells]
    return move if move is not None and 0 <= move < 9 and cells[move] == EMPTY else None


# --- scoring the table against minimax ---------------------------------------------------------


@dataclass
class SeatScore:
    """Counts over the positions where one seat is to move."""

    positions: int = 0
    optimal: int = 0
    illegal: int = 0
    not_lost: int = 0
    """Won or drawn positions."""
    blunders: int = 0
    """Won or drawn positions given away (illegal replies there included)."""

    def metrics(self, label: str) -> dict[str, float]:
        """Rates under `label/`."""
        n = max(self.positions, 1)
        return {
            f"{label}/positions": float(self.positions),
            f"{label}/optimal_rate": self.optimal / n,
            f"{label}/blunder_rate": self.blunders / max(self.not_lost, 1),
            f"{label}/illegal_rate": self.illegal / n,
        }


def score_table(table: PolicyTable) -> dict[int, SeatScore]:
    """Optimal moves, blunders and illegal replies per seat over every position of `table`."""
    scores = {seat: SeatScore() for seat, _ in SEATS}
    for cells in table:
        score = scores[mover_seat(cells)]
        values = move_values(cells)
        best = max(values.values())
        move = table_move(table, cells)
        score.positions += 1
        score.illegal += move is None
        score.optimal += move is not None and values[move] == best
        if best >= 0:
            score.not_lost += 1
            score.blunders += move is None or values[move] < best
    return scores


# --- exact outcomes of the table against an opponent -------------------------------------------

OutcomeProbs = tuple[float, float, float, float]
"""Probabilities of (win, draw, loss, illegal) for the policy."""


def exact_outcomes(table: PolicyTable, seat: int, opponent: str) -> OutcomeProbs:
    """The exact outcome probabilities of the table's policy in `seat` against `opponent`
    (`random`: uniformly random legal moves; `optimal`: a uniformly random optimal move, as the
    arena's optimal player picks among `best_cells`)."""
    policy_mark = "O" if seat == 0 else "X"

    @functools.cache
    def outcome(cells: str) -> OutcomeProbs:
        if is_win(cells, policy_mark):
            return (1.0, 0.0, 0.0, 0.0)
        if is_win(cells, "X" if policy_mark == "O" else "O"):
            return (0.0, 0.0, 1.0, 0.0)
        if EMPTY not in cells:
            return (0.0, 1.0, 0.0, 0.0)
        if mover_seat(cells) == seat:
            move = table_move(table, cells)
            return (0.0, 0.0, 0.0, 1.0) if move is None else outcome(play(cells, move))
        if opponent == "optimal":
            replies = list(best_cells(cells, mover_mark(cells)))
        else:
            replies = [i for i, c in enumerate(cells) if c == EMPTY]
        total = [0.0, 0.0, 0.0, 0.0]
        for reply in replies:
            for k, p in enumerate(outcome(play(cells, reply))):
                total[k] += p / len(replies)
        return (total[0], total[1], total[2], total[3])

    return outcome(START)


# --- games from the table, refereed by textarena -----------------------------------------------


class TablePlayer:
    """An arena player that replies from the policy's table (the greedy model's replies)."""

    def __init__(self, replies: Mapping[str, str]) -> None:
        self.replies = replies

    async def reply(self, session: GameSession, rng: random.Random) -> str:
        """The table's reply for the current position."""
        return self.replies[cells_of(session.raw_env)]


async def table_games(
    replies: Mapping[str, str], opponent: str, num_games: int, seed: int
) -> dict[int, list[str]]:
    """Outcome names of `num_games` seeded textarena games (game i in seat i % 2) of the table's
    policy against `opponent`, by seat."""
    from cookbook_textarena.evaluate import play_game
    from cookbook_textarena.game import Outcome
    from cookbook_textarena.players import OptimalPlayer, Player, RandomPlayer
    from cookbook_textarena.seeding import derive_seed

    game = TicTacToe()
    policy = TablePlayer(replies)
    other: Player = OptimalPlayer() if opponent == "optimal" else RandomPlayer()
    by_seat: dict[int, list[str]] = {0: [], 1: []}
    names = {
        Outcome.WIN: "win",
        Outcome.DRAW: "draw",
        Outcome.LOSS: "loss",
        Outcome.ILLEGAL: "illegal",
    }
    for index in range(num_games):
        seat = index % 2
        players: tuple[Player, Player] = (policy, other) if seat == 0 else (other, policy)
        rng = random.Random(derive_seed(seed, opponent, index))
        session = await play_game(game, players, rng)
        by_seat[seat].append(names[session.outcome(seat)])
    return by_seat


# --- the evaluator -----------------------------------------------------------------------------


def position_prompts(style: PromptStyle) -> dict[str, str]:
    """The user-turn text of every reachable position as its mover sees it in `style`."""
    positions = reachable_positions()
    if style == "compact":
        return {cells: compact_board(cells, mover_mark(cells)) for cells in positions}
    # textarena's own observation: replay one path to each position in a real game.
    from cookbook_textarena.game import GameSession

    game = TicTacToe()
    prompts: dict[str, str] = {}
    for cells in positions:
        session = GameSession(game)
        for cell in path_to(cells):
            session.play(f"[{cell}]")
        prompts[cells] = session.prompt(session.current_player, style)
    return prompts


class ExhaustiveEvaluator(Evaluator):
    """See the module docstring. Builds the position prompts once, on its first call."""

    def __init__(
        self,
        renderer: Renderer,
        style: PromptStyle,
        num_games: int,
        seed: int,
        max_tokens: int,
    ) -> None:
        self.renderer = renderer
        self.style = style
        self.num_games = num_games
        self.seed = seed
        self.max_tokens = max_tokens
        self._prompts: dict[str, tinker_types.ModelInput] | None = None

    def prompts(self) -> dict[str, tinker_types.ModelInput]:
        """The model input of every reachable position (cached)."""
        if self._prompts is None:
            from cookbook.renderers.base import Message

            self._prompts = {
                cells: self.renderer.build_generation_prompt([Message(role="user", content=text)])
                for cells, text in position_prompts(self.style).items()
            }
        return self._prompts

    async def greedy_replies(self, sampling_client: SamplingClient) -> dict[str, str]:
        """The model's greedy reply text in every reachable position. Every request is sent
        before the first is awaited, so a batching backend serves them in a few large batches."""
        from tinker import types as tinker_types

        params = tinker_types.SamplingParams(
            max_tokens=self.max_tokens,
            temperature=0.0,
            stop=self.renderer.get_stop_sequences(),
            seed=0,
        )
        prompts = self.prompts()
        futures = [sampling_client.sample(p, 1, params) for p in prompts.values()]
        responses = await asyncio.gather(*futures)
        replies: dict[str, str] = {}
        for cells, response in zip(prompts, responses, strict=True):
            message, _ended = self.renderer.parse_response(list(response.sequences[0].tokens))
            replies[cells] = message["content"]
        return replies

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Position scores, exact outcome probabilities and table games (see the module
        docstring)."""
        replies = await self.greedy_replies(sampling_client)
        table = {cells: _legal_cell(cells, text) for cells, text in replies.items()}
        metrics = evaluate_table(table)
        if self.num_games > 0:
            for opponent in OPPONENTS:
                by_seat = await table_games(replies, opponent, self.num_games, self.seed)
                for seat, label in SEATS:
                    metrics.update(game_rates(by_seat[seat], f"games/vs_{opponent}/{label}"))
        return metrics


def _legal_cell(cells: str, text: str) -> int | None:
    """The cell a reply takes when it is a legal move in `cells`, else None."""
    move = parse_move(text)
    if isinstance(move, str) or not 0 <= move < 9 or cells[move] != EMPTY:
        return None
    return move


def evaluate_table(table: PolicyTable) -> dict[str, float]:
    """Every metric that follows from the table alone: per-seat position scores, the pooled
    optimal rate, and the exact outcome probabilities against both opponents."""
    scores = score_table(table)
    metrics: dict[str, float] = {}
    for seat, label in SEATS:
        metrics.update(scores[seat].metrics(label))
    total = sum(s.positions for s in scores.values())
    metrics["optimal_rate"] = sum(s.optimal for s in scores.values()) / max(total, 1)
    for opponent in OPPONENTS:
        for seat, label in SEATS:
            probs = exact_outcomes(table, seat, opponent)
            for name, p in zip(OUTCOMES, probs, strict=True):
                metrics[f"exact/vs_{opponent}/{label}/{name}_rate"] = p
    return metrics


def game_rates(outcomes: list[str], prefix: str) -> dict[str, float]:
    """Outcome rates of some games under `prefix/`, and the number of games."""
    n = max(len(outcomes), 1)
    out = {f"{prefix}/{name}_rate": outcomes.count(name) / n for name in OUTCOMES}
    out[f"{prefix}/games"] = float(len(outcomes))
    return out


def policy_table(choose: Callable[[str], int | None]) -> dict[str, int | None]:
    """The table of a policy given as a function of the absolute cells (scripted policies)."""
    return {cells: choose(cells) for cells in reachable_positions()}


def _at_least(option: str, low: int) -> Callable[[object, str], None]:
    """A chz field validator raising a one-line `UserError` below `low`."""

    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if value < low:
            raise UserError(f"{option} must be at least {low}, got {value}")

    return check


def _prompt_style(obj: object, attr: str) -> None:
    value = getattr(obj, attr)
    if value not in PROMPT_STYLES:
        raise UserError(
            f"unknown eval.prompt_style {value!r}; choose one of: {', '.join(PROMPT_STYLES)}"
        )


@chz.chz
class TicTacToeExhaustiveEval(EvaluatorBuilder):
    """The greedy move in every reachable position vs minimax, and games vs random and optimal."""

    num_games: int = chz.field(
        default=400,
        validator=_at_least("eval.num_games", 0),
        doc="textarena games against each opponent (random, optimal), half in each seat, played "
        "from the greedy replies (0: only the exact probabilities)",
    )
    seed: int = chz.field(default=0, doc="seed of the opponents' moves in those games")
    max_tokens: int = chz.field(
        default=16, validator=_at_least("eval.max_tokens", 1), doc="reply length limit"
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_prompt_style,
        doc="compact, text or auto (compact for tiny, else text)",
    )

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator for `ctx`'s model."""
        return ExhaustiveEvaluator(
            renderer=ctx.renderer,
            style=resolve_prompt_style(self.prompt_style, ctx.is_tiny),
            num_games=self.num_games,
            seed=self.seed,
            max_tokens=self.max_tokens,
        )
