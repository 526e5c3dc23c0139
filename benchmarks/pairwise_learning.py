"""Pairwise preference RL with the tiny model on CPU: does the policy beat where it started?

    .venv/bin/python benchmarks/pairwise_learning.py [--parts rule,trained] [--out runs/pairwise-learning]
        [--rule-minutes 10] [--trained-minutes 15] [--judge-steps 600] [--eval-every 5] [--seed 0]
        [--bias-pairs 200]

Part `rule`: `cookbook rl --env pairwise` as shipped (warm start on `pairwise-warmup`, then RL with
the `vowels` rule as the preference model). Every `--eval-every` steps the `pairwise-win-rate`
eval samples the policy and the starting policy (the end of the warm start) on the same held-out
prompts with the same seeds and the rule compares each pair (ties count half).
Target: a win rate >= 75% within 10 minutes.

Part `trained`: the three-command RLHF path. (1) `cookbook sft --dataset comparisons`: a judge
trained on the built-in comparisons labelled by the `vowels` rule, its held-out accuracy
(`comparison-accuracy`, both orders) measured along the way (aim: >= 90%). (2) RL with
`preference_model=trained:<judge run>`, the rule watching as a monitor. The win-rate eval runs
twice on the same samples: judged by the hidden rule (the truth) and by the trained judge (what
RL optimises). Target: the rule's win rate rises >= 25 points above the start (50%: the start
against itself) within 15 minutes, judge training included. Reward hacking shows where the
judge's win rate rises while the rule's does not: the points where they part are listed. Where
the rule has no preference the judge may have one of its own: `--bias-pairs` pairs of all-vowel
replies (ties by the rule), short against long, show whether it prefers length.

Everything runs through the real loops (`cookbook.supervised.train.main`, `cookbook.rl.train.main`)
with the plugin's builders. Seconds are the loops' own: warm-start and RL step times (the evals
these runs make for the benchmark excluded) and the judge's training time; the wall time of each
part, set-up included, is printed too. Steps are reported beside seconds; the machine's load
average before and after is printed and saved. Outputs under `--out`: `results.json`,
`pairwise_learning.png`, the run directories and their loops' output (`*.log`).
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

RULE = "vowels"
"""The hidden programmatic rule (and, in part `rule`, the preference model itself)."""
RULE_TARGET = 0.75
RULE_MINUTES = 10.0
TRAINED_RISE = 0.25
TRAINED_MINUTES = 15.0
JUDGE_ACCURACY_AIM = 0.90
HACK_GAP = 0.10
"""A point where the judge's win rate exceeds the rule's by this much is flagged as hacking."""


@dataclass(frozen=True)
class RLSettings:
    """The RL side (the env's recommended run unless changed)."""

    learning_rate: float = 1e-3
    group_size: int = 8
    groups_per_batch: int = 16
    max_tokens: int = 12
    warm_start_steps: int = 300
    comparisons_per_completion: int = 7


@dataclass
class Point:
    """One evaluation of the policy against its start."""

    step: int
    """RL steps done."""
    seconds: float
    """Training seconds of the part so far (judge, warm start and RL steps; evals excluded)."""
    rule_win_rate: float
    """Win rate against the start, judged by the hidden rule (ties half)."""
    judge_win_rate: float | None = None
    """The same pairs judged by the trained judge (part `trained`)."""
    score: float | None = None
    """Mean rule score (vowel share) of the policy's held-out replies."""
    reference_score: float | None = None
    train: dict[str, float] = field(default_factory=dict)
    """Training metrics of the step (reward, env metrics)."""


@dataclass
class JudgePoint:
    """The judge's held-out accuracy during its training."""

    step: int
    seconds: float
    accuracy: float
    order_agreement: float | None = None


@dataclass
class PartResult:
    """One part's curve and what it says about its target."""

    name: str
    points: list[Point]
    wall_s: float
    steps: int
    judge: list[JudgePoint] = field(default_factory=list)
    judge_seconds: float = 0.0
    start_win_rate: float = 0.5
    """The start against itself (the same samples: every pair ties)."""
    checks: dict[str, bool] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)


@contextmanager
def _loop_output_to(log_dir: Path) -> Iterator[None]:
    """The loops' own stderr (progress, warnings) goes to `<run dir>.log`."""
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_dir.parent / f"{log_dir.name}.log", "a", encoding="utf-8") as f,
        redirect_stderr(f),
    ):
        yield


