"""Contract checks for an eval: it builds, runs against an untrained tiny model (or a given
sampling client) within a time limit, at the size its builder's `small()` gives (see
`cookbook.eval.types.EvaluatorBuilder.small`), and returns a non-empty dict of finite floats."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.eval.types import SMALL_SIZES, Evaluator, EvaluatorBuilder
from cookbook.testing.context import tiny_context
from cookbook.testing.report import CheckFailed, Checklist, ContractReport, describe_error
from cookbook.testing.shared import (
    asserting,
    check_metrics,
    configure,
    import_check,
    load_tinker,
    resolve_target,
    run_async,
)

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext

SMALL_EVAL_SETTINGS = SMALL_SIZES
"""The size fields the default `EvaluatorBuilder.small` lowers (kept under this name for
tests written against earlier versions)."""

EvalTarget = str | type[EvaluatorBuilder] | EvaluatorBuilder
"""A registered eval name, a builder class, or a configured builder."""


def check_eval(
    target: EvalTarget,
    overrides: Sequence[str] = (),
    *,
    ctx: BuildContext | None = None,
    sampling_client: SamplingClient | None = None,
    seed: int = 0,
    small: bool = True,
    time_limit_s: float = 120.0,
    check_imports: bool = True,
) -> ContractReport:
    """Check an eval against the contract and return the report: it builds, runs against an
    untrained tiny model (or `sampling_client`, with the matching `ctx`) within
    `time_limit_s`, and returns a non-empty dict of finite floats.

    With `small`, the eval runs at the size its builder's `small()` method gives (by default:
    the size fields of `SMALL_SIZES` it has, such as `num_games` and `num_problems`, lowered);
    `overrides` are applied on top of that."""
    label, loader, modules = resolve_target("eval", target, overrides)
    report = ContractReport("eval", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _EvalState()

    def config() -> str:
        builder, detail = configure(
            loader, EvaluatorBuilder, overrides, "eval", label, _small if small else None
        )
        state.builder = builder
        return detail

    def build() -> str:
        assert state.builder is not None
        evaluator = state.builder(ctx)
        if not isinstance(evaluator, Evaluator):
            raise CheckFailed(
                f"{type(state.builder).__name__}(ctx) returned {type(evaluator).__name__}, not an "
                "Evaluator"
            )
        state.evaluator = evaluator
        return f"{type(evaluator).__name__}"

    import_check(checks, modules, check_imports)
    load_tinker()
    checks.run("config", config)
    checks.run("builds", build, needs=["config"])
    checks.run(
        "runs", lambda: _run_eval(state, sampling_client, seed, time_limit_s), needs=["builds"]
    )
    checks.run("metrics", lambda: _eval_metrics(state), needs=["runs"])
    return report


def _small(builder: EvaluatorBuilder) -> EvaluatorBuilder:
    try:
        return builder.small()
    except CheckFailed:
        raise
    except Exception as e:
        raise CheckFailed(f"{type(builder).__name__}.small() raised {describe_error(e)}") from e


@dataclass
class _EvalState:
    builder: EvaluatorBuilder | None = None
    evaluator: Evaluator | None = None
    metrics: object = None


def _run_eval(
    state: _EvalState, client: SamplingClient | None, seed: int, time_limit_s: float
) -> str:
    import time

    assert state.evaluator is not None
    evaluator = state.evaluator
    if client is None:
        from cookbook.backends import make_service_client

        client = make_service_client("local").create_sampling_client(base_model="tiny").result()
        against = "an untrained tiny model"
    else:
        against = "the given sampling client"

    async def run() -> dict[str, float]:
        async with asyncio.timeout(time_limit_s):
            return await evaluator(client)

    t0 = time.perf_counter()
    try:
        state.metrics = run_async(run())
    except TimeoutError as e:
        raise CheckFailed(
            f"did not finish within {time_limit_s:g} s against {against}; lower its size "
            "(eval.KEY=VALUE) or raise the time limit"
        ) from e
    return f"against {against} in {time.perf_counter() - t0:.1f} s"


def _eval_metrics(state: _EvalState) -> str:
    metrics = state.metrics
    if not isinstance(metrics, Mapping):
        raise CheckFailed(f"the evaluator returned {type(metrics).__name__}, not a dict of metrics")
    if not metrics:
        raise CheckFailed("the evaluator returned no metrics")
    shown = check_metrics(metrics, "eval metrics")
    values = ", ".join(f"{k}={float(metrics[k]):.3g}" for k in sorted(shown)[:6])
    more = f", ... ({len(shown)} in all)" if len(shown) > 6 else ""
    return values + more


assert_eval_contract = asserting(check_eval, "assert_eval_contract")
"""`check_eval`, raising `AssertionError` with the report when a check fails."""
