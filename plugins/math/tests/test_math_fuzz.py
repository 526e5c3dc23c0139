"""Property-based fuzzing of the grader (bounded example counts so the suite stays fast)."""

from __future__ import annotations

from fractions import Fraction

from cookbook_math.answers import ANSWER_MODES, AnswerMode, extract_answer, parse_number
from cookbook_math.grader import answers_match, grade_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Characters that steer the parsers into their interesting corners.
_PIECES = [
    *"0123456789+-*/^_=.,()[]{}$# xyzabf!|%\\",
    *("\\frac", "\\sqrt", "\\boxed{", "####", "\\left(", "\\pi", "**", "9^{"),
]
MATHY = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
ANY_TEXT = st.text(max_size=300)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(ANY_TEXT, MATHY), mode=st.sampled_from(ANSWER_MODES))
def test_extraction_never_raises(text: str, mode: AnswerMode) -> None:
    answer = extract_answer(text, mode)
    assert answer is None or isinstance(answer, str)
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(ANY_TEXT, MATHY), gold=st.integers(-(10**6), 10**6))
def test_numbers_only_grading_never_raises(text: str, gold: int) -> None:
    grade = grade_response(text, str(gold), answer_mode="auto", symbolic=False)
    assert isinstance(grade.correct, bool) and isinstance(grade.format_ok, bool)


def _forms(value: Fraction) -> list[str]:
    """Honest ways of writing `value`."""
    forms = [
        f"{value.numerator}/{value.denominator}",
        f"\\frac{{{value.numerator}}}{{{value.denominator}}}",
    ]
    if value.denominator == 1:
        forms += [str(value.numerator), f"{value.numerator:,}", f"{value.numerator}.0"]
    if value.denominator in (2, 4, 5, 8, 10, 20, 25, 50, 100):
        forms.append(str(value.numerator / value.denominator))
    return forms


@settings(max_examples=200, deadline=None)
@given(
    num=st.integers(-(10**9), 10**9),
    den=st.sampled_from([1, 1, 2, 3, 4, 5, 7, 8, 10, 25]),
    other=st.integers(-(10**9), 10**9),
)
def test_numbers_equal_exactly_when_their_values_do(num: int, den: int, other: int) -> None:
    value = Fraction(num, den)
    for form in _forms(value):
        assert answers_match(form, str(value.numerator) + f"/{value.denominator}", symbolic=False)
        assert grade_response(
            f"so the answer is \\boxed{{{form}}}", _forms(value)[0], answer_mode="boxed"
        ).correct
    if Fraction(other, den) != value:
        for form in _forms(Fraction(other, den)):
            assert not answers_match(form, _forms(value)[0], symbolic=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=MATHY, gold=st.sampled_from(["3", "\\sqrt{2}", "x+1", "\\frac{1}{2}"]))
def test_symbolic_grading_of_garbage_never_raises(answer: str, gold: str) -> None:
    # The worker may say equal or not, but must always answer, within its limit.
    assert answers_match(answer, gold, timeout_s=1.0) in (True, False)
