"""`guess-number`: a multi-turn single-player env. The env thinks of a whole number between
`low` and `high`; the policy guesses, and after each wrong guess is told whether the number is
higher or lower, until it finds it or runs out of guesses.

- compact style (the tiny model): the opening is the range, `1-31`, and each answer is the range
  the number can still be in after the higher / lower answer (`17-31` after 16 with "higher"),
  so every prompt states what the feedback so far has established. The reply is the number.
- text style (chat models): a sentence with the rules, then `Higher.` or `Lower.`; the reply is
  the number, alone or as `[12]`.

Reward: 1 for finding the number, less `guess_cost` per guess after the first; 0 when the
guesses run out or a reply is not a number (which ends the episode). Per-episode metrics:
`solved`, `guesses`, `invalid` and `wasted` (guesses the feedback so far had ruled out).
Binary search finds any of 31 numbers within 5 guesses (the default limit); guessing anywhere in
the range still open, as the warm-start games do, finds it within 5 about 55% of the time
(0.545 over 20,000 simulated games).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import chz
from cookbook_textarena.game import PROMPT_STYLES, resolve_prompt_style

from cookbook.errors import UserError
from cookbook.eval.types import EvaluatorBuilder
from cookbook.renderers.base import Message
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDatasetBuilder
from cookbook.validators import positive
from cookbook_envs_contrib.chat import ChatEnv, TaskDataset, demo_splits

if TYPE_CHECKING:
    from cookbook_textarena.game import PromptStyle

    from cookbook.build_context import BuildContext
    from cookbook.eval.types import Evaluator
    from cookbook.renderers.base import Renderer
    from cookbook.rl.types import RLDataset
    from cookbook.supervised.types import SupervisedDataset

TAG = "guess_number"
_NUMBER = re.compile(r"\[?\s*(-?[0-9]{1,9})\s*\]?")


@dataclass(frozen=True)
class GuessRules:
    """One game's rules."""

    low: int = 1
    high: int = 31
    max_guesses: int = 5
    guess_cost: float = 0.05

    def validate(self) -> None:
        """One-line `UserError`s for rules that make no game."""
        if self.low > self.high:
            raise UserError(f"low={self.low} is above high={self.high}")
        if self.max_guesses < 1:
            raise UserError(f"max_guesses must be at least 1, got {self.max_guesses}")
        if not 0 <= self.guess_cost * (self.max_guesses - 1) <= 1:
            raise UserError(
                f"guess_cost={self.guess_cost} must be >= 0 and leave a found number a reward "
                f">= 0 after {self.max_guesses} guesses"
            )


def parse_guess(text: str) -> int | None:
    """The number a reply guesses (`12` or `[12]` as the whole reply), or None."""
    match = _NUMBER.fullmatch(text.strip())
    return int(match[1]) if match else None


def opening_text(rules: GuessRules, style: PromptStyle) -> str:
    """The first user message."""
    if style == "compact":
        return f"{rules.low}-{rules.high}"
    return (
        f"I am thinking of a whole number from {rules.low} to {rules.high}. Guess it: you have "
        f"{rules.max_guesses} guesses, and after each wrong one I say whether the number is "
        "higher or lower. Reply with your guess as a number only."
    )


def feedback_text(higher: bool, low: int, high: int, style: PromptStyle) -> str:
    """The answer to a wrong guess: the range still open (compact) or Higher. / Lower."""
    if style == "compact":
        return f"{low}-{high}"
    return "Higher." if higher else "Lower."


