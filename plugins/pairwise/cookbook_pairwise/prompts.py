"""Prompt sets: the built-in synthetic one, or a local JSONL file.

A JSONL prompt file has one object per line with the prompt under `field` (default `prompt`);
blank lines are skipped. Held-out prompts come from `test_path` when given, else a stable hash of
each prompt puts a `test_fraction` share of them aside (independent of the file's order and the
seed), so training never sees them.

The policy sees the prompt as the user turn: bare for the tiny model (`cat`), inside a short
instruction for chat models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cookbook.errors import UserError
from cookbook.renderers.base import Message
from cookbook_pairwise.synthetic import builtin_prompts, is_heldout

BUILTIN = "synthetic"
"""The name of the built-in prompt set."""

CHAT_INSTRUCTION = "Write a short reply to: {prompt}"


@dataclass(frozen=True)
class PromptSet:
    """Training and held-out prompts."""

    train: list[str]
    test: list[str]


def read_prompts(path: str, field: str) -> list[str]:
    """The prompts of a JSONL file (one-line `UserError`s for every mistake)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"no prompt file at {path!r}; give a JSONL file with a {field!r} per line")
    prompts: list[str] = []
    with file.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            value = record.get(field) if isinstance(record, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise UserError(
                    f"{path}:{number}: needs a non-empty string under {field!r} (set "
                    "prompt_field= for another key)"
                )
            prompts.append(value)
    if not prompts:
        raise UserError(f"{path} holds no prompts")
    return prompts


def load_prompt_set(
    source: str, field: str = "prompt", test_path: str | None = None, test_fraction: float = 0.1
) -> PromptSet:
    """`synthetic` (the built-in set) or a JSONL path, split into training and held-out prompts."""
    if source == BUILTIN:
        train, test = builtin_prompts()
        return PromptSet(train, test)
    prompts = read_prompts(source, field)
    if test_path is not None:
        return PromptSet(prompts, read_prompts(test_path, field))
    if not 0.0 <= test_fraction < 1.0:
        raise UserError(f"test_fraction must be in [0, 1), got {test_fraction}")
    test = [p for p in prompts if is_heldout(p, test_fraction)]
    train = [p for p in prompts if not is_heldout(p, test_fraction)]
    if not train:
        raise UserError(f"every prompt of {source} was held out; lower test_fraction")
    return PromptSet(train, test)


def prompt_messages(prompt: str, is_tiny: bool) -> list[Message]:
    """The user turn the policy answers."""
    content = prompt if is_tiny else CHAT_INSTRUCTION.format(prompt=prompt)
    return [Message(role="user", content=content)]
