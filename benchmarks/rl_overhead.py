"""How much of an RL step is the runner's own work, and how sampling scales with concurrency.

    .venv/bin/python benchmarks/rl_overhead.py [--steps 20] [--group-size 8] [--groups 16 64]
    .venv/bin/python benchmarks/rl_overhead.py --no-scaling   # part 1 only

Part 1 runs the real loop (`cookbook.rl.train`) on a trivial single-turn env with the tiny model
and reports, per step, the wall time spent waiting on the backend (sampling, forward_backward,
optim_step, sampler weights: the union of in-flight intervals) against the rest (env code,
rollout bookkeeping, advantages and datums, and whatever of metrics, transcripts and the metrics
line the loop waits for), once per `--groups` value. max_tokens 3 keeps the backend's share
small, so the runner's shows. Target: the runner's share <= 5% at 8 x 16 and at 64 groups.

Part 2 rolls out 1..64 concurrent groups of 8 against one sampling client and reports samples
and sampled tokens per second: the local sampler batches concurrent requests, so throughput
should grow with concurrency until the CPU is saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import chz
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Observation,
    RLDataset,
    RLDatasetBuilder,
    StepResult,
    StopCondition,
)
from cookbook.runs.metrics import MetricsLog

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient

TARGET_SHARE = 0.05


class TrivialEnv(Env):
    """One turn; reward 1 when the reply's first byte is even (about half the time at random)."""

    def __init__(self, prompt: list[int], stop: list[int]) -> None:
        self.prompt = prompt
        self.stop = stop

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return tinker_types.ModelInput.from_ints(self.prompt), self.stop

    async def step(self, action: Action) -> StepResult:
        reward = 1.0 if action and action[0] % 2 == 0 else 0.0
        return StepResult(
            reward=reward,
            episode_done=True,
            next_observation=tinker_types.ModelInput.empty(),
            next_stop_condition=self.stop,
        )


class TrivialGroup(EnvGroupBuilder):
    def __init__(self, prompt: list[int], stop: list[int], group_size: int) -> None:
        self.prompt = prompt
        self.stop = stop
        self.group_size = group_size

    async def make_envs(self) -> Sequence[Env]:
        return [TrivialEnv(self.prompt, self.stop) for _ in range(self.group_size)]


class TrivialDataset(RLDataset):
    def __init__(self, ctx: BuildContext, num_batches: int) -> None:
        self.ctx = ctx
        self.num_batches = num_batches
        self.stop = list(ctx.renderer.get_stop_sequences())

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        out: list[EnvGroupBuilder] = []
        for p in range(self.ctx.groups_per_batch):
            # ~24 prompt tokens, like a compact tic-tac-toe board.
            text = f"board {index:04d}/{p:03d} x.o.x.o"
            prompt = self.ctx.renderer.build_generation_prompt([{"role": "user", "content": text}])
            out.append(TrivialGroup(prompt.to_ints(), self.stop, self.ctx.group_size))
        return out

    def __len__(self) -> int:
        return self.num_batches


@chz.chz
class TrivialBuilder(RLDatasetBuilder):
    """The trivial env."""

    num_batches: int = 1000

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        return TrivialDataset(ctx, self.num_batches), None


