"""Model judges on the real local backend (an untrained tiny model), answer parsing, and how
`NAME[:ARG]` names a preference model."""

from __future__ import annotations

import asyncio
import math

import pytest
from cookbook_pairwise.preference.judge import JudgeBuilder, ModelJudge
from cookbook_pairwise.preference.prompt_format import judge_messages, parse_answer
from cookbook_pairwise.preference.resolve import (
    ParsedSpec,
    make_builder,
    parse_spec,
    preference_model,
)
from cookbook_pairwise.preference.rules import LengthBuilder, VowelShare

from cookbook.errors import UserError
from cookbook.preference.types import JudgeOutputError, Verdict


@pytest.mark.parametrize(
    ("reply", "p"),
    [
        ("A", 1.0),
        ("b", 0.0),
        ("tie", 0.5),
        (" [A] because", 1.0),
        ("Response B.", 0.0),
        ("TIE", 0.5),
    ],
)
def test_answers_are_read_as_preferences(reply: str, p: float) -> None:
    assert parse_answer(reply) == p


@pytest.mark.parametrize("reply", ["", "maybe", "AB", "Both are fine", "C"])
def test_other_answers_are_unparseable(reply: str) -> None:
    with pytest.raises(JudgeOutputError):
        parse_answer(reply)


def test_compact_format_keeps_three_lines() -> None:
    (message,) = judge_messages("cat", "a\nb", "c", "compact")
    assert message["content"] == "cat\na b\nc"


def test_spec_strings_split_into_name_argument_and_options() -> None:
    assert parse_spec("trained:runs/x:y") == ParsedSpec("trained", "runs/x:y", ())
    assert parse_spec("Vowels") == ParsedSpec("vowels", None, ())
    assert parse_spec("judge:/m/a,b,mode=sample,max_tokens=4") == ParsedSpec(
        "judge", "/m/a,b", ("mode=sample", "max_tokens=4")
    )
    qualified = parse_spec("cookbook-env-pairwise:trained:r", frozenset({"cookbook-env-pairwise"}))
    assert qualified == ParsedSpec("cookbook-env-pairwise:trained", "r", ())


def test_specs_name_registered_builders_and_their_argument() -> None:
    length = make_builder("length:12")
    assert isinstance(length, LengthBuilder) and length.target == 12
    judge = make_builder("cookbook-env-pairwise:judge:tiny,mode=sample,max_tokens=3")
    assert isinstance(judge, JudgeBuilder)
    assert (judge.model, judge.mode, judge.max_tokens) == ("tiny", "sample", 3)
    assert isinstance(preference_model("vowels"), VowelShare)
    with pytest.raises(UserError, match="did you mean 'vowels'"):
        make_builder("vowel")
    with pytest.raises(UserError, match="takes no argument"):
        make_builder("vowels:3")
    with pytest.raises(UserError, match="target"):
        make_builder("length:many")
    with pytest.raises(UserError, match="unknown judge mode"):
        make_builder("judge:tiny,mode=guess")
    with pytest.raises(UserError, match="is an env, not a preference model"):
        make_builder("pairwise")
    with pytest.raises(UserError, match="trained:RUN_DIR"):
        make_builder("trained")()
    with pytest.raises(UserError, match="no trained judge"):
        make_builder("trained:/nonexistent/run")


def _untrained_judge(mode: str) -> ModelJudge:
    judge = JudgeBuilder(model="tiny", mode=mode, seed=3)()
    assert isinstance(judge, ModelJudge)
    return judge


def test_logprob_judge_is_symmetric_and_deterministic() -> None:
    judge = _untrained_judge("logprobs")

    async def run() -> tuple[Verdict, Verdict, Verdict]:
        return await asyncio.gather(
            judge.compare("cat", "aeiou", "xyz"),
            judge.compare("cat", "xyz", "aeiou"),
            judge.compare("cat", "aeiou", "xyz"),
        )

    ab, ba, again = asyncio.run(run())
    assert 0.0 < ab.p_first < 1.0 and math.isfinite(ab.p_first)
    # Both orders are asked, so swapping the completions mirrors the verdict.
    assert ab.p_first + ba.p_first == pytest.approx(1.0, abs=1e-6)
    assert ab.p_first == pytest.approx(again.p_first, abs=1e-6)
    assert ab.by_order is not None and ab.orders_agree is not None
    assert ab.p_first == pytest.approx(sum(ab.by_order) / 2)


def test_sampling_judge_reports_unreadable_replies() -> None:
    # An untrained model writes bytes, not "A" or "B": each such answer is a failure to count.
    judge = _untrained_judge("sample")
    outcomes: list[str] = []
    for first, second in [("a", "b"), ("aa", "bb"), ("cat", "dog")]:
        try:
            asyncio.run(judge.compare("p", first, second))
            outcomes.append("ok")
        except JudgeOutputError:
            outcomes.append("unparseable")
    assert "unparseable" in outcomes
