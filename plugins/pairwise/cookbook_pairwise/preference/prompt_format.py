"""How a comparison is shown to a model judge, and how its answer is read.

One format serves training and judging: the `comparisons` dataset trains a judge on exactly the
messages `judge_messages` makes, and the `judge` / `trained` preference models ask with them.

- `compact` (the built-in tiny model, one token per byte): the prompt and the two completions on
  three lines, nothing else; the answer is `A` or `B`.
- `text` (chat models): an instruction with the two responses labelled; the answer is `A`, `B`
  or `tie`.
"""

from __future__ import annotations

import re
from typing import Literal

from cookbook.errors import UserError
from cookbook.preference.types import JudgeOutputError
from cookbook.renderers.base import Message

JudgeStyle = Literal["compact", "text"]
JUDGE_STYLES = ("auto", "compact", "text")
"""Values of the `prompt_style` options (auto: compact for the tiny model, else text)."""

ANSWER_FIRST = "A"
ANSWER_SECOND = "B"
ANSWER_TIE = "tie"

TEXT_TEMPLATE = """\
Compare two responses to the same prompt and say which one is better.

Prompt:
{prompt}

Response A:
{first}

Response B:
{second}

Answer with exactly one of: A, B, tie."""

_ANSWER = re.compile(r"^\W*(?:response\s+)?(a|b|tie)\b", re.IGNORECASE)


def resolve_style(style: str, is_tiny: bool) -> JudgeStyle:
    """`auto` -> `compact` for the tiny model, `text` otherwise."""
    if style == "auto":
        return "compact" if is_tiny else "text"
    if style == "compact":
        return "compact"
    if style == "text":
        return "text"
    raise UserError(
        f"unknown judge prompt style {style!r}; choose one of: {', '.join(JUDGE_STYLES)}"
    )


def _one_line(text: str) -> str:
    """Newlines would shift the compact format's three lines: show them as spaces."""
    return text.replace("\r", " ").replace("\n", " ")


def judge_messages(prompt: str, first: str, second: str, style: JudgeStyle) -> list[Message]:
    """The user turn that asks which of `first` (A) and `second` (B) is better."""
    if style == "compact":
        content = f"{_one_line(prompt)}\n{_one_line(first)}\n{_one_line(second)}"
    else:
        content = TEXT_TEMPLATE.format(prompt=prompt, first=first, second=second)
    return [Message(role="user", content=content)]


def answer_text(p_first: float) -> str:
    """The answer a judge is trained to give: A (first better), B (second better) or tie."""
    if p_first > 0.5:
        return ANSWER_FIRST
    if p_first < 0.5:
        return ANSWER_SECOND
    return ANSWER_TIE


def parse_answer(reply: str) -> float:
    """`p_first` from a judge's reply: `A` -> 1, `B` -> 0, `tie` -> 0.5 (case-insensitive,
    leading punctuation and a `Response` prefix allowed). Anything else raises
    `JudgeOutputError`."""
    match = _ANSWER.match(reply.strip())
    if match is None:
        shown = reply.strip()[:40]
        raise JudgeOutputError(f"judge reply {shown!r} is not A, B or tie")
    word = match.group(1).lower()
    return 1.0 if word == "a" else 0.0 if word == "b" else 0.5