def step_overhead(
    steps: int,
    group_size: int,
    groups: int,
    max_tokens: int,
    device: str | None,
    off_policy: int = 0,
) -> list[float]:
    """Part 1: the real loop; prints median per-step times after two warm-up steps, and returns
    the runner's share of each measured step."""
    from cookbook.rl.train import Config, main

    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp) / "run"
        config = Config(
            env=TrivialBuilder(),
            log_dir=str(log_dir),
            device=device,
            group_size=group_size,
            groups_per_batch=groups,
            max_tokens=max_tokens,
            max_steps=steps,
            max_steps_off_policy=off_policy,
            eval_every=0,
            save_every=0,
            show_progress=False,
        )
        main(config)
        records = cast("list[dict[str, float]]", MetricsLog(log_dir / "metrics.jsonl").read())
    measured = records[2:] if len(records) > 4 else records
    keys = [
        "time/step",
        "time/backend",
        "time/runner",
        "time/sample_wait",
        "time/train",
        "time/data",
    ]
    # A skipped step (every advantage zero) logs no training times.
    med = {k: statistics.median(float(r.get(k, 0.0)) for r in measured) for k in keys}
    shares = [float(r["time/runner"]) / float(r["time/step"]) for r in measured]
    share = statistics.median(shares)
    skipped = sum(int(r.get("optim/skipped", 0)) for r in records)
    tokens = statistics.median(float(r.get("optim/tokens", 0.0)) for r in measured)
    print(
        f"\n== per-step time, {group_size} x {groups} groups, max_tokens {max_tokens}, "
        f"max_steps_off_policy {off_policy}, {len(measured)} steps measured (median) =="
    )
    print(
        f"{'step':>10} {'backend':>10} {'runner':>10} {'runner %':>9} {'sample':>10} {'train':>10}"
        f" {'datums':>10}"
    )
    print(
        f"{med['time/step'] * 1e3:>8.1f}ms {med['time/backend'] * 1e3:>8.1f}ms "
        f"{med['time/runner'] * 1e3:>8.1f}ms {share * 100:>8.1f}% "
        f"{med['time/sample_wait'] * 1e3:>8.1f}ms {med['time/train'] * 1e3:>8.1f}ms "
        f"{med['time/data'] * 1e3:>8.1f}ms"
    )
    print(f"tokens trained per step {tokens:.0f}; steps skipped (all advantages zero): {skipped}")
    verdict = "met" if share <= TARGET_SHARE else "NOT met"
    print(
        f"runner share {share * 100:.1f}% at {group_size} x {groups} "
        f"(load average {os.getloadavg()[0]:.1f}); target <= {TARGET_SHARE * 100:.0f}%: {verdict}"
    )
    return shares


async def _rollout_rate(
    sampling_client: SamplingClient,
    ctx: BuildContext,
    concurrent_groups: int,
    max_tokens: int,
    seed: int,
) -> tuple[float, float, float]:
    from cookbook.rl.rollouts import SamplingPolicy, do_batch_rollout

    dataset = TrivialDataset(ctx, 1)
    builders = list(dataset.get_batch(0))
    while len(builders) < concurrent_groups:
        builders += list(dataset.get_batch(len(builders)))
    policy = SamplingPolicy(sampling_client, max_tokens, 1.0)
    t0 = time.perf_counter()
    batch = await do_batch_rollout(builders[:concurrent_groups], policy, seed=seed, sampler_step=0)
    elapsed = time.perf_counter() - t0
    samples = sum(len(g.trajectories_G) for g in batch.groups_P)
    tokens = sum(len(t.transitions[0].ac_tokens) for g in batch.groups_P for t in g.trajectories_G)
    return elapsed, samples / elapsed, tokens / elapsed


def sampling_scaling(group_size: int, max_tokens: int, device: str | None, repeats: int) -> None:
    """Part 2: throughput against the number of concurrent groups."""
    from cookbook.backends import make_service_client

    service = make_service_client("local", device)
    trainer = service.create_lora_training_client("tiny", seed=0).result()
    sampler = trainer.save_weights_and_get_sampling_client().result()
    tokenizer = trainer.get_tokenizer()
    print(
        f"\n== sampling throughput, groups of {group_size}, max_tokens {max_tokens} "
        f"(median of {repeats}) =="
    )
    print(
        f"{'groups':>7} {'samples':>8} {'wall':>9} {'samples/s':>10} {'tokens/s':>10} {'speed-up':>9}"
    )
    base = None
    for n in (1, 2, 4, 8, 16, 32, 64):
        ctx = BuildContext.for_model("tiny", tokenizer, group_size=group_size)
        runs = [
            asyncio.run(_rollout_rate(sampler, ctx, n, max_tokens, seed=r)) for r in range(repeats)
        ]
        wall = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        tok = statistics.median(r[2] for r in runs)
        base = base or rate
        print(
            f"{n:>7} {n * group_size:>8} {wall * 1e3:>7.1f}ms {rate:>10.0f} {tok:>10.0f} {rate / base:>8.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument(
        "--groups",
        type=int,
        nargs="+",
        default=[16, 64],
        help="groups per batch (several: one run each)",
    )
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--off-policy", type=int, default=0, help="max_steps_off_policy of the loop (default 0)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument("--no-scaling", action="store_true", help="skip part 2")
    args = parser.parse_args()
    for groups in args.groups:
        step_overhead(
            args.steps, args.group_size, groups, args.max_tokens, args.device, args.off_policy
        )
    if not args.no_scaling:
        sampling_scaling(args.group_size, args.max_tokens, args.device, args.repeats)


if __name__ == "__main__":
    main()
