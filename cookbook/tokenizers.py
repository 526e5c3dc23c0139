"""The tokenizer interface the cookbook relies on: the small subset of a Hugging Face tokenizer
that the tiny model's byte tokenizer also implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    """Text to token ids and back."""

    @property
    def eos_token_id(self) -> int:
        """The end-of-sequence token id (also the stop token of a turn)."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model knows."""
        ...

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`."""
        ...

    def decode(self, token_ids: list[int]) -> str:
        """Text of `token_ids` (invalid bytes replaced, never raised)."""
        ...
