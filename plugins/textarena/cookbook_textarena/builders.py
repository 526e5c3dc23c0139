"""The chz configs a two-player game registers: its env, its demonstration dataset and its evals.

A game subclasses each one and overrides `game()`; the fields (the user's `env.*`, `dataset.*`
and `eval.*` options) are shared by every game. Light at import time: textarena, torch and
tinker are imported only when a config is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.eval.types import EvaluatorBuilder
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDatasetBuilder
from cookbook.validators import non_negative, positive
from cookbook_textarena.game import PROMPT_STYLES, resolve_prompt_style
from cookbook_textarena.opponents import parse_mixture
from cookbook_textarena.players import OPPONENTS, check_opponent
from cookbook_textarena.seats import ENV_SEATS, EVAL_SEATS, eval_seats

if TYPE_CHECKING:
    from cookbook.build_context import BuildContext
    from cookbook.eval.types import Evaluator
    from cookbook.rl.types import RLDataset
    from cookbook.supervised.types import SupervisedDataset
    from cookbook_textarena.game import TwoPlayerGame


def _one_of(option: str, allowed: tuple[str, ...]) -> Callable[[object, str], None]:
    """A chz field validator raising a one-line `UserError` that lists the valid values."""

    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if value not in allowed:
            raise UserError(f"unknown {option} {value!r}; choose one of: {', '.join(allowed)}")

    return check


def _mixture(obj: object, attr: str) -> None:
    parse_mixture(getattr(obj, attr), "env.opponent")


def _fraction(option: str) -> Callable[[object, str], None]:
    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{option} must be between 0 and 1, got {value}")

    return check


@chz.chz
class TwoPlayerEnvBuilder(RLDatasetBuilder):
    """A two-player game as an RL env: the policy against a fixed opponent, or self-play."""

    opponent: str = chz.field(
        default="random",
        validator=_mixture,
        doc="who the policy plays, one kind or a weighted mixture chosen per group "
        "(random:1,optimal:1,self:1,pool:1): random (uniform legal moves), optimal (game-tree "
        "search, ties broken at random), checkpoint (frozen weights at opponent_checkpoint), self "
        "(self-play, both seats trained), pool (a frozen snapshot of this run: one of its newest "
        "pool_size checkpoints)",
    )
    opponent_checkpoint: str | None = chz.field(
        default=None,
        doc="sampler weights of a previous run (a local path), for opponent=checkpoint",
    )
    self_play: bool = chz.field(
        default=False,
        doc="shorthand for opponent=self: a group of G envs plays G/2 games, seats side by side",
    )
    seat: str = chz.field(
        default="first",
        validator=_one_of("env.seat", ENV_SEATS),
        doc="the policy's seat against an opponent: first (moves first), second, or alternate "
        "(by group, half of each opponent's groups in each seat; a group's games share a seat)",
    )
    pool_size: int = chz.field(
        default=8,
        validator=positive("env.pool_size"),
        doc="snapshots in the pool of opponent=pool: the run's newest checkpoints (save_every "
        "sets how often one is added; until the first, pool groups play self-play)",
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_one_of("env.prompt_style", PROMPT_STYLES),
        doc="compact (a few dozen bytes, for the tiny model), text (textarena's observation, for "
        "chat models) or auto (compact for tiny, else text)",
    )
    illegal_penalty: float = chz.field(
        default=-1.0, doc="reward of an illegal move, which ends the game (win +1, draw 0, loss -1)"
    )
    opponent_temperature: float = chz.field(
        default=1.0, doc="sampling temperature of a checkpoint opponent"
    )
    opponent_max_tokens: int = chz.field(
        default=16,
        validator=positive("env.opponent_max_tokens"),
        doc="reply length limit of a checkpoint opponent",
    )
    opening_plies: int = chz.field(
        default=0,
        validator=non_negative("env.opening_plies"),
        doc="each game opens with up to this many random legal moves (both sides; never one "
        "that ends the game; against an opponent, a length after which the policy is to move) "
        "before the policy's first move: positions it would not reach on its own",
    )
    num_batches: int = chz.field(
        default=100_000,
        validator=positive("env.num_batches"),
        doc="batches in the dataset (the run's max_steps usually stops first)",
    )

    def game(self) -> TwoPlayerGame:
        """The game this env plays (subclasses override)."""
        raise NotImplementedError(f"{type(self).__name__} must implement game()")

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """The training dataset (no test set: the registered evals measure progress)."""
        from cookbook_textarena.envs import Rewards, TwoPlayerGroupBuilder, TwoPlayerRLDataset
        from cookbook_textarena.opponents import SnapshotPool

        game = self.game()
        weights = {"self": 1.0} if self.self_play else parse_mixture(self.opponent)
        if ("self" in weights or "pool" in weights) and (ctx.group_size < 2 or ctx.group_size % 2):
            raise UserError(
                f"self-play (env.opponent with self or pool) needs an even group_size (two seats "
                f"per game), got {ctx.group_size}"
            )
        if "optimal" in weights:
            game.require_optimal_policy("env.opponent=optimal")
        if "checkpoint" in weights:
            check_opponent("checkpoint", self.opponent_checkpoint)
            if not os.path.exists(str(self.opponent_checkpoint)):
                raise UserError(
                    f"no checkpoint at env.opponent_checkpoint={self.opponent_checkpoint!r}; give "
                    "the path of saved sampler weights"
                )
        first = next(iter(weights))
        template = TwoPlayerGroupBuilder(
            game=game,
            renderer=ctx.renderer,
            style=resolve_prompt_style(self.prompt_style, ctx.is_tiny),
            game_seeds=(),
            self_play=first == "self",
            opponent=first if first in OPPONENTS else "random",
            opponent_checkpoint=self.opponent_checkpoint,
            opponent_max_tokens=self.opponent_max_tokens,
            opponent_temperature=self.opponent_temperature,
            rewards=Rewards(illegal=self.illegal_penalty),
            opening_plies=self.opening_plies,
        )
        train = TwoPlayerRLDataset(
            template,
            seed=ctx.seed,
            num_batches=self.num_batches,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            seat_mode=self.seat,
            weights=weights,
            pool=SnapshotPool(ctx.log_dir, self.pool_size) if "pool" in weights else None,
        )
        return train, None


@chz.chz
class TwoPlayerDemosBuilder(SupervisedDatasetBuilder):
    """Demonstration games: every position with a legal move as the reply."""

    num_games: int = chz.field(
        default=2000, validator=positive("dataset.num_games"), doc="training games"
    )
    test_games: int = chz.field(default=100, doc="held-out games (0 for no test set)")
    optimal_fraction: float = chz.field(
        default=0.0,
        validator=_fraction("dataset.optimal_fraction"),
        doc="probability that a demonstration move is optimal instead of uniformly random legal",
    )
    batch_size: int | None = chz.field(
        default=None,
        validator=positive("dataset.batch_size"),
        doc="examples per batch (default: the run's batch size)",
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_one_of("dataset.prompt_style", PROMPT_STYLES),
        doc="must match the env's: compact, text or auto (compact for tiny, else text)",
    )

    def game(self) -> TwoPlayerGame:
        """The game the demonstrations play (subclasses override)."""
        raise NotImplementedError(f"{type(self).__name__} must implement game()")

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Train and held-out sets from disjoint seeds."""
        from cookbook_textarena.demos import DemonstrationDataset, demonstrations

        game = self.game()
        if self.optimal_fraction > 0:
            game.require_optimal_policy(f"dataset.optimal_fraction={self.optimal_fraction}")
        style = resolve_prompt_style(self.prompt_style, ctx.is_tiny)
        batch_size = self.batch_size or ctx.groups_per_batch
        train_demos = demonstrations(
            game, style, self.num_games, seed=ctx.seed, optimal_fraction=self.optimal_fraction
        )
        train = DemonstrationDataset(train_demos, ctx.renderer, batch_size, seed=ctx.seed)
        if self.test_games <= 0:
            return train, None
        # A different seed stream: held-out games are not training games.
        test_seed = ctx.seed + 1_000_003
        test_demos = demonstrations(
            game, style, self.test_games, seed=test_seed, optimal_fraction=self.optimal_fraction
        )
        return train, DemonstrationDataset(test_demos, ctx.renderer, batch_size, seed=test_seed)