def _read(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def train_judge(
    out: Path, *, steps: int, seed: int, batch_size: int, eval_every: int, num_test: int
) -> tuple[str, list[JudgePoint], float]:
    """`cookbook sft --dataset comparisons` for `steps`; returns the run directory, the held-out
    accuracy curve and the training seconds (evals excluded)."""
    from cookbook_pairwise.comparisons import ComparisonsBuilder
    from cookbook_pairwise.evals import ComparisonAccuracyBuilder

    from cookbook.supervised.train import Config, main

    log_dir = out / "judge"
    config = Config(
        dataset=ComparisonsBuilder(rule=RULE),
        log_dir=str(log_dir),
        seed=seed,
        learning_rate=3e-3,
        batch_size=batch_size,
        max_steps=steps,
        eval_every=eval_every,
        save_every=0,
        evals={"accuracy": ComparisonAccuracyBuilder(rule=RULE, num_test=num_test)},
        show_progress=False,
    )
    with _loop_output_to(log_dir):
        main(config, fresh=True, argv=["benchmarks/pairwise_learning.py"])
    records = _read(log_dir / "metrics.jsonl")
    points: list[JudgePoint] = []
    eval_s = 0.0
    trained_s = 0.0  # training seconds before the current record's step
    for r in records:
        if "eval/accuracy/accuracy" in r:
            # An eval in a step's record measured the weights before that step (the final one,
            # a record of its own, the weights after the last step).
            points.append(
                JudgePoint(
                    step=int(r["step"]),
                    seconds=trained_s,
                    accuracy=r["eval/accuracy/accuracy"],
                    order_agreement=r.get("eval/accuracy/order_agreement"),
                )
            )
        if "time/total" in r:  # a training step: its clock includes the evals made so far
            eval_s += r.get("time/eval", 0.0)
            trained_s = max(r["time/total"] - eval_s, 0.0)
    return str(log_dir), points, trained_s


def run_rl(
    out: Path,
    name: str,
    *,
    preference_model: str,
    monitor: str | None,
    evals: dict[str, str],
    settings: RLSettings,
    seed: int,
    minutes: float,
    max_steps: int,
    eval_every: int,
    eval_prompts: int,
) -> tuple[Path, float]:
    """A fresh `cookbook rl --env pairwise` run with the given judge, for at most `minutes` of
    wall time (warm start included) or `max_steps`; `evals` maps eval names to the preference
    model each `pairwise-win-rate` eval judges with. Returns the run directory and its wall time."""
    from cookbook_pairwise.builders import PairwiseEnvBuilder, PairwiseWarmupBuilder
    from cookbook_pairwise.evals import PairwiseWinRateBuilder

    from cookbook.eval.types import EvaluatorBuilder
    from cookbook.rl.train import Config, main
    from cookbook.rl.warm_start import WarmStartConfig

    log_dir = out / name
    evaluators: dict[str, EvaluatorBuilder] = {
        key: PairwiseWinRateBuilder(preference_model=model, num_prompts=eval_prompts)
        for key, model in evals.items()
    }
    config = Config(
        env=PairwiseEnvBuilder(
            preference_model=preference_model,
            monitor=monitor,
            comparisons_per_completion=settings.comparisons_per_completion,
        ),
        log_dir=str(log_dir),
        seed=seed,
        learning_rate=settings.learning_rate,
        group_size=settings.group_size,
        groups_per_batch=settings.groups_per_batch,
        max_tokens=settings.max_tokens,
        max_steps=max_steps,
        max_minutes=minutes,
        eval_every=eval_every,
        evals=evaluators,
        save_every=0,
        transcript_groups=1,
        warm_start=WarmStartConfig(
            dataset=PairwiseWarmupBuilder(),
            steps=settings.warm_start_steps,
            learning_rate=3e-3,
            batch_size=64,
            save_every=settings.warm_start_steps,
        ),
        show_progress=False,
    )
    t0 = time.perf_counter()
    with _loop_output_to(log_dir):
        main(config, fresh=True, argv=["benchmarks/pairwise_learning.py"])
    return log_dir, time.perf_counter() - t0


def curve(log_dir: Path, offset_s: float, judge_eval: str | None) -> tuple[list[Point], int]:
    """Eval points of an RL run, with training seconds (`offset_s` + warm start + RL steps, evals
    excluded) and the step's training metrics; and the number of RL steps run."""
    warm_s = sum(r.get("time/step", 0.0) for r in _read(log_dir / "warm_start_metrics.jsonl"))
    seconds = offset_s + warm_s
    points: list[Point] = []
    records = _read(log_dir / "metrics.jsonl")
    for r in records:
        seconds += r.get("time/step", 0.0) - r.get("time/eval", 0.0)
        if "eval/rule/win_rate" not in r:
            continue
        train = {
            k: float(v)
            for k, v in r.items()
            if k in ("reward/mean", "env/score", "env/monitor_score", "env/monitor_agreement")
            or k in ("env/order_agreement", "env/format_ok", "env/judge_failure_rate")
            or k == "episode/action_tokens"
        }
        points.append(
            Point(
                step=int(r["step"]) + 1,
                seconds=seconds,
                rule_win_rate=r["eval/rule/win_rate"],
                judge_win_rate=r.get(f"eval/{judge_eval}/win_rate") if judge_eval else None,
                score=r.get("eval/rule/score"),
                reference_score=r.get("eval/rule/reference_score"),
                train=train,
            )
        )
    return points, len(records)


def length_bias(judge: str, *, pairs: int, seed: int) -> dict[str, float]:
    """What a judge prefers where the rule has no preference: `pairs` all-vowel replies to
    held-out prompts (the `vowels` rule ties them), 1-5 letters against 7-11, shown in a random
    order. Returns the share where the judge prefers the longer reply (ties half) and the share
    where its two orders agree."""
    import asyncio
    import random

    from cookbook_pairwise.preference.resolve import preference_model
    from cookbook_pairwise.synthetic import VOWELS, builtin_prompts

    model = preference_model(judge)
    _, heldout = builtin_prompts()
    rng = random.Random(f"length-bias:{seed}")

    def word(low: int, high: int) -> str:
        return "".join(rng.choice(VOWELS) for _ in range(rng.randint(low, high)))

    cases = [
        (rng.choice(heldout), word(1, 5), word(7, 11), rng.random() < 0.5) for _ in range(pairs)
    ]

    async def judge_all() -> tuple[float, float]:
        longer = agreed = 0.0
        for prompt, short, long, long_first in cases:
            verdict = await (
                model.compare(prompt, long, short)
                if long_first
                else model.compare(prompt, short, long)
            )
            p_long = verdict.p_first if long_first else 1.0 - verdict.p_first
            longer += 0.5 if verdict.is_tie else float(p_long > 0.5)
            agreed += bool(verdict.orders_agree)
        return longer / max(pairs, 1), agreed / max(pairs, 1)

    prefers_longer, order_agreement = asyncio.run(judge_all())
    return {
        "pairs": float(pairs),
        "prefers_longer": prefers_longer,
        "order_agreement": order_agreement,
    }


def run_rule(
    out: Path,
    *,
    settings: RLSettings,
    seed: int,
    minutes: float,
    max_steps: int,
    eval_every: int,
    eval_prompts: int,
    say: Callable[[str], None] = print,
) -> PartResult:
    """Part `rule`: RL judged by the rule itself."""
    say(f"rule: warm start, then RL with preference_model={RULE} for <= {minutes:g} min")
    log_dir, wall_s = run_rl(
        out,
        "rule-rl",
        preference_model=RULE,
        monitor=None,
        evals={"rule": RULE},
        settings=settings,
        seed=seed,
        minutes=minutes,
        max_steps=max_steps,
        eval_every=eval_every,
        eval_prompts=eval_prompts,
    )
    points, steps = curve(log_dir, 0.0, None)
    result = PartResult("rule", points, wall_s, steps)
    reached = next((p for p in points if p.rule_win_rate >= RULE_TARGET), None)
    result.checks = {
        f"win rate >= {RULE_TARGET:.0%} within {RULE_MINUTES:g} min": reached is not None
        and reached.seconds <= RULE_MINUTES * 60,
    }
    result.summary = {
        "first_at_target": None if reached is None else asdict(reached),
        "final_win_rate": points[-1].rule_win_rate if points else None,
        "best_win_rate": max((p.rule_win_rate for p in points), default=None),
    }
    for p in points:
        say(
            f"  step {p.step:4d}  {p.seconds:6.1f} s  win rate {p.rule_win_rate:.3f}  score {p.score:.3f}"
        )
    return result


def run_trained(
    out: Path,
    *,
    settings: RLSettings,
    seed: int,
    minutes: float,
    max_steps: int,
    eval_every: int,
    eval_prompts: int,
    judge_steps: int,
    judge_batch: int,
    judge_eval_every: int,
    judge_test: int,
    bias_pairs: int,
    say: Callable[[str], None] = print,
) -> PartResult:
    """Part `trained`: train the judge, then RL against it with the rule watching."""
    say(f"trained: judge on {RULE}-labelled comparisons for {judge_steps} steps")
    t0 = time.perf_counter()
    judge_dir, judge_points, judge_s = train_judge(
        out,
        steps=judge_steps,
        seed=seed,
        batch_size=judge_batch,
        eval_every=judge_eval_every,
        num_test=judge_test,
    )
    judge_wall = time.perf_counter() - t0
    for j in judge_points:
        say(f"  judge step {j.step:4d}  {j.seconds:6.1f} s  held-out accuracy {j.accuracy:.3f}")
    trained = f"trained:{judge_dir}"
    rl_minutes = max(minutes - judge_wall / 60, 0.5)
    say(f"trained: RL with preference_model={trained} for <= {rl_minutes:.1f} min")
    log_dir, wall_s = run_rl(
        out,
        "trained-rl",
        preference_model=trained,
        monitor=RULE,
        evals={"rule": RULE, "judge": trained},
        settings=settings,
        seed=seed,
        minutes=rl_minutes,
        max_steps=max_steps,
        eval_every=eval_every,
        eval_prompts=eval_prompts,
    )
    points, steps = curve(log_dir, judge_s, "judge")
    result = PartResult("trained", points, judge_wall + wall_s, steps, judge_points, judge_s)
    target = result.start_win_rate + TRAINED_RISE
    reached = next((p for p in points if p.rule_win_rate >= target), None)
    final_accuracy = judge_points[-1].accuracy if judge_points else None
    hacked = [
        asdict(p)
        for p in points
        if p.judge_win_rate is not None and p.judge_win_rate - p.rule_win_rate >= HACK_GAP
    ]
    result.checks = {
        f"rule win rate +{TRAINED_RISE:.0%} within {TRAINED_MINUTES:g} min (judge included)": (
            reached is not None and reached.seconds <= TRAINED_MINUTES * 60
        ),
        f"judge held-out accuracy >= {JUDGE_ACCURACY_AIM:.0%} (aim)": final_accuracy is not None
        and final_accuracy >= JUDGE_ACCURACY_AIM,
    }
    result.summary = {
        "judge_accuracy": final_accuracy,
        "judge_training_s": judge_s,
        "first_at_target": None if reached is None else asdict(reached),
        "final_rule_win_rate": points[-1].rule_win_rate if points else None,
        "final_judge_win_rate": points[-1].judge_win_rate if points else None,
        "hacking_points": hacked,
    }
    if bias_pairs > 0:
        bias = length_bias(trained, pairs=bias_pairs, seed=seed)
        result.summary["judge_length_bias"] = bias
        say(
            f"  the judge prefers the longer of two all-vowel replies (a tie by the rule) in "
            f"{bias['prefers_longer']:.1%} of {bias_pairs} pairs (order agreement "
            f"{bias['order_agreement']:.1%})"
        )
    for p in points:
        say(
            f"  step {p.step:4d}  {p.seconds:6.1f} s  rule win rate {p.rule_win_rate:.3f}  "
            f"judge win rate {p.judge_win_rate or float('nan'):.3f}  "
            f"monitor agreement {p.train.get('env/monitor_agreement', float('nan')):.3f}"
        )
    return result


def plot(path: Path, parts: list[PartResult]) -> None:
    """Win rate against the start over training seconds, one panel per part (and the judge's
    accuracy while it trains)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        xs = [p.seconds for p in part.points]
        ax.plot(
            xs,
            [100 * p.rule_win_rate for p in part.points],
            "-o",
            markersize=3,
            label=f"judged by the {RULE} rule",
        )
        if part.name == "trained":
            judged = [
                (p.seconds, p.judge_win_rate) for p in part.points if p.judge_win_rate is not None
            ]
            ax.plot(
                [s for s, _ in judged],
                [100 * w for _, w in judged],
                "-s",
                markersize=3,
                label="judged by the trained judge",
            )
            ax.plot(
                [j.seconds for j in part.judge],
                [100 * j.accuracy for j in part.judge],
                ":^",
                markersize=3,
                label="judge held-out accuracy",
            )
            ax.axhline(
                100 * (part.start_win_rate + TRAINED_RISE),
                color="grey",
                linestyle="--",
                linewidth=1,
            )
            ax.axvline(TRAINED_MINUTES * 60, color="black", linestyle=":", linewidth=1)
        else:
            ax.axhline(100 * RULE_TARGET, color="grey", linestyle="--", linewidth=1)
            ax.axvline(RULE_MINUTES * 60, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{part.name}: win rate against the starting policy")
        ax.set_xlabel("training seconds (evals excluded)")
        ax.set_ylabel("%")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(out: Path, parts: list[PartResult], info: dict[str, object]) -> Path:
    """`results.json`: settings, every point, the checks and summaries."""
    data: dict[str, object] = dict(info)
    for part in parts:
        data[part.name] = asdict(part)
    path = out / "results.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, print the curves and checks, write results.json and the plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", default="runs/pairwise-learning")
    parser.add_argument("--parts", default="rule,trained", help="rule, trained or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rule-minutes", type=float, default=RULE_MINUTES)
    parser.add_argument("--trained-minutes", type=float, default=TRAINED_MINUTES)
    parser.add_argument("--max-steps", type=int, default=100_000, help="RL steps cap per part")
    parser.add_argument("--eval-every", type=int, default=5, help="RL steps between evals")
    parser.add_argument("--eval-prompts", type=int, default=120, help="held-out prompts per eval")
    parser.add_argument("--warm-start-steps", type=int, default=RLSettings.warm_start_steps)
    parser.add_argument("--learning-rate", type=float, default=RLSettings.learning_rate)
    parser.add_argument("--group-size", type=int, default=RLSettings.group_size)
    parser.add_argument("--groups-per-batch", type=int, default=RLSettings.groups_per_batch)
    parser.add_argument(
        "--comparisons", type=int, default=RLSettings.comparisons_per_completion, help="per reply"
    )
    parser.add_argument("--judge-steps", type=int, default=600)
    parser.add_argument("--judge-batch", type=int, default=64)
    parser.add_argument("--judge-eval-every", type=int, default=100)
    parser.add_argument("--judge-test", type=int, default=500, help="held-out comparisons")
    parser.add_argument(
        "--bias-pairs", type=int, default=200, help="pairs of the judge's length-bias probe"
    )
    args = parser.parse_args(argv)
    names = args.parts.split(",")
    if not set(names) <= {"rule", "trained"}:
        parser.error("--parts takes rule, trained or rule,trained")

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = RLSettings(
        learning_rate=args.learning_rate,
        group_size=args.group_size,
        groups_per_batch=args.groups_per_batch,
        warm_start_steps=args.warm_start_steps,
        comparisons_per_completion=args.comparisons,
    )
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    t0 = time.perf_counter()
    parts: list[PartResult] = []
    if "rule" in names:
        parts.append(
            run_rule(
                out,
                settings=settings,
                seed=args.seed,
                minutes=args.rule_minutes,
                max_steps=args.max_steps,
                eval_every=args.eval_every,
                eval_prompts=args.eval_prompts,
            )
        )
    if "trained" in names:
        parts.append(
            run_trained(
                out,
                settings=settings,
                seed=args.seed,
                minutes=args.trained_minutes,
                max_steps=args.max_steps,
                eval_every=args.eval_every,
                eval_prompts=args.eval_prompts,
                judge_steps=args.judge_steps,
                judge_batch=args.judge_batch,
                judge_eval_every=args.judge_eval_every,
                judge_test=args.judge_test,
                bias_pairs=args.bias_pairs,
            )
        )
    load_after = os.getloadavg()
    info: dict[str, object] = {
        "args": vars(args),
        "settings": asdict(settings),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "wall_s": time.perf_counter() - t0,
    }
    print()
    for part in parts:
        for check, ok in part.checks.items():
            print(f"{part.name}: {'PASS' if ok else 'FAIL'}  {check}")
        print(
            f"{part.name}: {part.steps} RL steps, {part.wall_s:.0f} s wall; {json.dumps(part.summary, default=str)[:400]}"
        )
    results = write_results(out, parts, info)
    plot(out / "pairwise_learning.png", parts)
    print(
        f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
        f"wall {info['wall_s']:.0f} s; wrote {results} and {out / 'pairwise_learning.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
