"""Every speed figure of issue 16 in one command, each with its ratio and target.

    .venv/bin/python benchmarks/run_all.py --quick     # a few minutes on 2 shared cores
    .venv/bin/python benchmarks/run_all.py             # more sizes and rounds

Runs, in one process:

- sampling (`sampling_figures`, `backend.py` on CPU): the sampler against a bare KV-cache loop
  (batch 1-128), the RL pattern's throughput against concurrency, the Hugging Face path against
  `generate`;
- training (`training_figures`): LoRA training against transformers+peft as `hf_training.py`
  measures it, and the tiny model's training against a bare loop (`backend.py`);
- the RL runner's own share of step time at 8 x 16 and 8 x 64 groups (`runner_figures`,
  `rl_overhead.py`'s part 1);
- `gpu.py` when CUDA is available (else one line says the GPU figures were not measured).

Then prints one summary table: figure, our rate, the contender's, the median of per-round
ratios with their range, the target and whether it is met, and the load average. Ratios come from
contenders measured side by side in ABBA rounds; on a shared machine expect them to move by
10-20% between runs, more under heavy load.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import QUICK, SECTIONS, Figure, Sizes, compare, load_avg, run_sections

SAMPLING = ("sampler", "concurrency", "hf-sampling")
TRAINING = ("hf-training", "training")
assert set(SAMPLING + TRAINING) == set(SECTIONS)


def sampling_figures(wanted: list[str], sizes: Sizes) -> list[Figure]:
    """The sampler, concurrency and Hugging Face sampling figures (issue 16 items 1 and 3)."""
    return run_sections([s for s in SAMPLING if s in wanted], sizes)


# --- the training side's figures ---------------------------------------------------------------


def training_figures(wanted: list[str], sizes: Sizes) -> list[Figure]:
    """LoRA training against transformers+peft (`hf_training.py`'s contenders, issue 16 item 3,
    training half) and the tiny model's training against a bare loop (`backend.py`)."""
    figures = [hf_training_figure(sizes.training_rounds)] if "hf-training" in wanted else []
    return figures + run_sections(
        [s for s in TRAINING if s in wanted and s != "hf-training"], sizes
    )


def hf_training_figure(rounds: int, batch: int = 8, seq: int = 256) -> Figure:
    """What `hf_training.py` measures: local LoRA r16 `forward_backward` + `optim_step` on the
    random Qwen2 against a transformers+peft loop, one step of `batch` x `seq` tokens per run, in
    ABBA rounds."""
    import hf_training
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print("\n== hf-training: random Qwen2 (384x4, vocab 32k), local LoRA vs peft (hf_training.py)")
    batches = [hf_training.random_tokens(batch, seq, 32000, seed) for seed in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        path = hf_training.save_cpu_benchmark_model(Path(tmp) / "qwen2-cpu")
        local, local_loss = hf_training.local_contender(path, batches, unembed=False)
        peft, peft_loss, _ = hf_training.peft_contender(path, batches, unembed=False)
        print(f"  first loss per token: local {local_loss:.5f}, peft {peft_loss:.5f}")
        return compare(
            "hf-training",
            f"{batch}x{seq} r{hf_training.LORA_RANK}",
            lambda: local(1),
            lambda: peft(1),
            work=batch * seq,
            unit="tok/s",
            contender="peft",
            rounds=rounds,
            target=hf_training.TARGET,
        )


def runner_figures(quick: bool) -> list[Figure]:
    """The RL runner's own share of step time at 8 x 16 and at 8 x 64 groups (issue 16 item 2,
    `rl_overhead.py`'s part 1)."""
    print("\n== runner: the RL loop's own share of step time (rl_overhead.py)")
    steps = 12 if quick else 20
    return [share for groups in (16, 64) if (share := runner_share(groups, 8, steps)) is not None]


def runner_share(groups: int, group_size: int, steps: int) -> Figure | None:
    """The runner's own share of RL step time from `rl_overhead.py`: the median over the
    measured steps, with their range (None if the loop cannot run)."""
    import rl_overhead

    before = load_avg()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            shares = rl_overhead.step_overhead(steps, group_size, groups, 3, "cpu")
    except Exception as exc:  # the runner is changing under other work: report, do not stop
        print(f"  runner share: could not run rl_overhead.py ({type(exc).__name__}: {exc})")
        return None
    figure = Figure(
        "runner",
        f"{group_size}x{groups} groups",
        "",
        ours=float("nan"),
        ratio=statistics.median(shares),
        ratio_range=(min(shares), max(shares)),
        target=rl_overhead.TARGET_SHARE,
        share=True,
        load=(before, load_avg()),
    )
    print(figure.line())
    return figure


def summary(figures: list[Figure]) -> None:
    """The one table the closing note quotes."""
    print("\n== summary (ratios: median of per-round ratios, range in brackets; cpu: the same")
    print("   from process CPU time, which does not count time spent descheduled)")
    print(
        f"{'section':<13} {'figure':<15} {'ours':>10} {'contender':>20} {'ratio':>22} "
        f"{'cpu ratio':>22} {'target':>9} {'status':<26} load"
    )
    for f in figures:
        ours = "" if f.ours != f.ours else f"{f.ours:,.0f}"  # NaN: no rate of its own
        theirs = f"{f.contender} {f.theirs:,.0f}" if f.theirs is not None else f.contender
        print(
            f"{f.section:<13} {f.label:<15} {ours:>10} {theirs:>20} {f.ratio_text():>22} "
            f"{f.ratio_text(cpu=True):>22} {f.target_text():>9} {f.status():<26} "
            f"{f.load[0]:.1f}->{f.load[1]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--only", nargs="+", choices=[*SECTIONS, "runner", "gpu"], default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else Sizes()
    wanted = args.only or [*SECTIONS, "runner", "gpu"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s) on CPU")
    figures = sampling_figures(wanted, sizes)
    figures += training_figures(wanted, sizes)
    if "runner" in wanted:
        figures += runner_figures(args.quick)
    if "gpu" in wanted:
        if torch.cuda.is_available():
            import gpu

            figures += gpu.run("cuda", tiny_shape=False, rounds=2)
        else:
            print("\n== gpu: not measured (no CUDA device here); run benchmarks/gpu.py on one")
    summary(figures)


if __name__ == "__main__":
    main()