class GuessNumberEnv(ChatEnv):
    """One game: guesses until the number is found, the guesses run out, or a reply is no
    number."""

    def __init__(self, secret: int, rules: GuessRules, renderer: Renderer, style: PromptStyle):
        super().__init__(renderer)
        self.secret = secret
        self.rules = rules
        self.style = style
        self.low, self.high = rules.low, rules.high
        """The range the feedback so far leaves open."""
        self.guesses = 0
        self.wasted = 0

    def opening(self) -> str:
        """The range and, in the text style, the rules."""
        return opening_text(self.rules, self.style)

    def _end(self, solved: bool, invalid: bool) -> float:
        self.episode_metrics = {
            "solved": float(solved),
            "guesses": float(self.guesses),
            "invalid": float(invalid),
            "wasted": float(self.wasted),
        }
        return 1.0 - self.rules.guess_cost * (self.guesses - 1) if solved else 0.0

    def respond(self, reply: str, ended: bool) -> tuple[str | None, float, dict[str, str]]:
        """Higher / lower, or the end of the game."""
        guess = parse_guess(reply) if ended else None
        if guess is None:
            why = "not a number" if ended else "cut off by the length limit"
            return None, self._end(False, True), {"invalid": f"{reply!r}: {why}"}
        self.guesses += 1
        if guess == self.secret:
            return None, self._end(True, False), {"outcome": f"found in {self.guesses}"}
        if not self.low <= guess <= self.high:
            self.wasted += 1
        higher = guess < self.secret
        if higher:
            self.low = max(self.low, guess + 1)
        else:
            self.high = min(self.high, guess - 1)
        if self.guesses >= self.rules.max_guesses:
            return None, self._end(False, False), {"outcome": f"not found: {self.secret}"}
        return feedback_text(higher, self.low, self.high, self.style), 0.0, {}


@dataclass(frozen=True)
class GuessNumberEnvFactory:
    """Makes the env of one secret (plain data, so group builders pickle)."""

    rules: GuessRules
    renderer: Renderer
    style: PromptStyle

    def __call__(self, secret: int) -> GuessNumberEnv:
        return GuessNumberEnv(secret, self.rules, self.renderer, self.style)


