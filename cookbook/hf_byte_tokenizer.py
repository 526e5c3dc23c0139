"""The tiny model's byte tokenizer (`cookbook.tokenizers.ByteTokenizer`) as Hugging Face tokenizer
files, so `transformers.AutoTokenizer.from_pretrained(directory)` loads a tokenizer that gives
exactly its ids: one token per UTF-8 byte (ids 0-255), the specials at 256-260.

Who needs it: the `tinker` SDK's `TrainingClient.get_tokenizer()` loads the tokenizer of the
model a server reports (`get_info().model_data.tokenizer_id`) with `AutoTokenizer`, so
`cookbook serve` writes these files and reports their directory for the tiny models.

How the files reproduce `ByteTokenizer`: a byte-level pre-tokenizer turns text into its UTF-8
bytes (each shown as one printable character, GPT-2 style) and a BPE model without merges maps
each to the byte's id; the decoder maps them back and replaces invalid UTF-8 as
`bytes.decode(errors="replace")` does. The specials are special tokens that text never produces
(`split_special_tokens`: "<|eos|>" typed by a user stays bytes, as in `ByteTokenizer`), and
`clean_up_tokenization_spaces` is off so decoding changes no spaces. The config carries
`cookbook_tokenizer` so `cookbook.tokenizers.as_byte_tokenizer` recognises a loaded copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from cookbook.tokenizers import BYTE_TOKENIZER_KIND, ByteTokenizer

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def save_byte_tokenizer(directory: str | os.PathLike[str]) -> Path:
    """Write the Hugging Face files of `ByteTokenizer` to `directory` (made if missing; a
    complete copy of this version is kept, anything else replaced in one rename, so a reader
    never sees half of it); returns it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    out = Path(directory)
    if _is_current(out):
        return out
    specials = ByteTokenizer.SPECIAL_TOKENS
    vocab = {char: byte for byte, char in enumerate(_byte_chars())}
    vocab.update(specials)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(name, special=True, normalized=False) for name in specials]
    )
    byte = ByteTokenizer()
    special_map = {"eos_token": "<|eos|>", "pad_token": "<|pad|>"}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1 << 30,
        "cookbook_tokenizer": BYTE_TOKENIZER_KIND,
    }
    assert tokenizer.token_to_id("<|eos|>") == byte.eos_token_id

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tokenizer.save(str(staging / "tokenizer.json"))
        (staging / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (staging / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            out.rename(old / out.name)
            shutil.rmtree(old, ignore_errors=True)
        staging.rename(out)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _is_current(out):  # another process did not write it meanwhile either
            raise
    return out


def _is_current(directory: Path) -> bool:
    if not all((directory / name).is_file() for name in FILES):
        return False
    try:
        config = json.loads((directory / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("cookbook_tokenizer") == BYTE_TOKENIZER_KIND


def _byte_chars() -> list[str]:
    """The printable character standing for each byte 0-255 in byte-level BPE vocabularies
    (GPT-2's table: printable Latin-1 bytes stand for themselves, the rest are shifted past
    255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shift)
            shift += 1
    return [chars[b] for b in range(256)]
