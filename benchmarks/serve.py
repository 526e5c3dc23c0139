"""The same RL loop in-process vs through `cookbook serve` over localhost: the HTTP path's
overhead per step.

    .venv/bin/python benchmarks/serve.py                   # tiny model, 8 prompts x 4 samples
    .venv/bin/python benchmarks/serve.py --rounds 5 --steps 8 --groups 16
    .venv/bin/python benchmarks/serve.py --per-sample      # num_samples=1 calls, as `cookbook rl`

One RL step, written against the tinker SDK API and run unchanged on both: a sampling client on
the current weights, `groups` prompts x `group_size` samples of `max_tokens` tokens, rewards
(the share of even token ids, so they vary within a group), advantages centred per group,
`forward_backward(importance_sampling)` + `optim_step`. Contender A is the local backend in this
process; B is the real `tinker.ServiceClient` on a `cookbook serve` subprocess (1 torch thread
each). Rounds run A B B A; the overhead is the median over rounds of mean B step / mean A step
- 1 (target <= 15% at the tiny model's step size). The load average is printed: only ratios
from one run mean anything on a shared machine.

CPU seconds per step are printed beside wall time, split by thread (Linux: the server's from
/proc): on a loaded machine wall time follows CPU time, and the split says where the HTTP path's
extra work is. In this process: the thread running the loop (building the batch; in-process
also the backend's submission work) and every other thread (in-process: the backend's workers;
through the server: the SDK's event-loop thread and HTTP transport, i.e. the SDK client). In
the server: its event loop (HTTP, the wire format, submitting to the backend) and the backend's
workers. The SDK makes two HTTP requests per call (the call, then `retrieve_future`, which the
server holds until the result is ready: no client-side polling interval), so a step is
2 x (groups + 3) requests (2 x (groups x group_size + 3) with --per-sample); CPU per request is
printed for the SDK client and the server's event loop: the SDK client's part of the overhead is
out of the server's reach.
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
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import httpx
import numpy as np
import torch
from tinker import types

from cookbook.backends.protocol import ServiceClient, TrainingClient

ADAM = types.AdamParams(learning_rate=1e-3)


async def rl_step(
    trainer: TrainingClient,
    prompts: list[list[int]],
    group_size: int,
    max_tokens: int,
    per_sample: bool = False,
) -> None:
    """One RL step; `per_sample`: one `sample` call per sample (num_samples=1, as the cookbook's
    own RL loop samples each env), not one per prompt."""
    sampler = await trainer.save_weights_and_get_sampling_client()
    params = types.SamplingParams(max_tokens=max_tokens, temperature=1.0, stop=[])
    calls, n = (group_size, 1) if per_sample else (1, group_size)
    responses = await asyncio.gather(
        *(sampler.sample(types.ModelInput.from_ints(p), n, params) for p in prompts for _ in range(calls))
    )  # fmt: skip
    data: list[types.Datum] = []
    for g, prompt in enumerate(prompts):
        sequences_G = [s for r in responses[g * calls : (g + 1) * calls] for s in r.sequences]
        rewards_G = np.array([np.mean(np.array(s.tokens) % 2 == 0) for s in sequences_G])
        advantages_G = rewards_G - rewards_G.mean()
        for seq, adv in zip(sequences_G, advantages_G, strict=True):
            tokens = prompt + seq.tokens
            n_prompt = len(prompt) - 1
            data.append(
                types.Datum(
                    model_input=types.ModelInput.from_ints(tokens[:-1]),
                    loss_fn_inputs={
                        "target_tokens": _tensor(np.asarray(tokens[1:], np.int64)),
                        "logprobs": _tensor(
                            np.asarray([0.0] * n_prompt + list(seq.logprobs or []), np.float32)
                        ),
                        "advantages": _tensor(
                            np.asarray([0.0] * n_prompt + [adv] * len(seq.tokens), np.float32)
                        ),
                    },
                )
            )
    fwd = trainer.forward_backward(data, "importance_sampling")
    step = trainer.optim_step(ADAM)
    await fwd
    await step


def _tensor(array: np.ndarray) -> types.TensorData:
    return types.TensorData.from_numpy(array)


@dataclass
class Timing:
    """Per-step means of one contender's run (CPU seconds by thread; server 0 in-process)."""

    wall_s: float
    loop_cpu_s: float
    """This process's thread running the RL loop."""
    other_cpu_s: float
    """This process's other threads: the local backend's workers, or the SDK client's."""
    server_loop_cpu_s: float
    """The server's event loop thread (HTTP, wire format, submissions)."""
    server_other_cpu_s: float
    """The server's other threads: the backend's workers."""

    @property
    def client_cpu_s(self) -> float:
        return self.loop_cpu_s + self.other_cpu_s

    @property
    def server_cpu_s(self) -> float:
        return self.server_loop_cpu_s + self.server_other_cpu_s

    @property
    def cpu_s(self) -> float:
        return self.client_cpu_s + self.server_cpu_s


