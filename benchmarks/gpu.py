"""The local backend on a GPU: a ~0.5B model of a real architecture beside transformers.

    .venv/bin/python benchmarks/gpu.py                         # CUDA, Qwen2-0.5B shape, < 8 min
    .venv/bin/python benchmarks/gpu.py --device cpu --tiny-shape   # smoke run (the test suite)

A random-weight Qwen2 of the Qwen2-0.5B shape (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP
4864, vocab 151936, tied embeddings, bf16 on CUDA) is written to a temporary directory (nothing
is downloaded) and measured in one process, contenders in ABBA rounds (`backend.py`):

- LoRA r32 on every linear layer, `forward_backward` + `optim_step` on 16 x 1024 tokens, against
  transformers + peft on the same weights (`model(ids, labels=ids).loss.backward()` + AdamW).
  Issue 16 asks for >= 1.5x; the training path is not worked on yet.
- Sampling 128 new tokens after prompts of 128 at batch 64 and 256 (concurrent requests, CUDA
  graphs for the decode step) against `generate(do_sample=True)`. Target >= 10x.

Anchors measured on an H200 with transformers 5.x: peft LoRA r32 51k tok/s; `generate` 619 new
tok/s at batch 64 and 1,950 at 256; vLLM reports ~18k tok/s for a 0.5B model on an A800.
`--tiny-shape` swaps in the test suite's tiny Qwen2 and small batches, to check the script runs.

Measured here, 2026-11-30, one H200 (torch 2.11.0+cu130, transformers 5.17.0, `--rounds 1`, 51 s):
LoRA training ours 40.4k tok/s against peft 45.5k (0.89x); sampling ours 16.9k new tok/s against
`generate` 3.8k at batch 64 (4.41x) and 37.4k against 9.8k at 256 (3.81x). `generate` ran 6x and
5x faster than the anchors above, so the targets' ratios are harder than when they were set. The
first run on a GPU found that every local LoRA step on a bf16 model had failed (float32 adapters
against bf16 hidden states, `head.py`) and the benchmark had timed the failures; it now checks
each result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import Figure, hf_sampling_vs_generate, hf_training_vs_peft

from cookbook.backends.local.random_hf import save_random_hf_model
from cookbook.backends.local.service import LocalServiceClient

ANCHORS = {
    "training": "H200 anchor: peft LoRA r32 51k tok/s (16 x 1024)",
    "sampling": "H200 anchors: generate 619 tok/s at batch 64, 1,950 at 256; vLLM ~18k (A800)",
}


def run(device: str, tiny_shape: bool, rounds: int) -> list[Figure]:
    """Write the model, run both sections, return the figures (also printed)."""
    import transformers

    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {name}")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        size = "tiny" if tiny_shape else "0.5b"
        path = save_random_hf_model(Path(tmp) / "qwen2", "qwen2", size=size)
        print(f"random Qwen2 ({size} shape) written in {time.perf_counter() - start:.0f} s")
        service = LocalServiceClient(device=device, base_dir=Path(tmp) / "ckpt")

        print(f"\n== LoRA training, local vs transformers+peft ({ANCHORS['training']})")
        figures += hf_training_vs_peft(
            service,
            path,
            rounds,
            steps=1 if tiny_shape else 3,
            rank=32,
            shape=(2, 16) if tiny_shape else (16, 1024),
            target=1.5,
            section="gpu-training",
        )

        print(f"\n== sampling, local vs generate ({ANCHORS['sampling']})")
        figures += hf_sampling_vs_generate(
            service,
            path,
            [2, 4] if tiny_shape else [64, 256],
            rounds,
            new_tokens=8 if tiny_shape else 128,
            prompt_len=8 if tiny_shape else 128,
            target=lambda batch: 10.0,
            section="gpu-sampling",
        )
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny-shape", action="store_true", help="a toy model: smoke run")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds per comparison")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: CUDA is not available here; run with --device cpu --tiny-shape")
    run(args.device, args.tiny_shape, args.rounds)


if __name__ == "__main__":
    main()
