"""Small Hugging Face tokenizers with chat templates, built offline (no download)."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen-style ChatML: `<|im_end|>` closes every turn, and a newline follows it."""

LLAMA3_LIKE = (
    "<|begin_of_text|>{% if messages[0]['role'] != 'system' %}"
    "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>{% endif %}"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
"""Llama-3 style: a default system prompt is injected, turns end with `<|eot_id|>`, eos differs."""

NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>assistant\n{% endif %}"
)
"""Gemma style: refuses system turns."""

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<start_of_turn>",
    "<end_of_turn>",
]

CORPUS = [
    "hello world, what is 2+2? it is 4. reverse cat: tac. You are helpful.",
    "user assistant system the quick brown fox jumps over the lazy dog",
] * 4


def make_hf_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    """A byte-level BPE (a few hundred tokens) trained in memory, with `chat_template`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", chat_template=chat_template
    )


@pytest.fixture(scope="session")
def chatml_tokenizer() -> PreTrainedTokenizerFast:
    return make_hf_tokenizer(CHATML)


@pytest.fixture(scope="session")
def llama_tokenizer() -> PreTrainedTokenizerFast:
    return make_hf_tokenizer(LLAMA3_LIKE)


@pytest.fixture(scope="session")
def no_system_tokenizer() -> PreTrainedTokenizerFast:
    return make_hf_tokenizer(NO_SYSTEM)


@pytest.fixture(scope="session")
def plain_tokenizer() -> PreTrainedTokenizerFast:
    return make_hf_tokenizer(None)
