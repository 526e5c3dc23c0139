"""A group's tournament: which pairs meet, judging them concurrently, rewards from the results.

Schedule: every pair when a completion would meet at most `per_completion` others anyway (small
G), else a sampled round robin: the G completions are shuffled onto a circle and each meets its
neighbours up to `ceil(per_completion / 2)` places away on either side, so every completion plays
the same number of comparisons (G * k / 2 pairs instead of G * (G - 1) / 2).

Reward of completion i: the mean over its judged comparisons of `2 * s - 1`, where s is its share
of the verdict (1 win, 0 loss, 0.5 tie; a judge's probability in between), so +1 for winning every
comparison, -1 for losing every one. A comparison the judge failed (error, time-out, unparseable
answer, out-of-range verdict) is left out and counted; a completion whose comparisons all failed
gets 0.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from cookbook.preference.types import JudgeOutputError, PreferenceModel, Verdict

Pair = tuple[int, int]


def schedule_pairs(group_size: int, per_completion: int, rng: random.Random) -> list[Pair]:
    """The pairs `(i, j)`, `i` shown first, that a group of `group_size` plays (see the module
    docstring). Who is shown first alternates, so no completion is always A."""
    if group_size < 2:
        return []
    if per_completion >= group_size - 1:
        pairs = [(i, j) for i in range(group_size) for j in range(i + 1, group_size)]
    else:
        order = list(range(group_size))
        rng.shuffle(order)
        reach = min(math.ceil(per_completion / 2), (group_size - 1) // 2)
        seen: set[frozenset[int]] = set()
        pairs = []
        for offset in range(1, reach + 1):
            for k in range(group_size):
                i, j = order[k], order[(k + offset) % group_size]
                key = frozenset((i, j))
                if key not in seen:
                    seen.add(key)
                    pairs.append((i, j))
    return [(j, i) if n % 2 else (i, j) for n, (i, j) in enumerate(pairs)]


@dataclass(frozen=True)
class PairResult:
    """One scheduled comparison: its verdict, or why there is none."""

    first: int
    second: int
    verdict: Verdict | None
    failure: str | None = None
    """`timeout`, `unparseable`, `invalid` (a verdict outside [0, 1]) or `error`."""
    error: str | None = None
    """The failure's message (for transcripts and warnings)."""


def _failure_kind(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, JudgeOutputError):
        return "unparseable"
    return "error"


async def judge_pair(
    model: PreferenceModel,
    prompt: str,
    texts: Sequence[str],
    pair: Pair,
    timeout_s: float | None,
) -> PairResult:
    """One comparison under a time limit; any failure becomes a `PairResult` without a verdict
    (a judge's fault costs this pair, never the group)."""
    i, j = pair
    try:
        if timeout_s is not None and timeout_s > 0:
            async with asyncio.timeout(timeout_s):
                verdict = await model.compare(prompt, texts[i], texts[j])
        else:
            verdict = await model.compare(prompt, texts[i], texts[j])
    except Exception as e:  # foreign code: whatever it raises costs this pair only
        message = str(e) or f"{type(e).__name__} after {timeout_s:g} s"
        return PairResult(i, j, None, _failure_kind(e), f"{type(e).__name__}: {message}")
    if not isinstance(verdict, Verdict):
        return PairResult(i, j, None, "invalid", f"compare returned {type(verdict).__name__}")
    p = verdict.p_first
    if not isinstance(p, int | float) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        return PairResult(i, j, None, "invalid", f"p_first={p!r} is outside [0, 1]")
    return PairResult(i, j, verdict)


async def judge_pairs(
    model: PreferenceModel,
    prompt: str,
    texts: Sequence[str],
    pairs: Sequence[Pair],
    timeout_s: float | None,
) -> list[PairResult]:
    """Every comparison at once (a model judge batches them), in the order of `pairs`."""
    return list(
        await asyncio.gather(*(judge_pair(model, prompt, texts, p, timeout_s) for p in pairs))
    )


@dataclass
class Standing:
    """What one completion got from its comparisons."""

    judged: int = 0
    """Comparisons with a verdict."""
    failed: int = 0
    """Comparisons the judge failed."""
    share: float = 0.0
    """Sum of its share of each verdict (1 win, 0.5 tie, 0 loss)."""
    ties: int = 0
    agreed: int = 0
    """Two-order verdicts whose orders picked the same winner."""
    two_order: int = 0
    """Verdicts from a judge that looked at both orders."""

    @property
    def reward(self) -> float:
        """Mean of `2 * share - 1` over the judged comparisons (0 when none)."""
        return 2.0 * self.share / self.judged - 1.0 if self.judged else 0.0


def standings(group_size: int, results: Sequence[PairResult]) -> list[Standing]:
    """Tally every comparison for both of its completions."""
    table = [Standing() for _ in range(group_size)]
    for r in results:
        for me, mine in ((r.first, True), (r.second, False)):
            s = table[me]
            if r.verdict is None:
                s.failed += 1
                continue
            s.judged += 1
            s.share += r.verdict.p_first if mine else 1.0 - r.verdict.p_first
            s.ties += r.verdict.is_tie
            if r.verdict.orders_agree is not None:
                s.two_order += 1
                s.agreed += r.verdict.orders_agree
    return table


def agreement(results: Sequence[PairResult], reference: Sequence[PairResult]) -> list[bool | None]:
    """Per comparison: whether a model picked the winner `reference` picked; `None` where either
    failed or `reference` calls a tie (nothing to agree with: a judge that must pick A or B is
    not wrong there)."""
    out: list[bool | None] = []
    for mine, theirs in zip(results, reference, strict=True):
        if mine.verdict is None or theirs.verdict is None or theirs.verdict.is_tie:
            out.append(None)
        else:
            out.append(mine.verdict.winner == theirs.verdict.winner)
    return out
