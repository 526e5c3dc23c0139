"""Tic-tac-toe learning curves: does `cookbook rl --env tictactoe` reach perfect-play targets in
time, for several seeds?

    .venv/bin/python benchmarks/tictactoe_learning.py [--minutes 15] [--seeds 0 1 2]
        [--eval-every-s 60] [--eval-games 400] [--out runs/bench-tictactoe-learning]
        [KEY=VALUE ...]

For each seed it runs the real runner with exactly the settings of `cookbook rl --env tictactoe`
(the env's recommended settings; extra KEY=VALUE / env.KEY=VALUE arguments are applied on top, as
on the command line) from a fresh tiny model, warm start included, until the run ends or
`--minutes` of wall time pass. Every `--eval-every-s` seconds of run time it scores the policy
with `tictactoe-exhaustive` (`plugins/tictactoe/cookbook_tictactoe/exhaustive.py`): its greedy
move in all 4,520 reachable positions against minimax, and `--eval-games` games against random
play and as many against the optimal player (random tie-breaks), half in each seat. The clock is
the run's own: it starts before the model is built and leaves the benchmark's evaluations out.
The run's time limit (the runner's `max_minutes`) does count them, so a run stops after fewer
steps than it would have run alone. Every step from the time limit on is scored, so the last
point is the run's last step (with the recommended `lr_schedule_by_time`, the policy at the end
of its decay); a run that reaches its `max_steps` first is scored at its last step too.

Targets (issue 15), all from the greedy policy:
- vs random: 0 losses (or illegal moves) in the games of both seats, >= 97% wins in the first
  seat and >= 88% in the second;
- vs optimal: >= 97% draws in each seat;
- optimal-move rate >= 95% of the reachable positions of each seat.
For each seed it prints the curve, where each target was first met, whether it held at every
later point to the end, and if not, from which point on it did (a target met at the last point
always has one); then from which point every target held at once. `curve.json` (points,
settings, the verdicts) and `curve.png` go to `--out` (runs in `--out/seedN/run`). Seeds run one
after another, never side by side: wall-clock numbers depend on the machine's load, which is
printed with them. A target passes when every seed's run ends meeting it (the policy the run
hands over); exit status 0 when every target passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import chz

from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.runs.metrics import MetricsLog

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext

CURVE_EVAL = "curve"
"""Name of the benchmark's evaluator (its metrics are `eval/curve/...` in metrics.jsonl)."""

POINT_METRICS = {
    "optimal_first": "first/optimal_rate",
    "optimal_second": "second/optimal_rate",
    "blunder_first": "first/blunder_rate",
    "blunder_second": "second/blunder_rate",
    "random_win_first": "games/vs_random/first/win_rate",
    "random_win_second": "games/vs_random/second/win_rate",
    "random_loss_first": "games/vs_random/first/loss_rate",
    "random_loss_second": "games/vs_random/second/loss_rate",
    "random_illegal_first": "games/vs_random/first/illegal_rate",
    "random_illegal_second": "games/vs_random/second/illegal_rate",
    "random_games_first": "games/vs_random/first/games",
    "random_games_second": "games/vs_random/second/games",
    "optimal_draw_first": "games/vs_optimal/first/draw_rate",
    "optimal_draw_second": "games/vs_optimal/second/draw_rate",
    "exact_random_win_first": "exact/vs_random/first/win_rate",
    "exact_random_win_second": "exact/vs_random/second/win_rate",
    "exact_random_loss_first": "exact/vs_random/first/loss_rate",
    "exact_random_loss_second": "exact/vs_random/second/loss_rate",
    "exact_optimal_draw_first": "exact/vs_optimal/first/draw_rate",
    "exact_optimal_draw_second": "exact/vs_optimal/second/draw_rate",
}
"""Point field -> key of the exhaustive eval's metrics."""


@dataclass
class CurvePoint:
    """One evaluation at `seconds` of run time (after `step` RL steps)."""

    seconds: float
    step: int
    values: dict[str, float]
    """`POINT_METRICS` fields."""

    def random_losses(self) -> int:
        """Games lost (or forfeited by an illegal move) against random play, both seats."""
        v = self.values
        return sum(
            round((v[f"random_loss_{s}"] + v[f"random_illegal_{s}"]) * v[f"random_games_{s}"])
            for s in ("first", "second")
        )


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, read from a point."""

    name: str
    field: str
    """A `POINT_METRICS` field, or `random_losses`."""
    threshold: float
    at_most: bool = False
    """Met when the value is <= the threshold (else >=)."""

    def value(self, point: CurvePoint) -> float:
        """The point's value for this target."""
        if self.field == "random_losses":
            return float(point.random_losses())
        return point.values[self.field]

    def met(self, point: CurvePoint) -> bool:
        """Whether `point` meets the target."""
        v = self.value(point)
        return v <= self.threshold if self.at_most else v >= self.threshold - 1e-9


