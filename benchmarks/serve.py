"""The same RL loop in-process vs through `cookbook serve` over localhost: the HTTP path's
overhead per step.

    .venv/bin/python benchmarks/serve.py                   # tiny model, 8 prompts x 4 samples
    .venv/bin/python benchmarks/serve.py --rounds 5 --steps 8 --groups 16

One RL step, written against the tinker SDK API and run unchanged on both: a sampling client on
the current weights, `groups` prompts x `group_size` samples of `max_tokens` tokens, rewards
(the share of even token ids, so they vary within a group), advantages centred per group,
`forward_backward(importance_sampling)` + `optim_step`. Contender A is the local backend in this
process; B is the real `tinker.ServiceClient` on a `cookbook serve` subprocess (1 torch thread
each). Rounds run A B B A; the overhead is the median over rounds of mean B step / mean A step
- 1 (target <= 15% at the tiny model's step size). The load average is printed: only ratios
from one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from tinker import types

from cookbook.backends.protocol import ServiceClient, TrainingClient

ADAM = types.AdamParams(learning_rate=1e-3)


async def rl_step(
    trainer: TrainingClient, prompts: list[list[int]], group_size: int, max_tokens: int
) -> None:
    sampler = await trainer.save_weights_and_get_sampling_client()
    params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0, stop=[])
    responses = await asyncio.gather(
        *(sampler.sample(types.ModelInput.from_ints(p), group_size, params) for p in prompts)
    )
    data: list[types.Datum] = []
    for prompt, response in zip(prompts, responses, strict=True):
        rewards_G = np.array([np.mean(np.array(s.tokens) % 2 == 0) for s in response.sequences])
        advantages_G = rewards_G - rewards_G.mean()
        for seq, adv in zip(response.sequences, advantages_G, strict=True):
            tokens = prompt + seq.tokens
            n_prompt = len(prompt) - 1
            data.append(
                types.Datum(
                    model_input=types.ModelInput.from_ints(tokens[:-1]),
                    loss_fn_inputs={
                        "target_tokens": np.asarray(tokens[1:], np.int64),
                        "logprobs": np.asarray(
                            [0.0] * n_prompt + list(seq.logprobs or []), np.float32
                        ),
                        "advantages": np.asarray(
                            [0.0] * n_prompt + [adv] * len(seq.tokens), np.float32
                        ),
                    },
                )
            )
    fwd = trainer.forward_backward(data, "importance_sampling")
    step = trainer.optim_step(ADAM)
    await fwd
    await step


def time_steps(trainer: TrainingClient, args: argparse.Namespace, steps: int) -> float:
    """Mean seconds per RL step over `steps` steps."""
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 256, args.prompt_tokens).tolist() for _ in range(args.groups)]

    async def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            await rl_step(trainer, prompts, args.group_size, args.max_tokens)
        return (time.perf_counter() - start) / steps

    return asyncio.run(run())


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cookbook", "serve", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(
        [*cmd, "--checkpoint-dir", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/api/v1/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("cookbook serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds")
    parser.add_argument("--steps", type=int, default=5, help="timed RL steps per contender run")
    parser.add_argument("--groups", type=int, default=8, help="prompts per step")
    parser.add_argument("--group-size", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=16, help="new tokens per sample")
    parser.add_argument("--prompt-tokens", type=int, default=24, help="tokens per prompt")
    parser.add_argument("--model", default="tiny", help="base model (tiny or an HF directory)")
    args = parser.parse_args()

    import tinker

    from cookbook.backends.local.service import LocalServiceClient

    torch.set_num_threads(1)
    os.environ.setdefault("TINKER_API_KEY", "tml-benchmark")
    os.environ.setdefault("TINKER_TELEMETRY", "0")
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "serve")
        try:
            local: ServiceClient = LocalServiceClient(device="cpu", base_dir=Path(tmp) / "local")
            remote: ServiceClient = tinker.ServiceClient(base_url=url)  # type: ignore[assignment]  # the SDK's class fits the protocol
            trainers = {
                "in-process": local.create_lora_training_client(args.model, rank=8).result(),
                "serve": remote.create_lora_training_client(args.model, rank=8).result(),
            }
            for trainer in trainers.values():
                time_steps(trainer, args, 2)  # warm-up
            load_before = os.getloadavg()
            ratios, per_step = [], {name: [] for name in trainers}
            for r in range(args.rounds):
                order = ["in-process", "serve", "serve", "in-process"]
                got: dict[str, list[float]] = {name: [] for name in trainers}
                for name in order:
                    got[name].append(time_steps(trainers[name], args, args.steps))
                mean = {name: statistics.mean(ts) for name, ts in got.items()}
                ratios.append(mean["serve"] / mean["in-process"])
                for name in trainers:
                    per_step[name].append(mean[name])
                print(
                    f"round {r + 1}: in-process {mean['in-process'] * 1e3:.1f} ms/step, "
                    f"serve {mean['serve'] * 1e3:.1f} ms/step, ratio {ratios[-1]:.3f}"
                )
            load_after = os.getloadavg()
        finally:
            proc.terminate()
            proc.wait(30)
    ratio = statistics.median(ratios)
    print(
        f"\nRL step ({args.groups} prompts x {args.group_size} samples x {args.max_tokens} "
        f"tokens, model {args.model}): in-process "
        f"{statistics.median(per_step['in-process']) * 1e3:.1f} ms, through cookbook serve "
        f"{statistics.median(per_step['serve']) * 1e3:.1f} ms"
    )
    print(
        f"HTTP overhead per step: {100 * (ratio - 1):+.1f}% (median of {len(ratios)} ABBA rounds; target <= +15%)"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
