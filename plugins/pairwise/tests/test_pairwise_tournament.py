"""The tournament: who meets whom, rewards from verdicts, and judges that fail without taking the
group down."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter

import pytest
from cookbook_pairwise.env import tournament_rewards
from cookbook_pairwise.preference.rules import TargetLength, VowelShare
from cookbook_pairwise.tournament import judge_pairs, schedule_pairs, standings

from cookbook.preference.types import JudgeOutputError, PreferenceModel, Verdict


def test_small_groups_play_every_pair_once() -> None:
    pairs = schedule_pairs(5, per_completion=4, rng=random.Random(0))
    assert sorted(tuple(sorted(p)) for p in pairs) == list(itertools.combinations(range(5), 2))
    # Who is shown first alternates: nobody is always A.
    firsts = Counter(i for i, _ in pairs)
    assert max(firsts.values()) < 4


@pytest.mark.parametrize(("group_size", "per"), [(16, 4), (16, 3), (32, 6), (9, 2)])
def test_large_groups_play_a_round_robin_of_equal_degree(group_size: int, per: int) -> None:
    pairs = schedule_pairs(group_size, per_completion=per, rng=random.Random(1))
    keys = [frozenset(p) for p in pairs]
    assert len(keys) == len(set(keys)), "a pair met twice"
    assert all(len(k) == 2 for k in keys)
    degree = Counter(i for p in pairs for i in p)
    expected = 2 * -(-per // 2)  # rounded up to even
    assert set(degree.values()) == {expected}
    assert len(degree) == group_size
    # A different seed draws a different round robin.
    other = schedule_pairs(group_size, per_completion=per, rng=random.Random(2))
    assert {frozenset(p) for p in other} != set(keys)


def test_rewards_are_mean_win_minus_loss_with_ties_half() -> None:
    # Vowel shares: "aaaa" 1.0, "abab" 0.5, "baba" 0.5, "bbbb" 0.0
    texts = ["aaaa", "abab", "baba", "bbbb"]
    model = VowelShare()
    pairs = schedule_pairs(4, per_completion=3, rng=random.Random(0))
    results = asyncio.run(judge_pairs(model, "p", texts, pairs, timeout_s=None))
    rewards = tournament_rewards("p", texts, results, model)
    assert [r for r, _ in rewards] == pytest.approx([1.0, 0.0, 0.0, -1.0])
    metrics = [m for _, m in rewards]
    assert [m["win_rate"] for m in metrics] == pytest.approx([1.0, 0.5, 0.5, 0.0])
    assert [m["tie_rate"] for m in metrics] == pytest.approx([0.0, 1 / 3, 1 / 3, 0.0])
    assert [m["score"] for m in metrics] == pytest.approx([1.0, 0.5, 0.5, 0.0])
    assert all(m["judge_failure_rate"] == 0 for m in metrics)
    assert all("order_agreement" not in m for m in metrics)  # a rule judges once


def test_monitor_agreement_compares_winners_pair_by_pair() -> None:
    texts = ["aaaaaaaaaa", "ab", "bbbbbbbbbb"]  # vowels: 1, .5, 0; length-10 rule: 0, -8, 0
    rule, monitor = VowelShare(), TargetLength(10)
    pairs = schedule_pairs(3, per_completion=2, rng=random.Random(0))
    results = asyncio.run(judge_pairs(rule, "p", texts, pairs, None))
    watched = asyncio.run(judge_pairs(monitor, "p", texts, pairs, None))
    out = tournament_rewards("p", texts, results, rule, watched, monitor)
    # vowels: 0 > 1 > 2; length: 0 = 2 > 1. (0, 1): both pick 0; (1, 2): vowels pick 1, length
    # picks 2; (0, 2): length calls a tie, so it does not count.
    agree = [m["monitor_agreement"] for _, m in out]
    assert agree == pytest.approx([1.0, 0.5, 0.0])
    assert [m["monitor_score"] for _, m in out] == pytest.approx([0.0, -8.0, 0.0])


class FlakyJudge(PreferenceModel):
    """Fails in every way a judge can, depending on the first completion."""

    async def compare(self, prompt: str, first: str, second: str) -> Verdict:
        if "raise" in (first, second):
            raise RuntimeError("backend fell over")
        if "slow" in (first, second):
            await asyncio.sleep(30)
        if "garbled" in (first, second):
            raise JudgeOutputError("judge reply 'maybe' is not A, B or tie")
        if "nan" in (first, second):
            return Verdict(float("nan"))
        return Verdict(1.0 if len(first) > len(second) else 0.0, orders_agree=True)


def test_a_failing_judge_costs_only_its_pairs() -> None:
    texts = ["good", "ok", "raise", "slow", "garbled", "nan"]
    pairs = schedule_pairs(len(texts), per_completion=5, rng=random.Random(0))
    results = asyncio.run(judge_pairs(FlakyJudge(), "p", texts, pairs, timeout_s=0.2))
    kinds = Counter(r.failure for r in results)
    assert kinds["timeout"] >= 1 and kinds["error"] >= 1
    assert kinds["unparseable"] >= 1 and kinds["invalid"] >= 1
    assert kinds[None] == 1  # only "good" vs "ok" was judged
    out = tournament_rewards("p", texts, results, FlakyJudge())
    good, ok = out[0], out[1]
    assert good[0] > 0 > ok[0]  # their one judged pair still decides their rewards
    assert good[1]["judge_failure_rate"] == pytest.approx(4 / 5)
    assert good[1]["order_agreement"] == 1.0
    for reward, metrics in out[2:]:  # every comparison failed: no reward, all counted
        assert reward == 0.0
        assert metrics["judge_failure_rate"] == 1.0
        assert "win_rate" not in metrics


def test_standings_count_both_sides_of_a_soft_verdict() -> None:
    from cookbook_pairwise.tournament import PairResult

    results = [PairResult(0, 1, Verdict(0.8, orders_agree=False))]
    table = standings(2, results)
    assert table[0].reward == pytest.approx(0.6) and table[1].reward == pytest.approx(-0.6)
    assert table[0].two_order == 1 and table[0].agreed == 0
