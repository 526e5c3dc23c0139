"""Renderers: chat messages to tokens and per-token weights, shared by RL and SFT."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook.tokenizers import Tokenizer


def get_renderer(model_name: str, tokenizer: Tokenizer) -> Renderer:
    """The chat format for `model_name`: the compact tiny format for the built-in model, the
    tokenizer's own chat template for Hugging Face models."""
    from cookbook.tokenizers import ByteTokenizer

    if isinstance(tokenizer, ByteTokenizer):
        from cookbook.renderers.tiny import TinyRenderer

        return TinyRenderer(tokenizer)
    from cookbook.renderers.hf import HFChatTemplateRenderer

    return HFChatTemplateRenderer(tokenizer)
