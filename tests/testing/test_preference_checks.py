"""The preference-model contract checks: a well-behaved model passes every check, and each model
below, broken in one way on purpose, fails exactly the check that covers that fault."""

from __future__ import annotations

import asyncio
import os
import random

import chz
import pytest

from cookbook.preference.types import PreferenceModel, PreferenceModelBuilder, Verdict
from cookbook.testing import (
    ContractReport,
    assert_preference_model_contract,
    check_preference_model,
)
from cookbook.testing.preference_checks import sample_comparisons


def failed(report: ContractReport) -> set[str]:
    return {r.name for r in report.failures}


class LongerWins(PreferenceModel):
    """A rule: the longer completion wins, equal lengths tie."""

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        if len(first) == len(second):
            return Verdict(0.5)
        return Verdict(1.0 if len(first) > len(second) else 0.0)


@chz.chz
class LongerWinsBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return LongerWins()


class PositionBiased(PreferenceModel):
    """Leans towards whatever is shown first: asked in one order only."""

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        return Verdict(0.7 if len(first) >= len(second) else 0.4)


@chz.chz
class PositionBiasedBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return PositionBiased()


class Moody(PreferenceModel):
    """Symmetric, but how strongly it prefers depends on a draw made at build time."""

    def __init__(self) -> None:
        self.strength = random.Random(os.urandom(8)).uniform(0.1, 0.4)

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        if first == second:
            return Verdict(0.5)
        return Verdict(0.5 + (self.strength if first < second else -self.strength))


@chz.chz
class MoodyBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return Moody()


class Sleepy(LongerWins):
    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        if not second:
            await asyncio.sleep(5)
        return await super().compare(prompt, first, second)


@chz.chz
class SleepyBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return Sleepy()


class Overconfident(LongerWins):
    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        verdict = await super().compare(prompt, first, second)
        return Verdict(verdict.p_first * 2)


@chz.chz
class OverconfidentBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return Overconfident()


@chz.chz
class NotAModelBuilder(PreferenceModelBuilder):
    def __call__(self) -> PreferenceModel:
        return "A"  # type: ignore[return-value]  # the fault under test


def test_a_well_behaved_model_passes_every_check() -> None:
    report = assert_preference_model_contract(LongerWinsBuilder)
    names = [r.name for r in report.results]
    assert names == [
        "import cost",
        "config",
        "builds",
        "verdicts",
        "bounded time",
        "symmetry",
        "determinism",
    ]
    assert report.results[0].status == "skipped"  # defined in a test module


@pytest.mark.parametrize(
    ("builder", "check", "says"),
    [
        (PositionBiasedBuilder, "symmetry", "must ask in both orders"),
        (MoodyBuilder, "determinism", "a second build judged the same comparisons differently"),
        (SleepyBuilder, "verdicts", "did not return in time"),
        (OverconfidentBuilder, "verdicts", "it must be a float in [0, 1]"),
        (NotAModelBuilder, "builds", "returned str, not a PreferenceModel"),
    ],
)
def test_each_fault_fails_its_check(
    builder: type[PreferenceModelBuilder], check: str, says: str
) -> None:
    report = check_preference_model(builder, time_limit_s=0.5)
    assert failed(report) == {check}, report.format()
    (result,) = report.failures
    assert says in result.detail


def test_comparisons_are_seeded_and_include_the_edge_cases() -> None:
    assert sample_comparisons(3) == sample_comparisons(3) != sample_comparisons(4)
    comparisons = sample_comparisons(0)
    assert any(second == "" for _, _, second in comparisons)
    assert any(first == second for _, first, second in comparisons)
