"""A scripted policy for contract checks: seeded, model-free replies that look like what an
untrained model emits (a digit, a short word, arbitrary token ids), ending with the turn's stop
condition most of the time and cut off by length otherwise.

It answers the same observation and seed with the same tokens, so two rollouts of a
deterministic env match token for token. It also records what it was shown (observations and
stop conditions), for the checks to inspect.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cookbook.rl.rollouts import SampledTokens

if TYPE_CHECKING:
    from cookbook.rl.types import Observation, StopCondition
    from cookbook.tokenizers import Tokenizer

_TEXT_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n"


@dataclass
class SeenTurn:
    """One call of the policy: what the env showed it."""

    ob_tokens: list[int]
    """The observation's token ids (empty when it could not be flattened to ids)."""
    ob_error: str | None
    """Why the observation could not be read as token ids, if it could not."""
    stop: StopCondition
    """The stop condition of the turn."""


@dataclass
class ScriptedPolicy:
    """A `TokenPolicy` (see `cookbook.rl.rollouts`) that needs no model.

    Each reply is, chosen by the seed: one or two ASCII digits (half the time: a plausible move
    or answer, so multi-turn episodes get past their first turn), a few printable ASCII
    characters, or token ids drawn uniformly from the whole vocabulary (special tokens and
    invalid UTF-8 included: real samplers emit those too). With
    probability `stop_probability` one of the stop tokens (or a stop string) follows, as a
    sampler would end the turn; otherwise the reply is what a length cut leaves."""

    tokenizer: Tokenizer
    """Encodes the text replies and bounds the random token ids."""
    max_tokens: int = 8
    """Longest reply, stop token included."""
    stop_probability: float = 0.8
    """How often a reply ends with the turn's stop condition."""
    seen: list[SeenTurn] = field(default_factory=list)
    """Every turn served so far, in call order."""

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        """The reply for this turn (a function of `seed` only)."""
        self.seen.append(_seen_turn(ob, stop))
        tokens = self.reply(stop, seed)
        logprob = -math.log(max(self.tokenizer.vocab_size, 2))
        return SampledTokens(tokens=tokens, logprobs=[logprob] * len(tokens))

    def reply(self, stop: StopCondition, seed: int) -> list[int]:
        """The tokens answered for `seed` under stop condition `stop`."""
        rng = random.Random(seed)
        room = max(self.max_tokens - 1, 1)  # leave a place for a stop token
        mode = rng.random()
        if mode < 0.5:  # the most common useful reply: a short number
            digits = "".join(rng.choice(string.digits) for _ in range(1 + (rng.random() < 0.3)))
            body = self.tokenizer.encode(digits)
        elif mode < 0.75:
            length = 1 + rng.randrange(room)
            text = "".join(rng.choice(_TEXT_ALPHABET) for _ in range(length))
            body = self.tokenizer.encode(text)
        else:
            vocab = max(self.tokenizer.vocab_size, 1)
            body = [rng.randrange(vocab) for _ in range(1 + rng.randrange(room))]
        if stop and rng.random() < self.stop_probability:
            choice = rng.choice(list(stop))
            end = [choice] if isinstance(choice, int) else self.tokenizer.encode(str(choice))
            return [*body[: max(self.max_tokens - len(end), 0)], *end]
        return body[: self.max_tokens]


def _seen_turn(ob: Observation, stop: StopCondition) -> SeenTurn:
    try:
        tokens = list(ob.to_ints())
    except Exception as e:  # image chunks, or not a ModelInput at all
        return SeenTurn(ob_tokens=[], ob_error=f"{type(e).__name__}: {e}", stop=stop)
    return SeenTurn(ob_tokens=tokens, ob_error=None, stop=stop)
