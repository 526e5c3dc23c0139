"""The engine on Hugging Face models (random tiny Llama, Qwen2, and a Qwen2 with sliding-window
layers): the same tokens as a plain no-cache loop, rows joining a running batch included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_sampler_engine import _check, _run_in_waves

from cookbook.backends.local.generation import DecodeEngine, GenRow, StopStrings
from cookbook.backends.local.hf_model import HFSlotDecoder
from cookbook.backends.local.models import LocalModel
from cookbook.backends.local.service import LocalServiceClient


def _rows(prompts: list[list[int]], eos: int) -> list[GenRow]:
    kinds: list[dict[str, object]] = [
        {"temperature": 1.0, "top_k": 0, "top_p": 1.0},
        {"temperature": 0.0, "top_k": 0, "top_p": 1.0},
        {"temperature": 0.8, "top_k": 7, "top_p": 0.9},
    ]
    return [
        GenRow(
            p,
            4 + 3 * (i % 4),
            stop_ids=frozenset({eos}),
            stop_strings=(),
            seed=i,
            sample_index=i % 2,
            **kinds[i % 3],  # type: ignore[arg-type]  # the sampling fields
        )
        for i, p in enumerate(prompts)
    ]


def _model(path: Path) -> LocalModel:
    sampler = LocalServiceClient(device="cpu").create_sampling_client(base_model=str(path))
    return sampler.model


def _sliding_qwen2(tmp_path: Path, tokenizer_dir: Path) -> Path:
    """A tiny Qwen2 whose second layer attends to the last 3 positions only."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = tmp_path / "qwen2-sliding"
    shutil.copytree(tokenizer_dir, out)
    config = Qwen2Config.from_pretrained(str(tokenizer_dir))
    config.use_sliding_window = True
    config.sliding_window = 3
    config.max_window_layers = 1
    config.layer_types = ["full_attention", "sliding_attention"]
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(str(out))
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen2-sliding"])
def test_hf_engine_matches_a_plain_loop(
    arch: str, hf_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    path = (
        _sliding_qwen2(tmp_path, hf_model_dirs["qwen2"])
        if arch == "qwen2-sliding"
        else hf_model_dirs[arch]
    )
    model = _model(path)
    # Llama and Qwen2 decode layer by layer; sliding windows take the model's own forward.
    assert HFSlotDecoder(model.module, model.vocab_size).layer_by_layer == (arch != "qwen2-sliding")
    tok = model.tokenizer
    texts = ["hello", "the quick brown fox jumps over", "what is 23+45? the answer", "tic"]
    prompts = [tok.encode(t) for t in texts]
    rows = _rows(prompts * 2, tok.eos_token_id)
    engine = DecodeEngine(model, tok.decode, max_rows=4)
    out = _run_in_waves(engine, [(0, rows[:4]), (2, rows[4:])])
    _check(model, rows[:4], out[0])
    _check(model, rows[4:], out[2])


def test_stop_strings_with_a_bpe_tokenizer(hf_model_dirs: dict[str, Path]) -> None:
    """Incremental checks find a stop string at the same token as decoding the whole text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_model_dirs["llama"]), local_files_only=True)
    text = "the quick brown fox jumps over the lazy dog, hello world"
    tokens = tok.encode(text, add_special_tokens=False)
    for stop in ("fox ju", "o", "dog, h", "lazy", "world", "absent"):
        watch = StopStrings((stop,), tok.decode)
        seen = next((i for i, t in enumerate(tokens) if watch.push(t)), None)
        whole = next((i for i in range(len(tokens)) if stop in tok.decode(tokens[: i + 1])), None)
        assert seen == whole, stop
