"""Renderers: chat messages to tokens and per-token weights, shared by RL and SFT."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook.tokenizers import Tokenizer


def get_renderer(model_name: str, tokenizer: Tokenizer) -> Renderer:
    """The chat format for `model_name`: the compact tiny format for the built-in model (its
    `ByteTokenizer`, or the Hugging Face copy the tinker SDK loads from `cookbook serve`), the
    tokenizer's own chat template for Hugging Face models."""
    from cookbook.tokenizers import as_byte_tokenizer

    byte_tokenizer = as_byte_tokenizer(tokenizer)
    if byte_tokenizer is not None:
        from cookbook.renderers.tiny import TinyRenderer

        return TinyRenderer(byte_tokenizer)
    from cookbook.renderers.hf import HFChatTemplateRenderer

    return HFChatTemplateRenderer(tokenizer)
