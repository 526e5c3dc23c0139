"""Throughput of the local backend beside bare PyTorch loops on the same model.

    .venv/bin/python benchmarks/backend.py                      # CPU: tiny models
    .venv/bin/python benchmarks/backend.py --device cuda        # also a ~0.5B Qwen2-shaped model
    .venv/bin/python benchmarks/backend.py --hf tiny            # the HF path on a tiny model

Printed side by side, in one run:

1. `forward_backward` + `optim_step` tokens/s: the local training client (datums in, tinker
   types out) against a bare loop (pre-built tensors, forward, masked cross-entropy, backward,
   AdamW) on an identical copy of the model, same batches. Target: local >= 0.85x bare.
2. Sampling 64 new tokens per row: the local sampling client (concurrent requests, KV cache)
   against a bare KV-cached loop and a bare loop that recomputes the whole prefix for every
   new token. Target: local >= 5x recompute.
3. Local sampling tokens/s at several batch sizes.
4. With `--hf` (default `0.5b` on CUDA): a random model of Qwen2-0.5B shape in bf16 with LoRA
   rank 32: `forward_backward` tokens/s on 16 x 1024 tokens, and sampling tokens/s at batch 64
   and 256.

Timings are medians of `--repeats` runs after a warm-up; no assertion is made on them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tinker import types

from cookbook.backends.local.generation import sample_tokens
from cookbook.backends.local.models import LocalModel
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient

ADAM = types.AdamParams(learning_rate=1e-3)


def median_times(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each function over `repeats` runs after one warm-up run. The
    functions take turns, so a busy neighbour on a shared machine slows all of them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (timings must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


# --- training ---------------------------------------------------------------------------------


def make_batch(
    rng: np.random.Generator, batch: int, seq: int, vocab: int
) -> tuple[list[types.Datum], torch.Tensor, torch.Tensor]:
    """`batch` random sequences of `seq + 1` tokens: as datums, and as input/target tensors."""
    tokens = rng.integers(0, vocab, size=(batch, seq + 1))
    data = [
        types.Datum(
            model_input=types.ModelInput.from_ints(row[:-1].tolist()),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(row[1:].astype(np.int64)),
                "weights": types.TensorData.from_numpy(np.ones(seq, dtype=np.float32)),
            },
        )
        for row in tokens
    ]
    as_tensor = torch.from_numpy(tokens)
    return data, as_tensor[:, :-1].contiguous(), as_tensor[:, 1:].contiguous()


def bare_logits(model: LocalModel, tokens_B_T: torch.Tensor) -> torch.Tensor:
    """The module's own forward, without the local backend's wrapper."""
    if model.arch == "tiny-gpt":
        logits: torch.Tensor = model.module(tokens_B_T)
        return logits
    out = model.module(input_ids=tokens_B_T, use_cache=False)
    hf_logits: torch.Tensor = out.logits
    return hf_logits


def bench_training(
    trainer: LocalTrainingClient,
    bare_model: LocalModel,
    batch: int,
    seq: int,
    steps: int,
    repeats: int,
) -> tuple[float, float]:
    """Tokens/s of (local client, bare loop) over `steps` steps of `batch` x `seq` tokens."""
    device = bare_model.device
    rng = np.random.default_rng(0)
    batches = [make_batch(rng, batch, seq, min(bare_model.vocab_size, 256)) for _ in range(4)]

    def local() -> None:
        for i in range(steps):
            fb = trainer.forward_backward(batches[i % 4][0], "cross_entropy")
            step = trainer.optim_step(ADAM)
        fb.result()
        step.result()
        sync(device)

    params = [p for _, p in bare_model.trainable_named_parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)
    gpu_batches = [(x.to(device), y.to(device)) for _, x, y in batches]

    def bare() -> None:
        for i in range(steps):
            x, y = gpu_batches[i % 4]
            logits = bare_logits(bare_model, x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        float(loss.detach())
        sync(device)

    n_tokens = steps * batch * seq
    t = median_times({"local": local, "bare": bare}, repeats)
    return n_tokens / t["local"], n_tokens / t["bare"]


# --- sampling ---------------------------------------------------------------------------------


def prompts_for(rng: np.random.Generator, batch: int, length: int, vocab: int) -> list[list[int]]:
    """`batch` random prompts of `length` tokens."""
    return [rng.integers(0, vocab, size=length).tolist() for _ in range(batch)]


def local_sampling(
    sampler: LocalSamplingClient, prompts: list[list[int]], new_tokens: int, device: torch.device
) -> None:
    """All prompts as concurrent requests (as an RL runner sends them), `new_tokens` each."""

    async def run() -> None:
        params = types.SamplingParams(max_tokens=new_tokens, temperature=1.0, stop=[])
        futures = [
            sampler.sample(types.ModelInput.from_ints(p), 1, params.model_copy(update={"seed": i}))
            for i, p in enumerate(prompts)
        ]
        responses = await asyncio.gather(*futures)
        assert all(len(r.sequences[0].tokens) == new_tokens for r in responses)

    asyncio.run(run())
    sync(device)


@torch.inference_mode()
def bare_cached_sampling(model: LocalModel, prompts: list[list[int]], new_tokens: int) -> None:
    """A plain KV-cached loop (equal-length prompts, no padding, no stops, multinomial)."""
    device = model.device
    tokens = torch.tensor(prompts, device=device)
    b, p = tokens.shape
    cache = model.new_cache(b, p + new_tokens)
    key_mask = torch.ones(b, p + new_tokens, dtype=torch.bool, device=device)
    positions = torch.arange(p, device=device).expand(b, p)
    logits = model.logits(tokens, positions, key_mask, cache, last_only=True)[:, -1]
    for step in range(new_tokens):
        nxt = torch.multinomial(torch.softmax(logits.float(), -1), 1)
        pos = torch.full((b, 1), p + step, device=device)
        logits = model.logits(nxt, pos, key_mask, cache, last_only=True)[:, -1]
    sync(device)


@torch.inference_mode()
def bare_recompute_sampling(model: LocalModel, prompts: list[list[int]], new_tokens: int) -> None:
    """No cache: every new token runs the model over the whole sequence so far."""
    device = model.device
    seqs = torch.tensor(prompts, device=device)
    b = seqs.shape[0]
    ones = torch.ones(b, device=device)
    for step in range(new_tokens):
        logits = bare_logits(model, seqs)[:, -1].float()
        u = torch.rand(b, device=device)
        no_k = torch.zeros_like(ones).long()
        nxt = sample_tokens(logits, ones, no_k, ones, u, filtered=False, any_greedy=False)
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        del step
    sync(device)


def bench_sampling(
    sampler: LocalSamplingClient,
    batch: int,
    prompt_len: int,
    new_tokens: int,
    repeats: int,
    baselines: tuple[str, ...] = (),
) -> dict[str, float]:
    """New tokens/s of the local sampler, and of the bare loops named in `baselines`
    (`cached`, `recompute`) on the same weights."""
    model = sampler.model
    rng = np.random.default_rng(batch)
    prompts = prompts_for(rng, batch, prompt_len, min(model.vocab_size, 256))
    n = batch * new_tokens
    device = model.device
    runs: dict[str, Callable[[], None]] = {
        "local": lambda: local_sampling(sampler, prompts, new_tokens, device),
        "cached": lambda: bare_cached_sampling(model, prompts, new_tokens),
        "recompute": lambda: bare_recompute_sampling(model, prompts, new_tokens),
    }
    t = median_times({k: runs[k] for k in ("local", *baselines)}, repeats)
    return {k: n / seconds for k, seconds in t.items()}


# --- report -----------------------------------------------------------------------------------


def report_model(
    service: LocalServiceClient,
    base_model: str,
    *,
    train_shape: tuple[int, int],
    train_steps: int,
    sample_shape: tuple[int, int, int],
    batch_sizes: list[int],
    repeats: int,
    baselines: tuple[str, ...] = ("cached", "recompute"),
    rank: int = 32,
) -> None:
    """Print the training and sampling comparisons for one model."""
    trainer = service.create_lora_training_client(base_model, rank=rank, seed=0)
    bare = service.create_lora_training_client(base_model, rank=rank, seed=0).model
    batch, seq = train_shape
    local_tps, bare_tps = bench_training(trainer, bare, batch, seq, train_steps, repeats)
    print(f"\n== {base_model} on {service.device} ==")
    print(f"forward_backward+optim_step, {batch} x {seq} tokens, {train_steps} steps:")
    print(
        f"  local {local_tps:12,.0f} tok/s | bare loop {bare_tps:12,.0f} tok/s "
        f"| local/bare {local_tps / bare_tps:.2f}x (target >= 0.85x)"
    )

    sampler = trainer.save_weights_and_get_sampling_client()
    s_batch, s_prompt, s_new = sample_shape
    res = bench_sampling(sampler, s_batch, s_prompt, s_new, repeats, baselines)
    print(
        f"sampling {s_new} new tokens, batch {s_batch}, prompts of {s_prompt} tokens (new tok/s):"
    )
    line = f"  local {res['local']:12,.0f}"
    for name in baselines:
        line += f" | bare {name} {res[name]:12,.0f} (local/{name} {res['local'] / res[name]:.2f}x)"
    print(line + ("   target: local/recompute >= 5x" if "recompute" in baselines else ""))
    print(f"local sampling tok/s by batch size ({s_new} new tokens, prompts of {s_prompt}):")
    cells = []
    for b in batch_sizes:
        tps = bench_sampling(sampler, b, s_prompt, s_new, repeats)["local"]
        cells.append(f"B={b}: {tps:,.0f}")
    print("  " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--hf",
        choices=["none", "tiny", "0.5b"],
        default=None,
        help="also benchmark a random HF model (default: 0.5b on cuda)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hf = args.hf or ("0.5b" if args.device.startswith("cuda") else "none")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")

    with tempfile.TemporaryDirectory() as tmp:
        service = LocalServiceClient(device=args.device, base_dir=Path(tmp) / "ckpt")
        if not args.device.startswith("cuda"):
            for name in ("tiny", "tiny-128x4"):
                report_model(
                    service,
                    name,
                    train_shape=(256, 27),
                    train_steps=10,
                    sample_shape=(64, 24, 64),
                    batch_sizes=[1, 16, 64, 256],
                    repeats=args.repeats,
                )
        if hf != "none":
            from cookbook.backends.local.random_hf import save_random_hf_model

            big = hf == "0.5b"
            path = save_random_hf_model(
                Path(tmp) / "qwen2", "qwen2", size="0.5b" if big else "tiny"
            )
            report_model(
                service,
                str(path),
                train_shape=(16, 1024) if big else (16, 128),
                train_steps=5 if big else 3,
                sample_shape=(64, 128, 128) if big else (16, 16, 32),
                batch_sizes=[64, 256] if big else [16],
                repeats=args.repeats,
                # Recomputing 128 prefixes of 151k-vocab logits per token is minutes of GPU time.
                baselines=("cached",) if big else ("cached", "recompute"),
            )


if __name__ == "__main__":
    main()
