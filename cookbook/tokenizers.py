"""The tokenizer interface the cookbook relies on: the small subset of a Hugging Face tokenizer
that the tiny model's byte tokenizer also implements."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

BYTE_TOKENIZER_KIND = "byte-v1"
"""The `cookbook_tokenizer` value in the config of `ByteTokenizer`'s Hugging Face files
(`cookbook.hf_byte_tokenizer`), by which a loaded copy is recognised."""


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


class ByteTokenizer:
    """The tiny model's tokenizer: one token per UTF-8 byte (ids 0-255) plus a few specials.

    Self-contained (no download, no torch). Special tokens are never produced from text: the
    string "<|eos|>" in user text encodes as its bytes, so a model reply cannot forge a turn
    boundary.
    """

    SPECIAL_TOKENS: ClassVar[dict[str, int]] = {
        "<|eos|>": 256,
        "<|pad|>": 257,
        "<|system|>": 258,
        "<|user|>": 259,
        "<|assistant|>": 260,
    }

    def __init__(self) -> None:
        self._special_names = {i: name for name, i in self.SPECIAL_TOKENS.items()}

    @property
    def eos_token_id(self) -> int:
        """Ends a turn and a sequence."""
        return self.SPECIAL_TOKENS["<|eos|>"]

    @property
    def pad_token_id(self) -> int:
        """Padding in batches (never trained on)."""
        return self.SPECIAL_TOKENS["<|pad|>"]

    @property
    def vocab_size(self) -> int:
        """256 bytes plus the special tokens."""
        return 256 + len(self.SPECIAL_TOKENS)

    def special(self, name: str) -> int:
        """The id of special token `name` (for example `"<|user|>"`)."""
        return self.SPECIAL_TOKENS[name]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """UTF-8 bytes of `text` (`add_special_tokens` is accepted for HF compatibility; there is
        no BOS to add)."""
        return list(text.encode("utf-8"))

    def decode(self, token_ids: list[int]) -> str:
        """Text of `token_ids`: specials by name, invalid UTF-8 replaced (never raises)."""
        out: list[str] = []
        buf = bytearray()
        for t in token_ids:
            if 0 <= t < 256:
                buf.append(t)
                continue
            if buf:
                out.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
            out.append(self._special_names.get(t, f"<|{t}|>"))
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


def as_byte_tokenizer(tokenizer: object) -> ByteTokenizer | None:
    """`tokenizer` as a `ByteTokenizer` when it is one, or a Hugging Face tokenizer loaded from
    its files (`cookbook.hf_byte_tokenizer`: what the tinker SDK returns for the tiny model on
    `cookbook serve`; same ids); None for any other tokenizer."""
    if isinstance(tokenizer, ByteTokenizer):
        return tokenizer
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if isinstance(init_kwargs, dict) and init_kwargs.get("cookbook_tokenizer") == (
        BYTE_TOKENIZER_KIND
    ):
        return ByteTokenizer()
    return None