TARGETS = (
    Target("vs random: 0 losses, both seats", "random_losses", 0.0, at_most=True),
    Target("vs random, first seat: wins >= 97%", "random_win_first", 0.97),
    Target("vs random, second seat: wins >= 88%", "random_win_second", 0.88),
    Target("vs optimal, first seat: draws >= 97%", "optimal_draw_first", 0.97),
    Target("vs optimal, second seat: draws >= 97%", "optimal_draw_second", 0.97),
    Target("optimal moves, first seat >= 95%", "optimal_first", 0.95),
    Target("optimal moves, second seat >= 95%", "optimal_second", 0.95),
)


@dataclass
class Verdict:
    """Where a target was first met on one curve, whether it held to the end, and from where it
    did."""

    first_met_seconds: float | None
    first_met_step: int | None
    held: bool
    """Met at every point from the first meeting to the last point."""
    settled_seconds: float | None
    """The first point from which it was met at every later point (None: not met at the end)."""
    settled_step: int | None
    best: float | None
    """The best value seen (lowest for an at-most target)."""
    last: float | None


def verdict(target: Target, points: list[CurvePoint]) -> Verdict:
    """`target` over `points` (in time order)."""
    if not points:
        return Verdict(None, None, False, None, None, None, None)
    values = [target.value(p) for p in points]
    best = min(values) if target.at_most else max(values)
    first = next((i for i, p in enumerate(points) if target.met(p)), None)
    if first is None:
        return Verdict(None, None, False, None, None, best, values[-1])
    held = all(target.met(p) for p in points[first:])
    settled = settled_from(points, target.met)
    return Verdict(
        points[first].seconds,
        points[first].step,
        held,
        None if settled is None else points[settled].seconds,
        None if settled is None else points[settled].step,
        best,
        values[-1],
    )


def settled_from(points: list[CurvePoint], met: Callable[[CurvePoint], bool]) -> int | None:
    """The index of the first point from which `met` holds at every later point (None: it does
    not hold at the last one)."""
    settled = None
    for i in range(len(points) - 1, -1, -1):
        if not met(points[i]):
            break
        settled = i
    return settled


@dataclass
class SeedResult:
    """One seed's run and curve."""

    seed: int
    points: list[CurvePoint]
    run_seconds: float
    steps: int
    log_dir: str
    load_average: tuple[float, float]
    """1-minute load average before and after the run."""

    def verdicts(self) -> dict[str, Verdict]:
        """Every target's verdict on this curve."""
        return {t.name: verdict(t, self.points) for t in TARGETS}

    def all_settled(self) -> CurvePoint | None:
        """The first point from which every target was met at every later point."""
        at = settled_from(self.points, lambda p: all(t.met(p) for t in TARGETS))
        return None if at is None else self.points[at]


@dataclass
class BenchmarkResult:
    """All seeds."""

    seeds: list[SeedResult]
    minutes: float
    settings: dict[str, str] = field(default_factory=dict)

    def passed(self) -> bool:
        """Every target met at the end of every seed's run."""
        return all(v.settled_seconds is not None for s in self.seeds for v in s.verdicts().values())


