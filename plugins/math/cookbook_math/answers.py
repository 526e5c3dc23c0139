"""Answer extraction and exact numeric comparison: pure string work, safe on hostile input.

Nothing here evaluates text. Every regex is linear, inputs are capped in length, and numbers are
parsed digit by digit into `Fraction`s with a cap on their size, so a 10,000-digit "answer" or a
megabyte of garbage costs microseconds, not minutes.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal, TypeAlias

AnswerMode: TypeAlias = Literal["boxed", "hash", "last_number", "auto"]
"""Where the answer sits in a response:

- `boxed`: the content of the last `\\boxed{...}` (MATH style);
- `hash`: the text after the last `####` (GSM8K style);
- `last_number`: the last number in the text;
- `auto`: `boxed`, else `hash`, else `last_number`.
"""

ANSWER_MODES: tuple[AnswerMode, ...] = ("boxed", "hash", "last_number", "auto")

MAX_RESPONSE_CHARS = 20_000
"""Only the last this-many characters of a response are searched (answers come at the end)."""
MAX_ANSWER_CHARS = 400
"""Longer extracted answers are graded wrong without parsing."""
MAX_NUMBER_CHARS = 120
"""Longer numerals are not parsed as numbers (no honest answer has 100+ digits)."""
MAX_NESTING = 12
"""Deeper bracket nesting is graded wrong without parsing (the LaTeX parser is exponential)."""

_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_PLAIN_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH_RE = re.compile(r"([+-]?\d+)\s*/\s*([+-]?\d+)")
_FRAC_RE = re.compile(
    r"([+-]?)\\[dt]?frac\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))"
)
_NUMBER_WITH_UNIT_RE = re.compile(r"(\\?\$?\s*-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s+[A-Za-z]")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TEXT_WRAP_RE = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}$")
# Decorations that never change a number's value.
_STRIP_TOKENS = ("\\$", "$", "\\!", "\\,", "\\;", "\\ ", "\\left", "\\right", "\\%", "%", "~")


def _tail(text: str) -> str:
    return text[-MAX_RESPONSE_CHARS:]


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each `{` -> index of its matching `}` (one pass, unbalanced ones left out)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for i, c in enumerate(text):
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            match[stack.pop()] = i
    return match


def extract_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{...}` (braces balanced), or None."""
    text = _tail(text)
    opens = [m.end() - 1 for m in _BOXED_RE.finditer(text)]
    if not opens:
        return None
    match = _closing_braces(text)
    for brace in reversed(opens):
        if brace in match:
            return text[brace + 1 : match[brace]].strip()
    return None


def extract_hash(text: str) -> str | None:
    """The rest of the line after the last `####`, or None. A number followed by words
    (`#### 18 dollars`) gives just the number."""
    text = _tail(text)
    pos = text.rfind("####")
    if pos < 0:
        return None
    answer = text[pos + 4 :].strip().split("\n", 1)[0].strip()
    with_unit = _NUMBER_WITH_UNIT_RE.match(answer)
    if with_unit:
        return with_unit.group(1)
    return answer or None


def extract_last_number(text: str) -> str | None:
    """The last number in the text (`-1,234.5`, `3/4` included), or None."""
    last: str | None = None
    for m in _NUMBER_RE.finditer(_tail(text)):
        last = m.group(0)
    return last


def extract_answer(text: str, mode: AnswerMode = "auto") -> str | None:
    """The answer in a response according to `mode` (see `AnswerMode`), or None if absent."""
    if mode == "boxed":
        return extract_boxed(text)
    if mode == "hash":
        return extract_hash(text)
    if mode == "last_number":
        return extract_last_number(text)
    if mode == "auto":
        return extract_boxed(text) or extract_hash(text) or extract_last_number(text)
    raise ValueError(f"unknown answer mode {mode!r}; choose one of {', '.join(ANSWER_MODES)}")


def is_well_formed(text: str, mode: AnswerMode) -> bool:
    """Whether the response states its answer the way `mode` asks: a `\\boxed{}`, a `####`
    line, or (for `last_number`) nothing but one number; `auto` accepts any of these."""
    if mode == "boxed":
        return extract_boxed(text) is not None
    if mode == "hash":
        return extract_hash(text) is not None
    if mode == "last_number":
        return parse_number(text.strip()) is not None and len(text.strip()) <= MAX_NUMBER_CHARS
    return any(is_well_formed(text, m) for m in ("boxed", "hash", "last_number"))


def normalize_answer(answer: str) -> str:
    """Drop decorations that never change a value: `$`, thin spaces, `\\left`, `%`, a final
    period, an outer `\\text{}`, surrounding whitespace."""
    s = answer.strip()
    for token in _STRIP_TOKENS:
        s = s.replace(token, "")
    s = s.strip().rstrip(".").strip()
    m = _TEXT_WRAP_RE.match(s)
    if m:
        s = m.group(1).strip()
    return s


def _to_fraction(numeral: str) -> Fraction | None:
    if len(numeral) > MAX_NUMBER_CHARS or not _PLAIN_RE.fullmatch(numeral):
        return None
    return Fraction(numeral)


def parse_number(answer: str) -> Fraction | None:
    """The exact value of a plain numeric answer, or None if it is not one.

    Accepts integers, decimals, thousands separators (`1,234`), `a/b`, `\\frac{a}{b}` (and
    `\\dfrac`, `\\tfrac`, `\\frac12`), with decorations removed by `normalize_answer`.
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    s = normalize_answer(answer)
    if not s or len(s) > MAX_NUMBER_CHARS:
        return None
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    plain = _to_fraction(s)
    if plain is not None:
        return plain
    m = _SLASH_RE.fullmatch(s)
    if m:
        num, den = _to_fraction(m.group(1)), _to_fraction(m.group(2))
    else:
        m = _FRAC_RE.fullmatch(s)
        if not m:
            return None
        num = _to_fraction(m.group(1) + (m.group(2) or m.group(3)))
        den = _to_fraction(m.group(4) or m.group(5))
    if num is None or den is None or den == 0:
        return None
    return num / den


def nesting_depth(text: str) -> int:
    """The deepest nesting of `()`, `[]` and `{}` in `text` (unbalanced closers ignored)."""
    depth = deepest = 0
    for c in text:
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}" and depth > 0:
            depth -= 1
    return deepest


def format_number(value: Fraction) -> str:
    """A canonical string for an exact value: `68`, `-3`, `7/2`."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"
