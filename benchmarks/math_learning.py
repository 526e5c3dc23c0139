"""What RL adds on `arithmetic` with the tiny model on CPU: held-out accuracy against seconds.

    .venv/bin/python benchmarks/math_learning.py [--out runs/math-learning] [--parts easy,hard]
        [--rl-seconds 300] [--hard-seconds 300] [--hard-switch 0.5] [--seed 0] [--threads 1]
        [--hard-ops +-*] [--hard-digits 2] [--hard-sft-examples 20000] [--clock wall|cpu]

Part `easy` (two-digit addition): a brief supervised warm start on `arithmetic-sft`, stopped at
the first held-out eval where the answer format is learned (`format_ok` >= 0.9) and exact-answer
accuracy has reached `--warm-min-accuracy` (RL needs some reward to start from: from the
plateau before the supervised jump it did not move, plugins/math/README.md), then RL on
`arithmetic` from that checkpoint for `--rl-seconds`.
The supervised run also goes on alone for `--easy-sft-seconds`, as the reference it is.

Part `hard` (`--hard-ops`, default mixed `+-*`, two digits): the same wall-clock budget for
supervised-only and for supervised-then-RL. The second arm reuses the supervised run's checkpoint
at `--hard-switch` of the budget and spends the rest on RL. `--hard-sft-examples` limits the
supervised data to that many distinct problems (cycled through epoch after epoch), while RL
draws fresh problems and grades them exactly: the setting where demonstrations are scarce but
the reward is not.

Everything runs through the real loops (`cookbook.supervised.train.main`, `cookbook.rl.train.main`)
in chunks: each chunk extends the run by a few steps (the loops resume from their own checkpoint,
optimizer state included), and after each chunk the registered `arithmetic` eval scores greedy
exact answers on the env's held-out problems. Seconds are the loops' own training time
(supervised: `time/total` of each chunk; RL: the sum of `time/step - time/eval`), so set-up,
resume and evals are not counted for either side. With `--clock cpu` each chunk's seconds are
scaled by the process's CPU share over the chunk (CPU seconds per wall second, at most 1), an
estimate of the CPU seconds spent training: fairer when other jobs load the machine. Outputs
under `--out`: `results.json` (every curve point), `math_learning.png`, the run directories and
their loops' output (`*.log`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from cookbook_math.arithmetic_env import ArithmeticEnvBuilder
    from cookbook_math.evals import ArithmeticEvalBuilder
    from cookbook_math.sft import ArithmeticSFTBuilder

EVAL_NAME = "arithmetic"
"""Name of the held-out eval inside the RL run (its metrics: `eval/arithmetic/...`)."""
SFT_EVAL_PREFIX = f"eval/{EVAL_NAME}"
"""The same eval inside the supervised run."""


@dataclass(frozen=True)
class Task:
    """A difficulty of `arithmetic`; the env, the warm-start data and the eval all get it, so
    they share one held-out set (the first `num_test` problems of its held-out stream)."""

    operations: str = "+"
    digits: int = 2
    num_operands: int = 2
    num_test: int = 500
    """Held-out problems scored by every eval (the env's test split)."""
    sft_examples: int = 20_000
    """Distinct problems in the supervised data (it cycles through them; RL draws fresh ones)."""

    @property
    def label(self) -> str:
        """`2x3-digit +` style (with the supervised problems when fewer than the default)."""
        label = f"{self.num_operands}x{self.digits}-digit {self.operations}"
        if self.sft_examples != Task.sft_examples:
            label += f", {self.sft_examples} supervised problems"
        return label

    def max_tokens(self) -> int:
        """Reply budget: the longest possible answer plus the stop token and one spare."""
        top = 10**self.digits - 1
        bound = top**self.num_operands if "*" in self.operations else top * self.num_operands
        return len(str(bound)) + 2

    def env_builder(self) -> ArithmeticEnvBuilder:
        """The RL env."""
        from cookbook_math.arithmetic_env import ArithmeticEnvBuilder

        return ArithmeticEnvBuilder(
            operations=self.operations,
            digits=self.digits,
            num_operands=self.num_operands,
            num_test=self.num_test,
        )

    def sft_builder(self) -> ArithmeticSFTBuilder:
        """The warm-start dataset (correct answers to training problems only)."""
        from cookbook_math.sft import ArithmeticSFTBuilder

        return ArithmeticSFTBuilder(
            operations=self.operations,
            digits=self.digits,
            num_operands=self.num_operands,
            num_examples=self.sft_examples,
            num_test=self.num_test,
        )

    def eval_builder(self) -> ArithmeticEvalBuilder:
        """Greedy exact-answer accuracy on the held-out problems."""
        from cookbook_math.evals import ArithmeticEvalBuilder

        return ArithmeticEvalBuilder(
            operations=self.operations,
            digits=self.digits,
            num_operands=self.num_operands,
            num_problems=self.num_test,
            max_tokens=self.max_tokens(),
            temperature=0.0,
        )


@dataclass(frozen=True)
class SFTSettings:
    """The supervised side (the same as `cookbook rl`'s warm start: constant learning rate)."""

    learning_rate: float = 3e-3
    batch_size: int = 64


@dataclass(frozen=True)
class RLSettings:
    """The RL side."""

    learning_rate: float = 3e-4
    group_size: int = 8
    groups_per_batch: int = 16
    temperature: float = 1.0
    loss_fn: str = "importance_sampling"


@dataclass
class Point:
    """One held-out evaluation of a run."""

    phase: str
    """`sft` or `rl`."""
    step: int
    """Steps of this phase done."""
    seconds: float
    """Training seconds since the start of the experiment (both phases, evals excluded)."""
    accuracy: float
    """Greedy exact-answer accuracy on the held-out problems."""
    format_ok: float
    """Share of well-formed replies (a bare number that ended cleanly)."""
    checkpoint: str = ""
    """State path of the weights evaluated (a later phase can start from it)."""
    train: dict[str, float] = field(default_factory=dict)
    """Training metrics of the chunk (RL: mean batch reward and share correct)."""


@dataclass
class Curve:
    """A run's held-out accuracy over training seconds."""

    label: str
    points: list[Point] = field(default_factory=list)

    def at(self, seconds: float) -> Point:
        """The last point at or before `seconds` (the first point when none is)."""
        before = [p for p in self.points if p.seconds <= seconds + 1e-9]
        return before[-1] if before else self.points[0]


ChunkSteps = Callable[[Point], int]
"""Steps of the next chunk, given the last point (finer where accuracy moves fast)."""


@contextmanager
def _loop_output_to(log_dir: Path) -> Iterator[None]:
    """The loops' own stderr lines (resuming, done, checkpoint paths) go to `<run dir>.log` beside
    the run, so the benchmark prints only its curve."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (
        open(log_dir.parent / f"{log_dir.name}.log", "a", encoding="utf-8") as f,
        redirect_stderr(f),
    ):
        yield


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@contextmanager
def _cpu_share() -> Iterator[list[float]]:
    """Yields a one-item list that holds, on exit, this process's CPU seconds per wall second
    over the block (about 1 on an idle core, less on a shared one)."""
    share = [1.0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    yield share
    wall = time.perf_counter() - wall0
    share[0] = min(1.0, (time.process_time() - cpu0) / wall) if wall > 0 else 1.0


def _point(phase: str, step: int, seconds: float, metrics: dict[str, float], prefix: str) -> Point:
    return Point(
        phase=phase,
        step=step,
        seconds=seconds,
        accuracy=float(metrics.get(f"{prefix}/exact_accuracy", float("nan"))),
        format_ok=float(metrics.get(f"{prefix}/format_ok", float("nan"))),
    )


def _records(log_dir: Path, start: int, end: int) -> list[dict[str, float]]:
    """Training records of steps `start .. end - 1` from a run's metrics.jsonl."""
    from cookbook.runs.metrics import MetricsLog

    records = cast("list[dict[str, float]]", MetricsLog(log_dir / "metrics.jsonl").read())
    return [r for r in records if start <= r.get("step", -1) < end and "time/step" in r]


def train_sft(
    task: Task,
    settings: SFTSettings,
    log_dir: Path,
    *,
    seed: int,
    budget_s: float,
    chunk_steps: ChunkSteps,
    max_steps: int = 1_000_000,
    until: Callable[[Point], bool] | None = None,
    clock: str = "wall",
    say: Callable[[str], None] = print,
) -> Curve:
    """Supervised training on `task` in chunks until `budget_s` training seconds and, when given,
    until a point satisfies `until` (at most `max_steps`); a held-out eval and a checkpoint after
    each chunk."""
    from cookbook.supervised.train import Config, main

    curve = Curve("sft")
    step, seconds = 0, 0.0
    last = Point("sft", 0, 0.0, float("nan"), float("nan"))
    reached = until is None
    while (seconds < budget_s or not reached) and step < max_steps:
        end = min(step + max(1, chunk_steps(last)), max_steps)
        config = Config(
            dataset=task.sft_builder(),
            log_dir=str(log_dir),
            seed=seed,
            learning_rate=settings.learning_rate,
            lr_schedule="constant",  # so chunking changes nothing (and as the RL warm start)
            batch_size=settings.batch_size,
            max_steps=end,
            eval_every=0,
            save_every=0,
            evals={EVAL_NAME: task.eval_builder()},
            show_progress=False,
        )
        with _loop_output_to(log_dir), _cpu_share() as share:
            result = main(config, fresh=step == 0, argv=["benchmarks/math_learning.py"])
        records = _records(log_dir, step, end)
        scale = share[0] if clock == "cpu" else 1.0
        seconds += scale * max((r["time/total"] for r in records), default=0.0)
        last = _point("sft", end, seconds, result.last_metrics, SFT_EVAL_PREFIX)
        last.checkpoint = result.final_checkpoint
        last.train = {"loss": float(records[-1]["train/loss"])} if records else {}
        curve.points.append(last)
        reached = reached or (until is not None and until(last))
        say(f"  sft {end:5d} steps {seconds:7.1f} s  accuracy {last.accuracy:.3f}")
        step = end
    return curve


def train_rl(
    task: Task,
    settings: RLSettings,
    log_dir: Path,
    *,
    start: Point,
    seed: int,
    budget_s: float,
    chunk_steps: int,
    max_steps: int = 1_000_000,
    clock: str = "wall",
    say: Callable[[str], None] = print,
) -> Curve:
    """RL on `task` from `start.checkpoint`, in chunks of `chunk_steps` until `budget_s` more
    training seconds (or `max_steps`); a held-out eval after each chunk. At least one chunk runs,
    whatever the budget (a loaded machine can spend a short one before RL starts). The curve
    starts at `start` and counts seconds on from it."""
    from cookbook.rl.train import Config, main

    curve = Curve("sft+rl", [start])
    step, seconds = 0, 0.0
    while step < max_steps and (step == 0 or seconds < budget_s):
        end = min(step + chunk_steps, max_steps)
        config = Config(
            env=task.env_builder(),
            log_dir=str(log_dir),
            seed=seed,
            load_checkpoint_path=start.checkpoint,
            learning_rate=settings.learning_rate,
            loss_fn=settings.loss_fn,
            group_size=settings.group_size,
            groups_per_batch=settings.groups_per_batch,
            max_tokens=task.max_tokens(),
            temperature=settings.temperature,
            max_steps=end,
            eval_every=0,
            save_every=0,
            transcript_groups=1,
            evals={EVAL_NAME: task.eval_builder()},
            show_progress=False,
        )
        with _loop_output_to(log_dir), _cpu_share() as share:
            summary = main(config, fresh=step == 0, argv=["benchmarks/math_learning.py"])
        records = _records(log_dir, step, end)
        scale = share[0] if clock == "cpu" else 1.0
        seconds += scale * sum(r["time/step"] - r.get("time/eval", 0.0) for r in records)
        point = _point(
            "rl", end, start.seconds + seconds, summary.last_metrics, f"eval/{EVAL_NAME}"
        )
        if records:
            point.train = {
                "reward": sum(r["reward/mean"] for r in records) / len(records),
                "correct": sum(r.get("env/correct", 0.0) for r in records) / len(records),
            }
        curve.points.append(point)
        say(
            f"  rl  {end:5d} steps {point.seconds:7.1f} s  accuracy {point.accuracy:.3f}"
            f"  (batch correct {point.train.get('correct', float('nan')):.3f})"
        )
        step = end
    return curve


@dataclass
class EasyResult:
    """Part `easy`: brief warm start, then RL; the supervised run alone for reference."""

    task: Task
    sft: Curve
    rl: Curve
    start_accuracy: float
    final_accuracy: float
    best_accuracy: float
    seconds_to_plus30: float | None
    """RL seconds (after the warm start) until held-out accuracy first rose 30 points."""


def run_easy(
    out: Path,
    *,
    task: Task,
    sft: SFTSettings,
    rl: RLSettings,
    seed: int,
    sft_seconds: float,
    rl_seconds: float,
    warm_min_accuracy: float,
    warm_chunk: int = 20,
    warm_max_steps: int = 5000,
    sft_chunk: int = 100,
    rl_chunk: int = 50,
    say: Callable[[str], None] = print,
) -> EasyResult:
    """Warm start (fine chunks until the warm-start point, at most `warm_max_steps`), the
    supervised run on alone (coarse chunks) for `sft_seconds` in all, then RL from the warm-start
    point."""
    say(f"easy ({task.label}): supervised until format learned and accuracy >= {warm_min_accuracy}")

    def is_warm(p: Point) -> bool:
        return p.format_ok >= 0.9 and p.accuracy >= warm_min_accuracy

    sft_curve = train_sft(
        task,
        sft,
        out / "easy-sft",
        seed=seed,
        budget_s=sft_seconds,
        chunk_steps=lambda last: sft_chunk if is_warm(last) else warm_chunk,
        until=lambda p: is_warm(p) or p.step >= warm_max_steps,
        say=say,
    )
    start = next((p for p in sft_curve.points if is_warm(p)), None)
    if start is None:
        start = sft_curve.points[-1]
        say(f"  warm start never reached accuracy {warm_min_accuracy}; RL starts at the end")
    say(f"easy: RL from the supervised step {start.step} (accuracy {start.accuracy:.3f})")
    rl_curve = train_rl(
        task,
        rl,
        out / "easy-rl",
        start=start,
        seed=seed,
        budget_s=rl_seconds,
        chunk_steps=rl_chunk,
        say=say,
    )
    rl_points = rl_curve.points[1:]
    plus30 = next((p for p in rl_points if p.accuracy >= start.accuracy + 0.30), None)
    return EasyResult(
        task=task,
        sft=sft_curve,
        rl=rl_curve,
        start_accuracy=start.accuracy,
        final_accuracy=rl_curve.points[-1].accuracy,
        best_accuracy=max(p.accuracy for p in rl_curve.points),
        seconds_to_plus30=None if plus30 is None else plus30.seconds - start.seconds,
    )


@dataclass
class HardResult:
    """Part `hard`: supervised-only against supervised-then-RL at one budget."""

    task: Task
    budget_s: float
    sft: Curve
    rl: Curve
    sft_at_budget: float
    rl_at_budget: float
    winner: str


def run_hard(
    out: Path,
    *,
    task: Task,
    sft: SFTSettings,
    rl: RLSettings,
    seed: int,
    budget_s: float,
    switch: float,
    sft_chunk: int = 100,
    rl_chunk: int = 50,
    clock: str = "wall",
    say: Callable[[str], None] = print,
) -> HardResult:
    """Supervised for the whole budget; RL from its checkpoint at `switch` of the budget."""
    say(f"hard ({task.label}): {budget_s:.0f} s each, RL switch at {switch:.0%}")
    sft_curve = train_sft(
        task,
        sft,
        out / "hard-sft",
        seed=seed,
        budget_s=budget_s,
        chunk_steps=lambda _: sft_chunk,
        clock=clock,
        say=say,
    )
    start = sft_curve.at(switch * budget_s)
    say(f"hard: RL from the supervised step {start.step} ({start.seconds:.1f} s)")
    rl_curve = train_rl(
        task,
        rl,
        out / "hard-rl",
        start=start,
        seed=seed,
        budget_s=budget_s - start.seconds,
        chunk_steps=rl_chunk,
        clock=clock,
        say=say,
    )
    sft_acc = sft_curve.at(budget_s).accuracy
    rl_acc = rl_curve.at(budget_s).accuracy
    winner = "sft+rl" if rl_acc > sft_acc else "sft" if sft_acc > rl_acc else "tie"
    return HardResult(task, budget_s, sft_curve, rl_curve, sft_acc, rl_acc, winner)


def plot(path: Path, easy: EasyResult | None, hard: HardResult | None) -> None:
    """Held-out accuracy against training seconds, one panel per part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [(p, t) for p, t in ((easy, "easy"), (hard, "hard")) if p is not None]
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4), squeeze=False)
    for ax, (result, name) in zip(axes[0], parts, strict=True):
        for curve, style in ((result.sft, "-o"), (result.rl, "-s")):
            xs = [p.seconds for p in curve.points]
            ys = [100 * p.accuracy for p in curve.points]
            label = "supervised only" if curve.label == "sft" else "supervised, then RL"
            ax.plot(xs, ys, style, markersize=3, label=label)
        switch = result.rl.points[0]
        ax.axvline(switch.seconds, color="grey", linestyle=":", linewidth=1)
        if isinstance(result, HardResult):
            ax.axvline(result.budget_s, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{name}: {result.task.label}")
        ax.set_xlabel("training seconds (evals excluded)")
        ax.set_ylabel("held-out exact accuracy, greedy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curve_json(curve: Curve) -> dict[str, object]:
    return {"label": curve.label, "points": [asdict(p) for p in curve.points]}


def write_results(
    out: Path, easy: EasyResult | None, hard: HardResult | None, info: dict[str, object]
) -> Path:
    """`results.json`: settings, every curve point and the summary numbers."""
    data: dict[str, object] = dict(info)
    if easy is not None:
        data["easy"] = {
            "task": asdict(easy.task),
            "sft": _curve_json(easy.sft),
            "sft+rl": _curve_json(easy.rl),
            "start_accuracy": easy.start_accuracy,
            "final_accuracy": easy.final_accuracy,
            "best_accuracy": easy.best_accuracy,
            "seconds_to_plus30": easy.seconds_to_plus30,
        }
    if hard is not None:
        data["hard"] = {
            "task": asdict(hard.task),
            "budget_s": hard.budget_s,
            "sft": _curve_json(hard.sft),
            "sft+rl": _curve_json(hard.rl),
            "sft_at_budget": hard.sft_at_budget,
            "sft+rl_at_budget": hard.rl_at_budget,
            "winner": hard.winner,
        }
    path = out / "results.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def print_curves(easy: EasyResult | None, hard: HardResult | None) -> None:
    """The curves side by side as text: seconds and accuracy."""
    for result, name in ((easy, "easy"), (hard, "hard")):
        if result is None:
            continue
        print(f"\n{name} ({result.task.label}): training seconds -> held-out accuracy (%)")
        for curve in (result.sft, result.rl):
            # At most ~20 points a line (results.json has them all).
            stride = max(1, len(curve.points) // 20)
            shown = curve.points[::stride]
            if shown[-1] is not curve.points[-1]:
                shown.append(curve.points[-1])
            pairs = "  ".join(f"{p.seconds:.0f}s:{100 * p.accuracy:.0f}" for p in shown)
            print(f"  {curve.label:7s} {pairs}")
    if easy is not None:
        gain = easy.best_accuracy - easy.start_accuracy
        to30 = "never" if easy.seconds_to_plus30 is None else f"{easy.seconds_to_plus30:.0f} s"
        print(
            f"\neasy: warm start {100 * easy.start_accuracy:.1f}% -> RL final "
            f"{100 * easy.final_accuracy:.1f}%, best {100 * easy.best_accuracy:.1f}% "
            f"(+{100 * gain:.1f} points); +30 points after {to30} of RL"
        )
    if hard is not None:
        print(
            f"hard: at {hard.budget_s:.0f} s supervised only {100 * hard.sft_at_budget:.1f}%, "
            f"supervised then RL {100 * hard.rl_at_budget:.1f}% -> {hard.winner} wins"
        )


def _parse_task(
    ops: str, digits: int, operands: int, num_test: int, sft_examples: int = Task.sft_examples
) -> Task:
    return Task(
        operations=ops,
        digits=digits,
        num_operands=operands,
        num_test=num_test,
        sft_examples=sft_examples,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print the curves, write results.json and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", default="runs/math-learning")
    parser.add_argument("--parts", default="easy,hard", help="easy, hard or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--num-test", type=int, default=500, help="held-out problems per eval")
    parser.add_argument("--easy-sft-seconds", type=float, default=60.0)
    parser.add_argument("--rl-seconds", type=float, default=300.0)
    parser.add_argument("--warm-min-accuracy", type=float, default=0.2)
    parser.add_argument("--hard-ops", default="+-*")
    parser.add_argument("--hard-digits", type=int, default=2)
    parser.add_argument("--hard-operands", type=int, default=2)
    parser.add_argument(
        "--hard-sft-examples",
        type=int,
        default=Task.sft_examples,
        help="distinct problems in the hard part's supervised data",
    )
    parser.add_argument("--hard-seconds", type=float, default=300.0)
    parser.add_argument("--hard-switch", type=float, default=0.5)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="budget in the loops' wall seconds, or those seconds scaled by the process's CPU "
        "share of each chunk (fairer on a loaded machine)",
    )
    parser.add_argument("--sft-chunk", type=int, default=100, help="hard: steps between evals")
    parser.add_argument("--rl-chunk", type=int, default=50, help="hard: RL steps between evals")
    parser.add_argument("--sft-lr", type=float, default=SFTSettings.learning_rate)
    parser.add_argument("--rl-lr", type=float, default=RLSettings.learning_rate)
    parser.add_argument("--group-size", type=int, default=RLSettings.group_size)
    parser.add_argument("--groups-per-batch", type=int, default=RLSettings.groups_per_batch)
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"easy", "hard"}:
        parser.error("--parts takes easy, hard or easy,hard")

    _set_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sft = SFTSettings(learning_rate=args.sft_lr)
    rl = RLSettings(
        learning_rate=args.rl_lr, group_size=args.group_size, groups_per_batch=args.groups_per_batch
    )
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    t0 = time.perf_counter()
    easy = hard = None
    if "easy" in parts:
        easy = run_easy(
            out,
            task=_parse_task("+", 2, 2, args.num_test),
            sft=sft,
            rl=rl,
            seed=args.seed,
            sft_seconds=args.easy_sft_seconds,
            rl_seconds=args.rl_seconds,
            warm_min_accuracy=args.warm_min_accuracy,
        )
    if "hard" in parts:
        hard = run_hard(
            out,
            task=_parse_task(
                args.hard_ops,
                args.hard_digits,
                args.hard_operands,
                args.num_test,
                args.hard_sft_examples,
            ),
            sft=sft,
            rl=rl,
            seed=args.seed,
            budget_s=args.hard_seconds,
            switch=args.hard_switch,
            sft_chunk=args.sft_chunk,
            rl_chunk=args.rl_chunk,
            clock=args.clock,
        )
    load_after = os.getloadavg()
    info: dict[str, object] = {
        "args": vars(args),
        "sft_settings": asdict(sft),
        "rl_settings": asdict(rl),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "wall_s": time.perf_counter() - t0,
    }
    print_curves(easy, hard)
    results = write_results(out, easy, hard, info)
    plot(out / "math_learning.png", easy, hard)
    print(
        f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
        f"wall {info['wall_s']:.0f} s; wrote {results} and {out / 'math_learning.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