def heldout_secrets(rules: GuessRules, count: int) -> list[int]:
    """The test set: `count` numbers spread evenly over the range (every number when the range
    has at most `count`), the same for every run."""
    span = rules.high - rules.low + 1
    if count >= span:
        return list(range(rules.low, rules.high + 1))
    return [rules.low + (i * span) // count for i in range(count)]


def random_play(secret: int, rules: GuessRules, rng: random.Random) -> list[int]:
    """The guesses of a player who guesses anywhere in the range still open."""
    low, high = rules.low, rules.high
    guesses: list[int] = []
    while len(guesses) < rules.max_guesses:
        guess = rng.randint(low, high)
        guesses.append(guess)
        if guess == secret:
            break
        if guess < secret:
            low = guess + 1
        else:
            high = guess - 1
    return guesses


def demo_conversation(
    secret: int, guesses: list[int], rules: GuessRules, style: PromptStyle
) -> list[Message]:
    """The conversation of one game played with `guesses`."""
    messages = [Message(role="user", content=opening_text(rules, style))]
    low, high = rules.low, rules.high
    for guess in guesses:
        messages.append(Message(role="assistant", content=str(guess)))
        if guess == secret:
            break
        if guess < secret:
            low = max(low, guess + 1)
        else:
            high = min(high, guess - 1)
        messages.append(
            Message(role="user", content=feedback_text(guess < secret, low, high, style))
        )
    if messages[-1]["role"] == "user":
        messages.pop()  # out of guesses: the game ends on the last reply
    return messages


@chz.chz
class GuessNumberEnvBuilder(RLDatasetBuilder):
    """Guess a number from higher / lower feedback, several guesses per episode."""

    low: int = chz.field(default=1, doc="smallest possible number")
    high: int = chz.field(default=31, doc="largest possible number")
    max_guesses: int = chz.field(default=5, doc="guesses per game")
    guess_cost: float = chz.field(
        default=0.05, doc="reward taken off a found number for each guess after the first"
    )
    prompt_style: str = chz.field(
        default="auto", doc="compact (the open range, for the tiny model), text or auto"
    )
    num_test: int = chz.field(default=31, doc="games of the test set (numbers spread evenly)")
    num_batches: int = chz.field(
        default=100_000, validator=positive("env.num_batches"), doc="training batches"
    )

    @chz.validate
    def _check(self) -> None:
        self.rules().validate()
        if self.prompt_style not in PROMPT_STYLES:
            raise UserError(
                f"unknown env.prompt_style {self.prompt_style!r}; choose one of: "
                f"{', '.join(PROMPT_STYLES)}"
            )

    def rules(self) -> GuessRules:
        """The options as one value."""
        return GuessRules(self.low, self.high, self.max_guesses, self.guess_cost)

    def reward_range(self) -> tuple[float, float]:
        """0 (not found) to 1 (found at the first guess)."""
        return (0.0, 1.0)

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """Train: a random number per group, G games each. Test: numbers spread over the range,
        one game each."""
        rules = self.rules()
        factory = GuessNumberEnvFactory(
            rules, ctx.renderer, resolve_prompt_style(self.prompt_style, ctx.is_tiny)
        )

        def draw(rng: random.Random) -> int:
            return rng.randint(rules.low, rules.high)

        train = TaskDataset(
            draw=draw,
            make_env=factory,
            seed=ctx.seed,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            num_batches=self.num_batches,
            tags=(TAG,),
        )
        secrets = heldout_secrets(rules, self.num_test)
        if not secrets or self.num_test <= 0:
            return train, None
        test = TaskDataset(
            draw=draw,
            make_env=factory,
            seed=0,
            groups_per_batch=ctx.groups_per_batch,
            group_size=1,
            num_batches=0,
            tags=(TAG,),
            fixed=secrets,
        )
        return train, test


@chz.chz
class GuessNumberDemosBuilder(SupervisedDatasetBuilder):
    """Warm-start games: each guess anywhere in the range still open (the format and the
    feedback, not a strategy: binary search is left to RL)."""

    num_games: int = chz.field(
        default=2000, validator=positive("dataset.num_games"), doc="training games"
    )
    test_games: int = chz.field(default=100, doc="held-out games (0 for no test set)")
    low: int = chz.field(default=1, doc="must match the env's")
    high: int = chz.field(default=31, doc="must match the env's")
    max_guesses: int = chz.field(default=5, doc="must match the env's")
    batch_size: int | None = chz.field(
        default=None,
        validator=positive("dataset.batch_size"),
        doc="games per batch (default: the run's batch size)",
    )
    prompt_style: str = chz.field(default="auto", doc="must match the env's: compact, text, auto")

    def rules(self) -> GuessRules:
        """The game's rules (the reward does not matter here)."""
        return GuessRules(self.low, self.high, self.max_guesses, guess_cost=0.0)

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Train and held-out games from disjoint seeds."""
        rules = self.rules()
        rules.validate()
        style = resolve_prompt_style(self.prompt_style, ctx.is_tiny)
        batch_size = self.batch_size or ctx.groups_per_batch

        def games(count: int, seed: int) -> list[list[Message]]:
            rng = random.Random(f"guess-number-demos/{seed}")
            out = []
            for _ in range(count):
                secret = rng.randint(rules.low, rules.high)
                out.append(demo_conversation(secret, random_play(secret, rules, rng), rules, style))
            return out

        return demo_splits(
            games, self.num_games, self.test_games, ctx.renderer, batch_size, ctx.seed
        )


@chz.chz
class GuessNumberEval(EvaluatorBuilder):
    """Solved rate and guesses over the test numbers (the same games for every checkpoint)."""

    num_games: int = chz.field(
        default=31, validator=positive("eval.num_games"), doc="games (numbers spread evenly)"
    )
    low: int = chz.field(default=1, doc="smallest possible number")
    high: int = chz.field(default=31, doc="largest possible number")
    max_guesses: int = chz.field(default=5, doc="guesses per game")
    temperature: float = chz.field(default=0.0, doc="sampling temperature (0: greedy)")
    max_tokens: int = chz.field(
        default=8, validator=positive("eval.max_tokens"), doc="reply length limit"
    )
    prompt_style: str = chz.field(default="auto", doc="compact, text or auto")

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """Plays the env's test games (`env/solved`, `env/guesses`, `reward/mean`, ...)."""
        from cookbook.rl.evaluators import RLTestSetEvaluator

        env = GuessNumberEnvBuilder(
            low=self.low,
            high=self.high,
            max_guesses=self.max_guesses,
            prompt_style=self.prompt_style,
            num_test=self.num_games,
        )
        _train, test = env(ctx)
        assert test is not None
        return RLTestSetEvaluator(test, self.max_tokens, self.temperature, max_batches=None)
