"""Contract checks for a preference model (`cookbook/preference/types.py`): it builds, answers a
fixed set of seeded comparisons with verdicts in [0, 1], each within a time limit, symmetric under
a swap of the two completions, and the same again from a second build.

    from cookbook.testing import assert_preference_model_contract

    assert_preference_model_contract("vowels")
    assert_preference_model_contract("judge", ["model=tiny"])   # the builder's own options

The comparisons are short lower-case words (what the tiny model writes), an empty completion and
a completion against itself (which only a tie keeps symmetric).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cookbook.preference.types import PreferenceModel, PreferenceModelBuilder, Verdict
from cookbook.testing.report import CheckFailed, Checklist, ContractReport
from cookbook.testing.shared import (
    asserting,
    configure,
    import_check,
    load_tinker,
    resolve_target,
    run_async,
    short_repr,
)

PreferenceModelTarget = str | type[PreferenceModelBuilder] | PreferenceModelBuilder
"""A registered preference model name, a builder class, or a configured builder."""

Comparison = tuple[str, str, str]
"""`(prompt, first, second)`."""


def sample_comparisons(seed: int, n: int = 8) -> list[Comparison]:
    """`n` seeded comparisons of short words, plus an empty completion and a completion compared
    with itself."""
    rng = random.Random(f"cookbook-preference-check:{seed}")

    def word(lo: int, hi: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(lo, hi)))

    out = [(word(3, 6), word(1, 12), word(1, 12)) for _ in range(max(n - 2, 0))]
    same = word(2, 8)
    out += [(word(3, 6), word(2, 8), ""), (word(3, 6), same, same)]
    return out


def check_preference_model(
    target: PreferenceModelTarget,
    overrides: Sequence[str] = (),
    *,
    seed: int = 0,
    comparisons: Sequence[Comparison] | None = None,
    tolerance: float = 1e-3,
    time_limit_s: float = 30.0,
    check_imports: bool = True,
) -> ContractReport:
    """Check a preference model against the contract and return the report.

    `overrides` are the builder's `KEY=VALUE` options (for a name or a class). Every comparison
    of `comparisons` (default: `sample_comparisons(seed)`) is judged in both orders; each call
    must return within `time_limit_s`, and `p(a, b) + p(b, a)` must be 1 within `tolerance`."""
    label, loader, modules = resolve_target("preference_model", target, overrides)
    report = ContractReport("preference model", label)
    checks = Checklist(report)
    state = _State(comparisons=list(comparisons or sample_comparisons(seed)))

    def config() -> str:
        state.builder, detail = configure(
            loader, PreferenceModelBuilder, overrides, "preference model", label
        )
        return detail

    import_check(checks, modules, check_imports)
    load_tinker()
    checks.run("config", config)
    checks.run("builds", lambda: _build(state), needs=["config"])
    checks.run("verdicts", lambda: _verdicts(state, time_limit_s), needs=["builds"])
    checks.run("bounded time", lambda: _bounded(state, time_limit_s), needs=["verdicts"])
    checks.run("symmetry", lambda: _symmetry(state, tolerance), needs=["verdicts"])
    checks.run("determinism", lambda: _determinism(state, time_limit_s), needs=["verdicts"])
    return report


@dataclass
class _State:
    comparisons: list[Comparison]
    builder: PreferenceModelBuilder | None = None
    model: PreferenceModel | None = None
    forward: list[Verdict] = field(default_factory=list)
    """Verdicts of each comparison as given."""
    backward: list[Verdict] = field(default_factory=list)
    """Verdicts with the two completions swapped."""
    slowest_s: float = 0.0


def _build(state: _State) -> str:
    assert state.builder is not None
    t0 = time.perf_counter()
    model = state.builder()
    if not isinstance(model, PreferenceModel):
        raise CheckFailed(
            f"{type(state.builder).__name__}() returned {type(model).__name__}, not a "
            "PreferenceModel"
        )
    state.model = model
    return f"{type(model).__name__} in {time.perf_counter() - t0:.2f} s"


async def _judge_all(
    model: PreferenceModel, comparisons: list[Comparison], time_limit_s: float
) -> tuple[list[object], list[float]]:
    """Every comparison in both orders, concurrently, each under the time limit: the answers
    (or what was raised) and the seconds each took."""

    async def one(prompt: str, first: str, second: str) -> tuple[object, float]:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(time_limit_s):
                answer: object = await model.compare(prompt, first, second)
        except Exception as e:  # reported by the caller, with the comparison it failed on
            answer = e
        return answer, time.perf_counter() - t0

    calls = [one(p, a, b) for p, a, b in comparisons] + [one(p, b, a) for p, a, b in comparisons]
    done = await asyncio.gather(*calls)
    return [answer for answer, _ in done], [seconds for _, seconds in done]


def _as_verdicts(answers: list[object], comparisons: list[Comparison]) -> list[Verdict]:
    n = len(comparisons)
    verdicts: list[Verdict] = []
    for i, answer in enumerate(answers):
        prompt, a, b = comparisons[i % n]
        shown = (a, b) if i < n else (b, a)
        where = f"compare({short_repr(prompt, 12)}, {short_repr(shown[0], 14)}, {short_repr(shown[1], 14)})"
        if isinstance(answer, TimeoutError):
            raise CheckFailed(f"{where} did not return in time")
        if isinstance(answer, BaseException):
            raise CheckFailed(f"{where} raised {type(answer).__name__}: {answer}")
        if not isinstance(answer, Verdict):
            raise CheckFailed(f"{where} returned {type(answer).__name__}, not a Verdict")
        p = answer.p_first
        if not isinstance(p, int | float) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise CheckFailed(f"{where} returned p_first={p!r}; it must be a float in [0, 1]")
        verdicts.append(answer)
    return verdicts


def _verdicts(state: _State, time_limit_s: float) -> str:
    assert state.model is not None
    answers, seconds = run_async(_judge_all(state.model, state.comparisons, time_limit_s))
    verdicts = _as_verdicts(answers, state.comparisons)
    n = len(state.comparisons)
    state.forward, state.backward = verdicts[:n], verdicts[n:]
    state.slowest_s = max(seconds, default=0.0)
    ties = sum(v.is_tie for v in verdicts)
    return f"{len(verdicts)} comparisons (both orders), all in [0, 1]; {ties} ties"


def _bounded(state: _State, time_limit_s: float) -> str:
    # A call over the limit already failed `verdicts`; this reports the margin.
    return f"slowest comparison {state.slowest_s:.3f} s (limit {time_limit_s:g} s)"


def _symmetry(state: _State, tolerance: float) -> str:
    worst, where = 0.0, ""
    for (prompt, a, b), ab, ba in zip(
        state.comparisons, state.forward, state.backward, strict=True
    ):
        gap = abs(ab.p_first + ba.p_first - 1.0)
        if gap > worst:
            worst, where = (
                gap,
                f"({short_repr(a, 14)}, {short_repr(b, 14)}) for {short_repr(prompt, 12)}",
            )
    if worst > tolerance:
        raise CheckFailed(
            f"p(a, b) + p(b, a) is off 1 by {worst:.3g} on {where} (tolerance {tolerance:g}); a "
            "judge with a position bias must ask in both orders and average"
        )
    return f"p(a, b) + p(b, a) = 1 within {worst:.2g} (tolerance {tolerance:g})"


def _determinism(state: _State, time_limit_s: float) -> str:
    assert state.builder is not None
    again = state.builder()
    answers, _ = run_async(_judge_all(again, state.comparisons, time_limit_s))
    verdicts = _as_verdicts(answers, state.comparisons)
    first = [*state.forward, *state.backward]
    worst = max(
        (abs(a.p_first - b.p_first) for a, b in zip(first, verdicts, strict=True)), default=0.0
    )
    if worst > 1e-6:
        raise CheckFailed(
            f"a second build judged the same comparisons differently (by up to {worst:.3g}); "
            "derive every random choice from the builder's options"
        )
    return f"a second build gave the same {len(verdicts)} verdicts"


assert_preference_model_contract = asserting(
    check_preference_model, "assert_preference_model_contract"
)
"""`check_preference_model`, raising `AssertionError` with the report when a check fails."""
