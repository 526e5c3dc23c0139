"""Hostile data files: a JSONL line nested 100k deep, a line far longer than the model's context
(the issue's 5 MB line; 200 kB here, the same path at a fraction of the time). Each is one error
naming the file and line (skipped and counted with `skip_bad_lines=true` where it is a bad
line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.errors import UserError
from cookbook.supervised.conversations import load_conversations
from cookbook.supervised.datasets import split_held_out

_GOOD = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
)


def test_a_line_nested_100k_deep_is_a_bad_line_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(f"{_GOOD}\n{'[' * 100_000}{']' * 100_000}\n{_GOOD}\n")
    with pytest.raises(UserError, match=rf"{path}:2: JSON nested too deeply"):
        load_conversations(path)
    loaded = load_conversations(path, skip_bad_lines=True)
    assert loaded.skipped_lines == 1 and loaded.line_numbers == [1, 3]
    assert loaded.first_skip_reason is not None and "line 2" in loaded.first_skip_reason


def _big_file(tmp_path: Path) -> Path:
    """Nine good lines, a 200 kB one (line 10), five good ones."""
    huge = {
        "messages": [
            {"role": "user", "content": "x" * 200_000},
            {"role": "assistant", "content": "y"},
        ]
    }
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join([_GOOD] * 9 + [json.dumps(huge)] + [_GOOD] * 5) + "\n")
    return path


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_line_longer_than_the_context_is_named_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], split: str
) -> None:
    """Longer than the model's context: the error names big.jsonl:10 (it said `datum 3`), in a
    training batch or in the held-out examples alike."""
    path = _big_file(tmp_path)
    seed = next(s for s in range(100) if (9 in split_held_out(15, 0.3, s)[1]) == (split == "test"))
    args = [
        "sft",
        "--dataset",
        "jsonl",
        f"dataset.path={path}",
        "dataset.test_fraction=0.3",
        f"dataset.split_seed={seed}",
        "batch_size=16",
        "max_steps=1",
        "show_progress=false",
        f"log_dir={tmp_path / 'run'}",
    ]
    assert cookbook_main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert (f"{path}:10: " in lines[0] and "exceed" in lines[0]) or "no room" in lines[0]