@chz.chz
class TwoPlayerEvalBuilder(EvaluatorBuilder):
    """Rates against a scripted opponent over seeded games, half in each seat."""

    num_games: int = chz.field(
        default=100, validator=positive("eval.num_games"), doc="games (half in each seat)"
    )
    seat: str = chz.field(
        default="both",
        validator=_one_of("eval.seat", EVAL_SEATS),
        doc="the model's seat: both (alternating by game), first (moves first) or second",
    )
    seed: int = chz.field(
        default=0, doc="seed of the games (fixed, so every checkpoint plays the same games)"
    )
    temperature: float = chz.field(default=1.0, doc="the model's sampling temperature")
    max_tokens: int = chz.field(
        default=16, validator=positive("eval.max_tokens"), doc="reply length limit"
    )
    prompt_style: str = chz.field(
        default="auto",
        validator=_one_of("eval.prompt_style", PROMPT_STYLES),
        doc="compact, text or auto (compact for tiny, else text)",
    )

    def game(self) -> TwoPlayerGame:
        """The game played (subclasses override)."""
        raise NotImplementedError(f"{type(self).__name__} must implement game()")

    def opponent(self) -> str:
        """The scripted opponent, `random` or `optimal` (subclasses override)."""
        raise NotImplementedError(f"{type(self).__name__} must implement opponent()")

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The evaluator for `ctx`'s model."""
        from cookbook_textarena.evaluate import TwoPlayerEvaluator

        game, opponent = self.game(), self.opponent()
        if opponent == "optimal":
            game.require_optimal_policy(f"the eval against the {opponent} player")
        return TwoPlayerEvaluator(
            game=game,
            opponent=opponent,
            renderer=ctx.renderer,
            style=resolve_prompt_style(self.prompt_style, ctx.is_tiny),
            num_games=self.num_games,
            seats=eval_seats(self.seat),
            seed=self.seed,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