def time_steps(
    trainer: TrainingClient, args: argparse.Namespace, steps: int, server_pid: int | None = None
) -> Timing:
    """Mean wall and CPU seconds per RL step over `steps` steps (CPU of this process, and of the
    server process when there is one)."""
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 256, args.prompt_tokens).tolist() for _ in range(args.groups)]

    async def run() -> None:
        for _ in range(steps):
            await rl_step(trainer, prompts, args.group_size, args.max_tokens, args.per_sample)

    server_before = process_cpu_s(server_pid), process_cpu_s(server_pid, main_thread=True)
    cpu_before, loop_before = time.process_time(), time.thread_time()
    start = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - start
    cpu, loop = time.process_time() - cpu_before, time.thread_time() - loop_before
    server = process_cpu_s(server_pid) - server_before[0]
    server_loop = process_cpu_s(server_pid, main_thread=True) - server_before[1]
    return Timing(
        wall / steps, loop / steps, (cpu - loop) / steps, server_loop / steps,
        (server - server_loop) / steps,
    )  # fmt: skip


def process_cpu_s(pid: int | None, main_thread: bool = False) -> float:
    """User + system CPU seconds of process `pid` so far, or of its main thread (the event
    loop of `cookbook serve`); 0 when None or not on Linux."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat")
    if pid is None or not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument(
        "--per-sample",
        action="store_true",
        help="one sample call per sample (num_samples=1), as the cookbook's RL loop samples",
    )
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
            pids = {"in-process": None, "serve": proc.pid}
            for name, trainer in trainers.items():
                time_steps(trainer, args, 2, pids[name])  # warm-up
            load_before = os.getloadavg()
            ratios, cpu_ratios = [], []
            per_step: dict[str, list[Timing]] = {name: [] for name in trainers}
            for r in range(args.rounds):
                got: dict[str, list[Timing]] = {name: [] for name in trainers}
                for name in ["in-process", "serve", "serve", "in-process"]:
                    got[name].append(time_steps(trainers[name], args, args.steps, pids[name]))
                mean = {name: _mean(ts) for name, ts in got.items()}
                ratios.append(mean["serve"].wall_s / mean["in-process"].wall_s)
                cpu_ratios.append(mean["serve"].cpu_s / mean["in-process"].cpu_s)
                for name in trainers:
                    per_step[name].append(mean[name])
                print(
                    f"round {r + 1}: in-process {_ms(mean['in-process'].wall_s)} ms/step "
                    f"({_ms(mean['in-process'].cpu_s)} ms CPU), serve "
                    f"{_ms(mean['serve'].wall_s)} ms/step ({_ms(mean['serve'].cpu_s)} ms CPU: "
                    f"client {_ms(mean['serve'].client_cpu_s)}, server "
                    f"{_ms(mean['serve'].server_cpu_s)}), ratio {ratios[-1]:.3f}",
                    flush=True,
                )
            load_after = os.getloadavg()
        finally:
            proc.terminate()
            proc.wait(30)
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    calls = args.groups * (args.group_size if args.per_sample else 1)
    local_t, served_t = _median(per_step["in-process"]), _median(per_step["serve"])
    print(
        f"\nRL step ({args.groups} prompts x {args.group_size} samples x {args.max_tokens} "
        f"tokens, {calls} sample calls, model {args.model}), per step:\n"
        f"  in-process: {_ms(local_t.wall_s)} ms wall, {_ms(local_t.cpu_s)} ms CPU (RL loop's "
        f"thread {_ms(local_t.loop_cpu_s)}, backend threads {_ms(local_t.other_cpu_s)})\n"
        f"  through cookbook serve: {_ms(served_t.wall_s)} ms wall, {_ms(served_t.cpu_s)} ms CPU "
        f"(RL loop's thread {_ms(served_t.loop_cpu_s)}, SDK client threads "
        f"{_ms(served_t.other_cpu_s)}, server event loop {_ms(served_t.server_loop_cpu_s)}, server "
        f"backend threads {_ms(served_t.server_other_cpu_s)})"
    )
    requests = 2 * (calls + 3)  # save_weights_for_sampler, samples, fwd/bwd, optim step
    print(
        f"  {requests} HTTP requests per step: SDK client threads "
        f"{_ms(served_t.other_cpu_s / requests)} ms CPU per request, server event loop "
        f"{_ms(served_t.server_loop_cpu_s / requests)} ms"
    )
    print(
        f"HTTP overhead per step: {100 * (ratio - 1):+.1f}% wall, {100 * (cpu_ratio - 1):+.1f}% "
        f"CPU (medians of {len(ratios)} ABBA rounds; target <= +15%)"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")


def _mean(timings: list[Timing]) -> Timing:
    return _combine(timings, statistics.mean)


def _median(timings: list[Timing]) -> Timing:
    return _combine(timings, statistics.median)


def _combine(timings: list[Timing], average: Callable[[list[float]], float]) -> Timing:
    """`average` of each field over `timings`."""
    names = [f.name for f in fields(Timing)]
    return Timing(*(average([getattr(t, name) for t in timings]) for name in names))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


if __name__ == "__main__":
    main()