@chz.chz
class TimedEvaluatorBuilder(EvaluatorBuilder):
    """Runs `inner` at most once per `every_s` seconds of the run's own time, for a learning curve
    against wall time. Use it with `eval_every=1`: when no point is due it returns no metrics
    (nothing is logged). Its own evaluations are not counted as run time, so the curve's clock
    (`wall_s`) is the time a run without it would have taken."""

    inner: EvaluatorBuilder
    """The evaluator to run."""
    every_s: float = 60.0
    """Seconds of run time between two evaluations."""
    started_at: float = 0.0
    """`time.time()` when the run started (0: when this builder is called)."""
    last_call: int = 0
    """The call that always evaluates, due or not (0: none): with `eval_every=1` and no
    `eval_before_rl`, the run's number of steps, so a run that ends before its time limit is
    scored at its end."""
    deadline_s: float = 0.0
    """Wall seconds after the start from which every call evaluates (0: none): the run's time
    limit, so a run it stops is scored at its last step, not only at the last point due."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        """The scheduling wrapper around `inner(ctx)`."""
        started_at = self.started_at or time.time()
        return TimedEvaluator(
            self.inner(ctx), self.every_s, started_at, self.last_call, self.deadline_s
        )


class TimedEvaluator(Evaluator):
    """See `TimedEvaluatorBuilder`. Adds `wall_s` (run time at the evaluation) and `eval_s` (what
    the evaluation itself took) to the inner metrics."""

    def __init__(
        self,
        inner: Evaluator,
        every_s: float,
        started_at: float,
        last_call: int = 0,
        deadline_s: float = 0.0,
    ) -> None:
        self.inner = inner
        self.last_call = last_call
        self.deadline_s = deadline_s
        self.calls = 0
        self.every_s = every_s
        self.started_at = started_at
        self.own_s = 0.0
        """Seconds spent in the inner evaluator so far (left out of the run's clock)."""
        self.next_due_s = 0.0
        """Run time at which the next evaluation is due (the first call always evaluates)."""

    def run_time_s(self) -> float:
        """Seconds since the start, less the time spent evaluating."""
        return time.time() - self.started_at - self.own_s

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """The inner metrics when a point is due, else nothing."""
        wall_s = self.run_time_s()
        self.calls += 1
        at_end = self.calls == self.last_call or (
            self.deadline_s > 0 and time.time() - self.started_at >= self.deadline_s
        )
        if wall_s < self.next_due_s and not at_end:
            return {}
        self.next_due_s = wall_s + self.every_s  # points every_s apart, however long steps are
        t0 = time.time()
        metrics = await self.inner(sampling_client)
        eval_s = time.time() - t0
        self.own_s += eval_s
        return {**metrics, "wall_s": wall_s, "eval_s": eval_s}


def run_seed(
    seed: int,
    minutes: float,
    out_dir: Path,
    eval_every_s: float,
    eval_games: int,
    overrides: list[str],
    show_progress: bool,
) -> SeedResult:
    """Train with the `cookbook rl --env tictactoe` settings (and `seed`) in a fresh
    `out_dir/run` until the run ends or `minutes` pass; returns its curve."""
    from cookbook.registry.catalog import load_catalog
    from cookbook.rl.train import Config
    from cookbook.rl.train import main as train_main

    config = Config.for_env("tictactoe", *overrides, seed=seed)
    exhaustive = load_catalog().get_eval("tictactoe-exhaustive").load()(num_games=eval_games)
    load_before = os.getloadavg()[0]
    started_at = time.time()
    config = chz.replace(
        config,
        log_dir=str(out_dir / "run"),
        max_minutes=minutes,
        eval_every=1,  # the timed evaluator decides when a point is due
        eval_before_rl=False,  # so its calls count the steps: the last one is always scored
        evals={
            CURVE_EVAL: TimedEvaluatorBuilder(
                inner=exhaustive,
                every_s=eval_every_s,
                started_at=started_at,
                last_call=config.max_steps or 0,
                deadline_s=minutes * 60,
            )
        },
        show_progress=show_progress,
    )
    summary = train_main(config, fresh=True, label=f"tictactoe seed {seed}")
    return SeedResult(
        seed=seed,
        points=read_curve(summary.log_dir / "metrics.jsonl"),
        run_seconds=time.time() - started_at,
        steps=summary.steps_run,
        log_dir=str(summary.log_dir),
        load_average=(load_before, os.getloadavg()[0]),
    )


def read_curve(metrics_path: Path) -> list[CurvePoint]:
    """The benchmark's evaluations from a run's metrics.jsonl, in order."""
    prefix = f"eval/{CURVE_EVAL}/"
    points = []
    for record in cast("list[dict[str, float]]", MetricsLog(metrics_path).read()):
        if prefix + "wall_s" not in record:
            continue
        values = {name: float(record[prefix + key]) for name, key in POINT_METRICS.items()}
        points.append(
            CurvePoint(
                seconds=float(record[prefix + "wall_s"]), step=int(record["step"]), values=values
            )
        )
    return points


def report(result: BenchmarkResult) -> str:
    """The printed curves and, per target, where each seed met it and whether it held."""
    lines: list[str] = []
    header = (
        f"{'seconds':>8} {'step':>6} {'opt1':>6} {'opt2':>6} {'R win1':>6} {'R win2':>6} "
        f"{'R lost':>6} {'O drw1':>6} {'O drw2':>6}   exact: R win1 R win2 R loss  O drw1 O drw2"
    )
    for s in result.seeds:
        lines += [
            f"seed {s.seed}: {s.steps} steps in {s.run_seconds:.0f} s; load average "
            f"{s.load_average[0]:.2f} -> {s.load_average[1]:.2f} on {os.cpu_count()} CPUs",
            header,
        ]
        for p in s.points:
            v = p.values
            exact_loss = v["exact_random_loss_first"] + v["exact_random_loss_second"]
            lines.append(
                f"{p.seconds:8.0f} {p.step:6d} {v['optimal_first']:6.3f} "
                f"{v['optimal_second']:6.3f} {v['random_win_first']:6.3f} "
                f"{v['random_win_second']:6.3f} {p.random_losses():6d} "
                f"{v['optimal_draw_first']:6.3f} {v['optimal_draw_second']:6.3f}   "
                f"      {v['exact_random_win_first']:6.3f} {v['exact_random_win_second']:6.3f} "
                f"{exact_loss:6.4f} {v['exact_optimal_draw_first']:6.3f} "
                f"{v['exact_optimal_draw_second']:6.3f}"
            )
        lines.append("")
    lines.append(
        "targets (PASS: every run ends meeting it; first met at seconds/step, then held = met at "
        "every later point, or where it did from):"
    )
    for target in TARGETS:
        cells = []
        for s in result.seeds:
            v = s.verdicts()[target.name]
            if v.first_met_seconds is None:
                cells.append(f"seed {s.seed}: never (best {_fmt(target, v.best)})")
                continue
            if v.held:
                since = "held"
            elif v.settled_seconds is None:
                since = f"NOT met at the end (last {_fmt(target, v.last)})"
            else:
                since = f"dipped, held from {v.settled_seconds:.0f} s / step {v.settled_step}"
            first = f"{v.first_met_seconds:.0f} s / step {v.first_met_step}"
            cells.append(f"seed {s.seed}: {first}, {since}")
        ok = all(s.verdicts()[target.name].settled_seconds is not None for s in result.seeds)
        lines.append(f"{'PASS' if ok else 'FAIL'}  {target.name}: " + "; ".join(cells))
    for s in result.seeds:
        at = s.all_settled()
        held = "never" if at is None else f"from {at.seconds:.0f} s / step {at.step} to the end"
        lines.append(f"seed {s.seed}, every target at once: {held}")
    return "\n".join(lines)


def _fmt(target: Target, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if target.field == "random_losses" else f"{value:.1%}"


def save(result: BenchmarkResult, out_dir: Path) -> tuple[Path, Path]:
    """`curve.json` (every seed's points, the settings and the verdicts) and `curve.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "curve.json"
    payload = {
        "minutes": result.minutes,
        "settings": result.settings,
        "passed": result.passed(),
        "seeds": [
            {**asdict(s), "verdicts": {k: asdict(v) for k, v in s.verdicts().items()}}
            for s in result.seeds
        ],
    }
    json_path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")

    panels = (
        ("optimal-move rate (all reachable positions)", "optimal", 0.95),
        ("wins vs random play", "random_win", None),
        ("draws vs the optimal player", "optimal_draw", 0.97),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.5), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, stem, line) in zip(axes, panels, strict=True):
        for i, s in enumerate(result.seeds):
            seconds = [p.seconds for p in s.points]
            for seat, style in (("first", "-"), ("second", "--")):
                ax.plot(
                    seconds,
                    [p.values[f"{stem}_{seat}"] for p in s.points],
                    linestyle=style,
                    marker=".",
                    color=colors[i % len(colors)],
                    label=f"seed {s.seed}, {seat} seat",
                )
        for level in (0.97, 0.88) if line is None else (line,):
            ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("wall-clock seconds (warm start included)")
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=7)
    loads = [s.load_average[1] for s in result.seeds]
    fig.suptitle(
        f"cookbook rl --env tictactoe, greedy policy (load avg {min(loads, default=0):.1f}-"
        f"{max(loads, default=0):.1f})"
    )
    png_path = out_dir / "curve.png"
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return json_path, png_path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock cap per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds")
    parser.add_argument("--eval-every-s", type=float, default=60.0, help="seconds between points")
    parser.add_argument("--eval-games", type=int, default=400, help="games per opponent per point")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench-tictactoe-learning"), help="output dir"
    )
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE run / env.KEY=VALUE env options")
    args = parser.parse_args(argv)
    from cookbook.registry.catalog import load_catalog

    spec = load_catalog().get_env("tictactoe")
    settings = {k: str(v) for k, v in {**spec.recommended, **spec.recommended_tiny}.items()}
    settings.update(dict(arg.split("=", 1) for arg in args.overrides))
    result = BenchmarkResult(seeds=[], minutes=args.minutes, settings=settings)
    for seed in args.seeds:
        result.seeds.append(
            run_seed(
                seed,
                args.minutes,
                args.out / f"seed{seed}",
                args.eval_every_s,
                args.eval_games,
                args.overrides,
                show_progress=not args.no_progress,
            )
        )
        save(result, args.out)  # a partial result survives an interrupted benchmark
    print(report(result))
    json_path, png_path = save(result, args.out)
    print(f"saved {json_path} and {png_path}")
    return 0 if result.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
