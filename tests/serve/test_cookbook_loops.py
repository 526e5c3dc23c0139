"""The cookbook's own loops through the real `tinker` SDK against `cookbook serve`
(`backend=tinker base_url=...`), on the tiny model: the SDK's `get_tokenizer()` loads the tiny
model's tokenizer from the Hugging Face files the server reports (without them the run stops at
its first line: no tokenizer, no renderer), and those files give exactly `ByteTokenizer`'s ids."""

from __future__ import annotations

import json
import random
from concurrent.futures import Future as ConcurrentFuture
from pathlib import Path
from typing import Any

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.hf_byte_tokenizer import save_byte_tokenizer
from cookbook.renderers import get_renderer
from cookbook.renderers.tiny import TinyRenderer
from cookbook.serve.state import ResultKind, ServerState
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
    ttt_server: tuple[str, ServerState],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, state = ttt_server
    runs_before = set(state.runs)
    log_dir = tmp_path / "ttt"
    status = cookbook_main(
        [
            "rl",
            "--env",
            "tictactoe",
            "search=None",  # plain RL: rollouts through the SDK
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


def test_cookbook_rl_sends_a_groups_shared_prompt_as_one_sample_call(
    shared_server: tuple[str, ServerState],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every game of a group starts from the same board: its first turn is one `sample` call
    with num_samples=group_size through the SDK, not one per game."""
    pytest.importorskip("cookbook_tictactoe", reason="the tictactoe plugin is not installed")
    url, state = shared_server
    kinds: list[str] = []
    register = state.register

    def counting_register(future: ConcurrentFuture[Any], kind: ResultKind) -> str:
        kinds.append(kind)
        return register(future, kind)

    monkeypatch.setattr(state, "register", counting_register)
    log_dir = tmp_path / "ttt"
    groups, group_size = 2, 4
    status = cookbook_main(
        [
            "rl",
            "--env",
            "tictactoe",
            "search=None",  # plain RL: rollouts through the SDK
            "backend=tinker",
            f"base_url={url}",
            "model_name=tiny-32x1",
            "max_steps=1",
            "warm_start.steps=0",
            f"groups_per_batch={groups}",
            f"group_size={group_size}",
            "env.opening_plies=0",  # every game of a group from the empty board
            "env.seat=first",
            "evals=",
            "test_max_batches=0",
            "eval_before_rl=false",
            "show_progress=False",
            f"log_dir={log_dir}",
        ]
    )
    assert status == 0, capsys.readouterr().err
    (record,) = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    turns = round(record["episode/turns"] * record["rollout/trajectories"])
    calls = kinds.count("proto_sample")
    print(f"{calls} sample calls for {turns} turns")
    assert calls <= turns - groups * (group_size - 1)


# The SDK deprecates `load_state*` on a client (a FutureWarning, and an ERROR log line saying to
# migrate): resume and load_checkpoint_path make the client from the checkpoint instead.
@pytest.mark.filterwarnings("error::FutureWarning")
def test_resume_and_load_checkpoint_path_through_cookbook_serve(
    ttt_server: tuple[str, ServerState],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = ttt_server
    common = [
        "backend=tinker",
        f"base_url={url}",
        "model_name=tiny-32x1",
        "groups_per_batch=2",
        "group_size=2",
        "evals=",
        "test_max_batches=0",
        "eval_before_rl=false",
        "show_progress=False",
    ]

    def rl(log_dir: Path, *args: str) -> list[dict[str, float]]:
        argv = ["rl", "--env", "tictactoe", *common, f"log_dir={log_dir}", *args]
        assert cookbook_main(argv) == 0, capsys.readouterr().err
        lines = (log_dir / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    first = tmp_path / "first"
    rl(first, "max_steps=1", "warm_start.steps=0")
    resumed = rl(first, "max_steps=2", "warm_start.steps=0")  # resumes at step 1
    assert [r["step"] for r in resumed] == [0, 1]
    state_path = json.loads((first / "checkpoints.json").read_text())[0]["state_path"]
    assert str(state_path).startswith("tinker://")
    records = rl(tmp_path / "second", "max_steps=1", f"load_checkpoint_path={state_path}")
    assert [r["step"] for r in records] == [0]
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "load_state" in m or "Migrate" in m], messages
