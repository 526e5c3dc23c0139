"""`benchmarks/tictactoe_learning.py` in the default suite: its points read the exhaustive eval's
real metrics (minimax play meets every target but the second-seat win rate against random play,
which needs tie-breaks that exploit random play), its verdicts say where a target was first met
and whether it held, and a real one-step run writes curve.json and curve.png."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import chz
import pytest
from cookbook_tictactoe.exhaustive import TicTacToeExhaustiveEval
from ttt_helpers import ScriptedSamplingClient, optimal, tiny_ctx

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "tictactoe_learning.py"

pytestmark = pytest.mark.skipif(not BENCHMARK.exists(), reason="needs the repository's benchmarks/")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("tictactoe_learning", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def point(bench: ModuleType, seconds: float, **values: float) -> object:
    """A curve point with every field 0 (400 games per seat) but `values`."""
    fields = dict.fromkeys(bench.POINT_METRICS, 0.0)
    fields.update(random_games_first=400.0, random_games_second=400.0)
    fields.update(values)
    return bench.CurvePoint(seconds=seconds, step=int(seconds), values=fields)


def test_minimax_play_meets_every_target_but_the_second_seat_win_rate(bench: ModuleType) -> None:
    evaluator = bench.TimedEvaluatorBuilder(
        inner=TicTacToeExhaustiveEval(num_games=40), every_s=3600.0
    )(tiny_ctx())
    client = ScriptedSamplingClient(optimal)
    metrics = asyncio.run(evaluator(client))
    assert asyncio.run(evaluator(client)) == {}  # the next point is not due for an hour
    values = {name: metrics[key] for name, key in bench.POINT_METRICS.items()}
    minimax = bench.CurvePoint(seconds=metrics["wall_s"], step=0, values=values)
    unmet = [t.name for t in bench.TARGETS if not t.met(minimax)]
    # Minimax takes the first winning cell but no risk: 81% second-seat wins vs random play.
    assert unmet == ["vs random, second seat: wins >= 88%"]
    assert values["exact_random_win_second"] == pytest.approx(0.806, abs=1e-3)


def test_every_call_from_the_time_limit_on_is_scored(bench: ModuleType) -> None:
    inner = TicTacToeExhaustiveEval(num_games=4)
    started = time.time()
    timed = bench.TimedEvaluatorBuilder(inner=inner, every_s=3600.0, started_at=started)
    evaluator = timed(tiny_ctx())
    client = ScriptedSamplingClient(optimal)
    assert asyncio.run(evaluator(client)) and asyncio.run(evaluator(client)) == {}
    # the run's time limit is behind us: the step it stops is scored, due or not
    ended = chz.replace(timed, started_at=started - 10, deadline_s=5.0)(tiny_ctx())
    assert asyncio.run(ended(client)) and asyncio.run(ended(client))


def test_verdicts_say_where_a_target_was_first_met_and_whether_it_held(
    bench: ModuleType,
) -> None:
    draws = bench.TARGETS[3]  # vs optimal, first seat: draws >= 97%
    assert draws.field == "optimal_draw_first"
    curve = [point(bench, s, optimal_draw_first=v) for s, v in ((0, 0.1), (60, 0.98), (120, 0.99))]
    v = bench.verdict(draws, curve)
    assert (v.first_met_seconds, v.held, v.best, v.last) == (60, True, 0.99, 0.99)
    assert (v.settled_seconds, v.settled_step) == (60, 60)
    dipped = [*curve, point(bench, 180, optimal_draw_first=0.9)]
    v = bench.verdict(draws, dipped)
    assert not v.held and v.settled_seconds is None  # not met at the end: fails
    recovered = [*dipped, point(bench, 240, optimal_draw_first=0.97)]
    v = bench.verdict(draws, recovered)
    assert (v.first_met_seconds, v.held, v.settled_seconds) == (60, False, 240)
    assert bench.verdict(draws, curve[:1]).first_met_seconds is None

    losses = bench.TARGETS[0]  # vs random: 0 losses (illegal moves count as losses)
    lost_one = point(bench, 0, random_illegal_second=0.0025)
    assert lost_one.random_losses() == 1 and not losses.met(lost_one)
    assert losses.met(point(bench, 0))


def test_a_run_that_dips_passes_when_it_ends_meeting_every_target(bench: ModuleType) -> None:
    perfect = {field: 1.0 for field in (t.field for t in bench.TARGETS) if field != "random_losses"}
    curve = [
        point(bench, 0, random_illegal_first=0.5),  # 200 games lost
        point(bench, 60, **perfect),
        point(bench, 120, **perfect, random_illegal_second=0.0025),  # one game lost
        point(bench, 180, **perfect),
    ]
    seed = bench.SeedResult(7, curve, 180.0, 180, "", (0.0, 0.0))
    result = bench.BenchmarkResult([seed], 3.0)
    assert seed.all_settled() is curve[-1] and result.passed()
    out = bench.report(result)
    assert (
        "PASS  vs random: 0 losses, both seats: seed 7: 60 s / step 60, dipped, held from 180 s"
        in out
    )
    assert "PASS  optimal moves, first seat >= 95%: seed 7: 60 s / step 60, held" in out
    assert "seed 7, every target at once: from 180 s / step 180 to the end" in out
    seed.points = curve[:3]
    assert seed.all_settled() is None and not result.passed()
    assert (
        "FAIL  vs random: 0 losses, both seats: seed 7: 60 s / step 60, NOT met at the end"
        in bench.report(result)
    )


def test_a_short_run_writes_the_curve_and_the_plot(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--seeds", "3", "--eval-every-s", "3600", "--eval-games", "8", "--no-progress"]
    args += ["--out", str(tmp_path), "max_steps=2", "warm_start.steps=5", "groups_per_batch=2"]
    assert bench.main(args) == 1  # two RL steps meet no target
    out = capsys.readouterr().out
    assert "FAIL  optimal moves, first seat >= 95%: seed 3: never (best" in out
    curve = json.loads((tmp_path / "curve.json").read_text(encoding="utf-8"))
    assert curve["settings"]["max_steps"] == "2" and not curve["passed"]
    (seed,) = curve["seeds"]
    assert seed["seed"] == 3 and seed["steps"] == 2
    # The first step is scored, and the last: the run ended long before its next point was due.
    assert [p["step"] for p in seed["points"]] == [0, 1]
    start = seed["points"][0]
    assert start["step"] == 0 and 0.0 < start["values"]["optimal_first"] < 1.0
    assert set(seed["verdicts"]) == {t.name for t in bench.TARGETS}
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_tie_breaks_that_read_random_replies_reach_the_second_seat_target() -> None:
    """`benchmarks/tictactoe_tie_breaks.py`: every tie-break of optimal moves never loses; the
    ones that read the random opponent's replies win more, and only they reach 88% second-seat
    wins (the target minimax play with ties at random misses)."""
    path = BENCHMARK.with_name("tictactoe_tie_breaks.py")
    spec = importlib.util.spec_from_file_location("tictactoe_tie_breaks", path)
    assert spec is not None and spec.loader is not None
    tie_breaks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tie_breaks)
    rates = {
        name: [tie_breaks.win_loss(key, seat) for seat in (0, 1)]
        for name, key in tie_breaks.KEYS.items()
    }
    assert all(loss == 0.0 for seats in rates.values() for _win, loss in seats)
    second = {name: seats[1][0] for name, seats in rates.items()}
    assert second["uniform"] < 0.88 and second["sooner win"] < 0.88
    assert 0.88 <= second["one reply"] <= second["expectimax"] < 1.0
    assert rates["uniform"][0][0] < 0.97 <= rates["one reply"][0][0] <= rates["expectimax"][0][0]
