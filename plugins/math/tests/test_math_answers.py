"""Answer extraction and exact numeric parsing (pure string work, no worker)."""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import pytest
from cookbook_math.answers import (
    MAX_NUMBER_CHARS,
    AnswerMode,
    extract_answer,
    extract_boxed,
    format_number,
    is_well_formed,
    nesting_depth,
    parse_number,
)


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("so it is \\boxed{42}.", "boxed", "42"),
        ("\\boxed{1} then \\boxed{\\frac{3}{4}}", "boxed", "\\frac{3}{4}"),
        ("nested \\boxed{\\frac{\\sqrt{2}}{2}} end", "boxed", "\\frac{\\sqrt{2}}{2}"),
        ("unclosed \\boxed{12", "boxed", None),
        ("no box 12", "boxed", None),
        ("steps\n#### 1,250\nthanks", "hash", "1,250"),
        ("#### 3\nthen #### 7", "hash", "7"),
        ("####   ", "hash", None),
        ("we get 12 and then -3.5 apples", "last_number", "-3.5"),
        ("it is 3/4 of it", "last_number", "3/4"),
        ("a total of 1,234,567 grains", "last_number", "1,234,567"),
        ("no digits here", "last_number", None),
        ("\\boxed{5} #### 6 and 7", "auto", "5"),
        ("#### 6 and 7", "auto", "6"),
        ("#### 18 dollars", "hash", "18"),
        ("#### $1,250 in all", "hash", "$1,250"),
        ("#### 2\\sqrt{3}", "hash", "2\\sqrt{3}"),
        ("#### x + 1", "hash", "x + 1"),
        ("\\boxed{7} and then \\boxed{8", "boxed", "7"),
        ("\\boxed{\\boxed{9}}", "boxed", "9"),
        ("just 7", "auto", "7"),
    ],
)
def test_extract_answer_modes(text: str, mode: AnswerMode, expected: str | None) -> None:
    assert extract_answer(text, mode) == expected


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown answer mode"):
        extract_answer("1", cast(AnswerMode, "first"))


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("68", Fraction(68)),
        ("-3", Fraction(-3)),
        ("+3", Fraction(3)),
        ("0.5", Fraction(1, 2)),
        (".25", Fraction(1, 4)),
        ("1,234", Fraction(1234)),
        ("1,234.5", Fraction(2469, 2)),
        ("7/2", Fraction(7, 2)),
        ("-7 / 2", Fraction(-7, 2)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("\\dfrac{-3}{4}", Fraction(-3, 4)),
        ("-\\frac{3}{4}", Fraction(-3, 4)),
        ("\\frac12", Fraction(1, 2)),
        ("$18", Fraction(18)),
        ("\\$18.00", Fraction(18)),
        ("25\\%", Fraction(25)),
        ("42.", Fraction(42)),
        ("\\text{12}", Fraction(12)),
        ("007", Fraction(7)),
    ],
)
def test_parse_number_accepts_plain_numbers(answer: str, value: Fraction) -> None:
    assert parse_number(answer) == value


@pytest.mark.parametrize(
    "answer",
    ["", "x", "1/0", "\\frac{1}{0}", "2\\sqrt{3}", "1e5", "12,34", "1.2.3", "3 4", "--3", "9**9"],
)
def test_parse_number_rejects_everything_else(answer: str) -> None:
    assert parse_number(answer) is None


def test_parse_number_refuses_huge_numerals_instantly() -> None:
    assert parse_number("9" * (MAX_NUMBER_CHARS + 1)) is None
    assert parse_number("1" * 1_000_000) is None
    assert parse_number("9" * MAX_NUMBER_CHARS) == Fraction(int("9" * MAX_NUMBER_CHARS))


def test_well_formed_per_mode() -> None:
    assert is_well_formed("68", "last_number")
    assert is_well_formed(" -12 ", "last_number")
    assert not is_well_formed("68!", "last_number")
    assert not is_well_formed("6 8", "last_number")
    assert is_well_formed("so \\boxed{x}", "boxed")
    assert not is_well_formed("so 5", "boxed")
    assert is_well_formed("work\n#### 5", "hash")
    assert is_well_formed("work\n#### 5", "auto")
    assert not is_well_formed("the answer is five", "auto")


def test_extraction_only_reads_the_tail_of_huge_replies() -> None:
    reply = "\\boxed{1}" + "x" * 50_000 + "#### 2"
    assert extract_answer(reply, "boxed") is None  # the box is beyond the searched tail
    assert extract_answer(reply, "hash") == "2"


def test_many_unclosed_boxes() -> None:
    # One pass over the text, however many boxes are left open.
    assert extract_boxed("\\boxed{" * 5000) is None
    assert extract_boxed("\\boxed{1}" + "\\boxed{" * 2000) == "1"


def test_boxed_with_deep_braces() -> None:
    inner = "{" * 30 + "1" + "}" * 30
    assert extract_boxed(f"\\boxed{{{inner}}}") == inner
    assert nesting_depth(inner) == 30
    assert nesting_depth("(a[b]{c})") == 2


def test_format_number() -> None:
    assert format_number(Fraction(68)) == "68"
    assert format_number(Fraction(-7, 2)) == "-7/2"
