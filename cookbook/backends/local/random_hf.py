"""Random-weight Hugging Face models of real architectures, built offline into a directory.

For tests and benchmarks: a small byte-level BPE tokenizer trained on a few strings (with a chat
template) and a Llama or Qwen2 model with random weights, saved with `save_pretrained` so the
local backend loads them like any downloaded checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Arch = Literal["llama", "qwen2"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "what is 23+45? the answer is 68",
    "tic tac toe: x o x / o x o / x . .",
    "hello world, hello model, hello tokenizer",
]


def save_random_hf_model(
    directory: str | Path,
    arch: Arch = "llama",
    *,
    size: Literal["tiny", "0.5b"] = "tiny",
    vocab_size: int = 320,
    seed: int = 0,
) -> Path:
    """Write a tokenizer and a random model to `directory`; returns it.

    `tiny`: hidden 32, 2 layers (tests). `0.5b`: Qwen2-0.5B shape (hidden 896, 24 layers,
    14 heads / 2 KV heads, MLP 4864, vocab 151936, tied embeddings), for GPU benchmarks; the
    tokenizer stays small, only the embedding table has the full vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_TEXTS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))

    dims = _TINY if size == "tiny" else _QWEN2_05B
    vocab = len(tokenizer) if size == "tiny" else dims.vocab_size
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "llama":
            llama = LlamaConfig(
                vocab_size=vocab,
                hidden_size=dims.hidden,
                intermediate_size=dims.mlp,
                num_hidden_layers=dims.layers,
                num_attention_heads=dims.heads,
                num_key_value_heads=dims.kv_heads,
                max_position_embeddings=dims.context,
                eos_token_id=eos,
                pad_token_id=pad,
                bos_token_id=None,
                tie_word_embeddings=False,
            )
            model: torch.nn.Module = LlamaForCausalLM(llama)
        else:
            qwen = Qwen2Config(
                vocab_size=vocab,
                hidden_size=dims.hidden,
                intermediate_size=dims.mlp,
                num_hidden_layers=dims.layers,
                num_attention_heads=dims.heads,
                num_key_value_heads=dims.kv_heads,
                max_position_embeddings=dims.context,
                eos_token_id=eos,
                pad_token_id=pad,
                bos_token_id=None,
                tie_word_embeddings=True,
            )
            model = Qwen2ForCausalLM(qwen)
    if size != "tiny":
        model = model.to(torch.bfloat16)
    save = getattr(model, "save_pretrained")  # noqa: B009  # nn.Module typing hides it
    save(str(out))
    return out


@dataclass(frozen=True)
class _Dims:
    hidden: int
    mlp: int
    layers: int
    heads: int
    kv_heads: int
    context: int
    vocab_size: int


_TINY = _Dims(hidden=32, mlp=64, layers=2, heads=4, kv_heads=2, context=512, vocab_size=0)
_QWEN2_05B = _Dims(
    hidden=896, mlp=4864, layers=24, heads=14, kv_heads=2, context=32768, vocab_size=151936
)
