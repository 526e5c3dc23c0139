"""LoRA training on the Hugging Face path: the local backend beside a plain transformers+peft loop.

    .venv/bin/python benchmarks/hf_training.py [--rounds 3] [--steps 1] [--batch 8] [--seq 256]

The CPU benchmark model: a random Qwen2 (hidden 384, 4 layers, MLP 1024, 6 heads / 2 KV heads,
vocab 32000, tied embeddings, fp32), LoRA rank 16 (alpha 32) on every attention and MLP linear
layer (`--unembed` adds the output head), the same trainable parameters on both sides.

- local: `forward_backward(data, "cross_entropy")` + `optim_step` of the local training client
  (datums in, tinker types out; packed rows, target logprobs through a chunked output head).
- peft: `get_peft_model` on the same checkpoint, `model(input_ids, labels=...).loss.backward()`
  and AdamW, on pre-built tensors.

Both train on the same random batches of `--batch` rows of `--seq` predicted tokens. Each round
times `--steps` steps of each contender in the order A B B A (a neighbour's load or a warming
cache biases both alike); the ratio is the median of the per-round ratios of tokens/s. The
first losses of both are printed: equal losses show they do the same work. Target: local >= 1.15x
peft. No assertion is made on the timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tinker import types

ADAM = types.AdamParams(learning_rate=1e-4)
TARGET = 1.15
LORA_RANK = 16
LORA_ALPHA = 32
LAYERS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def save_cpu_benchmark_model(directory: Path) -> Path:
    """The random Qwen2 above, with a small tokenizer (only the embedding has 32k rows)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cookbook.backends.local.random_hf import save_random_hf_model

    save_random_hf_model(directory, "qwen2", size="tiny")  # the tokenizer; the model is replaced
    config = Qwen2Config(
        vocab_size=32000,
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=2,
        pad_token_id=1,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(str(directory))
    return directory


def random_tokens(batch: int, seq: int, vocab: int, seed: int) -> np.ndarray:
    """`batch` rows of `seq + 1` tokens (`seq` predictions each)."""
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, seq + 1))


def to_datums(tokens: np.ndarray) -> list[types.Datum]:
    seq = tokens.shape[1] - 1
    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(row[:-1].tolist()),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(row[1:].astype(np.int64)),
                "weights": types.TensorData.from_numpy(np.ones(seq, dtype=np.float32)),
            },
        )
        for row in tokens
    ]


def local_contender(
    path: Path, batches: list[np.ndarray], unembed: bool
) -> tuple[Callable[[int], None], float]:
    """A function running n local steps, and the mean loss per token of the first batch."""
    from cookbook.backends.local.service import LocalServiceClient

    service = LocalServiceClient(device="cpu", base_dir=path / "ckpt")
    trainer = service.create_lora_training_client(
        str(path), rank=LORA_RANK, seed=0, train_unembed=unembed
    )
    data = [to_datums(b) for b in batches]
    n_tokens = batches[0].shape[0] * (batches[0].shape[1] - 1)
    first = trainer.forward(data[0], "cross_entropy").result()
    first_loss = first.metrics["loss:sum"] / n_tokens

    def run(steps: int) -> None:
        for i in range(steps):
            fwd_bwd = trainer.forward_backward(data[i % len(data)], "cross_entropy")
            optim = trainer.optim_step(ADAM)
        fwd_bwd.result()
        optim.result()

    return run, first_loss


def peft_contender(
    path: Path, batches: list[np.ndarray], unembed: bool
) -> tuple[Callable[[int], None], float, int]:
    """A function running n transformers+peft steps, the first batch's mean loss per token, and
    the number of trainable parameters."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM.from_pretrained(str(path), torch_dtype=torch.float32)
    targets = LAYERS + (["lm_head"] if unembed else [])
    config = LoraConfig(
        r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=targets, bias="none"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)
    tensors = [torch.from_numpy(b) for b in batches]
    with torch.no_grad():
        first_loss = float(peft_model(input_ids=tensors[0], labels=tensors[0]).loss)

    def run(steps: int) -> None:
        for i in range(steps):
            ids = tensors[i % len(tensors)]
            loss = peft_model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return run, first_loss, sum(p.numel() for p in params)


def timed(fn: Callable[[int], None], steps: int) -> float:
    start = time.perf_counter()
    fn(steps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1, help="steps per timed run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--unembed", action="store_true", help="LoRA on the output head too")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    batches = [random_tokens(args.batch, args.seq, 32000, seed) for seed in range(4)]
    n_tokens = args.steps * args.batch * args.seq
    with tempfile.TemporaryDirectory() as tmp:
        path = save_cpu_benchmark_model(Path(tmp) / "qwen2-cpu")
        local, local_loss = local_contender(path, batches, args.unembed)
        peft, peft_loss, trainable = peft_contender(path, batches, args.unembed)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; random Qwen2 384x4, "
            f"vocab 32000; LoRA r{LORA_RANK} on attention+MLP{' + head' if args.unembed else ''}"
            f" ({trainable:,} trainable parameters); {args.batch} x {args.seq} tokens per step"
        )
        print(f"first loss per token: local {local_loss:.5f}, peft {peft_loss:.5f}")
        local(1)  # warm-up
        peft(1)
        ratios = []
        print(f"{'round':>5} {'local tok/s':>12} {'peft tok/s':>12} {'ratio':>7} {'load':>6}")
        for r in range(args.rounds):
            t_local = timed(local, args.steps)
            t_peft = timed(peft, args.steps)
            t_peft += timed(peft, args.steps)
            t_local += timed(local, args.steps)
            ratio = t_peft / t_local
            ratios.append(ratio)
            print(
                f"{r:>5} {2 * n_tokens / t_local:>12,.0f} {2 * n_tokens / t_peft:>12,.0f} "
                f"{ratio:>6.2f}x {os.getloadavg()[0]:>6.1f}"
            )
    median = statistics.median(ratios)
    verdict = "met" if median >= TARGET else "NOT met"
    print(
        f"LoRA training local/peft: {median:.2f}x (median of {args.rounds} ABBA rounds; "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x); target >= {TARGET}x: {verdict}"
    )


if __name__ == "__main__":
    main()
