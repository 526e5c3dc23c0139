"""The cookbook's own loops through the real `tinker` SDK against `cookbook serve`
(`backend=tinker base_url=...`), on the tiny model: the SDK's `get_tokenizer()` loads the tiny
model's tokenizer from the Hugging Face files the server reports (without them the run stops at
its first line: no tokenizer, no renderer), and those files give exactly `ByteTokenizer`'s ids."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.hf_byte_tokenizer import save_byte_tokenizer
from cookbook.renderers import get_renderer
from cookbook.renderers.tiny import TinyRenderer
from cookbook.serve.state import ServerState
from cookbook.tokenizers import ByteTokenizer, as_byte_tokenizer


def test_byte_tokenizer_files_give_byte_tokenizer_ids(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(save_byte_tokenizer(tmp_path / "tok")))
    byte = ByteTokenizer()
    for b in range(256):  # every byte alone: the same id, and back to the same bytes
        text = bytes([b]).decode("latin-1").encode().decode()  # U+0000..U+00FF as UTF-8
        assert loaded.encode(text) == byte.encode(text)
        assert loaded.decode([b]) == byte.decode([b])
    for name, i in ByteTokenizer.SPECIAL_TOKENS.items():
        assert loaded.convert_tokens_to_ids(name) == i and loaded.decode([i]) == name
        assert loaded.encode(f"a{name}b") == byte.encode(f"a{name}b")  # typed: stays bytes
    assert (loaded.eos_token_id, loaded.pad_token_id) == (byte.eos_token_id, byte.pad_token_id)
    assert len(loaded) == byte.vocab_size
    for text in ["héllo ✓ 日本語", "a , b . c ? 's", " lead\n\ttabs", ""]:
        assert loaded.encode(text) == byte.encode(text)
        assert loaded.decode(loaded.encode(text)) == text
    rng = random.Random(0)  # specials between bytes, invalid UTF-8 replaced alike
    for _ in range(500):
        ids = [rng.randrange(261 if rng.random() < 0.2 else 256) for _ in range(rng.randrange(9))]
        assert loaded.decode(ids) == byte.decode(ids)
    assert isinstance(as_byte_tokenizer(loaded), ByteTokenizer)
    assert isinstance(get_renderer("tiny", loaded), TinyRenderer)


# The SDK's deprecations (a future used as the client it will hold, `*_async` methods) are
# FutureWarnings: as errors here, a loop that brings one back fails this test. Its blocking calls
# made on a running event loop (`.result()` from async code) are logged warnings: none either.
@pytest.mark.filterwarnings("error::FutureWarning")
def test_cookbook_rl_tictactoe_through_cookbook_serve(
    shared_server: tuple[str, ServerState],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("cookbook_tictactoe", reason="the tictactoe plugin is not installed")
    caplog.set_level(logging.WARNING, logger="tinker")
    url, state = shared_server
    runs_before = set(state.runs)
    log_dir = tmp_path / "ttt"
    status = cookbook_main(
        [
            "rl",
            "--env",
            "tictactoe",
            "backend=tinker",
            f"base_url={url}",
            "model_name=tiny-32x1",
            "max_steps=2",
            "warm_start.steps=4",
            "warm_start.batch_size=8",
            "groups_per_batch=2",
            "group_size=4",
            "evals=tictactoe-vs-random",  # not the recommended exhaustive eval: 4,520 prompts
            "evals.tictactoe-vs-random.num_games=4",
            "eval_before_rl=false",
            "test_max_batches=1",
            "show_progress=False",
            f"log_dir={log_dir}",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    assert all(r["rollout/trajectories"] == 8 for r in records)
    assert "eval/tictactoe-vs-random/win_rate" in records[-1]
    checkpoint = json.loads((log_dir / "checkpoints.json").read_text())[-1]
    assert checkpoint["step"] == 2 and str(checkpoint["state_path"]).startswith("tinker://")
    assert set(state.runs) - runs_before, "the run trained on the server"
    assert "rl tictactoe: 2 steps run" in out
    blocking = [r.getMessage() for r in caplog.records if "called from async" in r.getMessage()]
    assert not blocking, blocking[0]
