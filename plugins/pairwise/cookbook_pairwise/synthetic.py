"""Seeded synthetic text written for this plugin: prompts, and completions of controlled shape.

Everything is lower-case ASCII letters, short enough for the built-in byte-level tiny model (one
token per letter). The prompts are a fixed set (the same for every run seed) split into training
and held-out prompts; completions are drawn with a chosen share of vowels, so the built-in
comparisons cover the range an RL policy moves through when a rule prefers vowels.
"""

from __future__ import annotations

import hashlib
import random
import string

LETTERS = string.ascii_lowercase
VOWELS = "aeiou"
CONSONANTS = "".join(c for c in LETTERS if c not in VOWELS)

NUM_PROMPTS = 1200
"""Prompts in the built-in set (about a tenth of them held out)."""
HELDOUT_FRACTION = 0.1
"""Share of the built-in prompts held out (picked by a hash of the prompt, not by the seed)."""


def is_heldout(text: str, fraction: float, salt: str = "pairwise") -> bool:
    """Whether `text` falls in the held-out share: a stable hash of the text, so the split does not
    depend on the order of a file or on the run's seed."""
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def random_word(rng: random.Random, min_len: int, max_len: int, vowel_share: float) -> str:
    """Letters with each one a vowel with probability `vowel_share`, else a consonant (both
    uniform within their class)."""
    length = rng.randint(min_len, max_len)
    return "".join(
        rng.choice(VOWELS) if rng.random() < vowel_share else rng.choice(CONSONANTS)
        for _ in range(length)
    )


def uniform_word(rng: random.Random, min_len: int, max_len: int) -> str:
    """Letters drawn uniformly from a-z (about 19% vowels): what the warm-started policy writes."""
    length = rng.randint(min_len, max_len)
    return "".join(rng.choice(LETTERS) for _ in range(length))


def builtin_prompts() -> tuple[list[str], list[str]]:
    """The built-in prompt set as `(train, test)`: `NUM_PROMPTS` distinct words of 3-6 letters,
    the same for every seed."""
    rng = random.Random("cookbook-pairwise-prompts")
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < NUM_PROMPTS:
        word = uniform_word(rng, 3, 6)
        if word not in seen:
            seen.add(word)
            words.append(word)
    train = [w for w in words if not is_heldout(w, HELDOUT_FRACTION)]
    test = [w for w in words if is_heldout(w, HELDOUT_FRACTION)]
    return train, test


def varied_completion(rng: random.Random, max_len: int) -> str:
    """A completion for the built-in comparisons: 1 to `max_len` letters, its vowel share drawn
    uniformly from [0, 1] (half the time) or the uniform-letter mix (the warm-started policy)."""
    if rng.random() < 0.5:
        return uniform_word(rng, 1, max_len)
    return random_word(rng, 1, max_len, rng.random())
