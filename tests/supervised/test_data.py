"""JSONL loading (bad input named by file and line), rendering, split, shuffle, length limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from cookbook.build_context import BuildContext
from cookbook.data import CHAT_DEMO_PATH
from cookbook.errors import UserError
from cookbook.renderers.base import Message, Role, TrainOnWhat
from cookbook.renderers.tiny import TinyRenderer
from cookbook.supervised.conversations import load_conversations
from cookbook.supervised.datasets import DatumDataset, all_datums, split_held_out
from cookbook.supervised.datums import datum_from_tokens, datum_length
from cookbook.supervised.jsonl import JsonlDatasetBuilder
from cookbook.supervised.lengths import LongExamples, fit_datums
from cookbook.testing import tiny_context
from cookbook.tokenizers import ByteTokenizer

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def tiny_ctx(batch_size: int = 4, seed: int = 0) -> BuildContext:
    return tiny_context(seed=seed, groups_per_batch=batch_size)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_LINES = [
    ('{"messages": [', r"not valid JSON"),
    ('{"conversation": []}', r'no "messages" key'),
    ('{"messages": []}', r"empty conversation"),
    (
        '{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}',
        r"message 2 has unknown role 'bot'",
    ),
    ('{"messages": [{"role": "user", "content": "a"}]}', r"no assistant message"),
    ('{"messages": [{"role": "assistant", "content": 3}]}', r'message 1 has no string "content"'),
    ('["messages"]', r"expected a JSON object"),
    ('{"messages": "hi"}', r'"messages" must be a list'),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_bad_line_names_file_and_line(tmp_path: Path, bad: str, reason: str) -> None:
    path = write_lines(tmp_path / "chats.jsonl", [json.dumps(GOOD), "", json.dumps(GOOD), bad])
    with pytest.raises(UserError, match=rf"chats\.jsonl:4: {reason}") as info:
        load_conversations(path)
    message = str(info.value)
    assert "\n" not in message
    assert "dataset.skip_bad_lines=true" in message


def test_skip_bad_lines_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [json.dumps(GOOD)] + [bad for bad, _ in BAD_LINES] + [json.dumps(GOOD)]
    path = write_lines(tmp_path / "chats.jsonl", lines)
    loaded = load_conversations(path, skip_bad_lines=True)
    assert len(loaded.conversations) == 2
    assert loaded.line_numbers == [1, len(lines)]
    assert loaded.skipped_lines == len(BAD_LINES)
    assert loaded.first_skip_reason is not None
    assert loaded.first_skip_reason.startswith("line 2: not valid JSON")
    assert f"skipped {len(BAD_LINES)} bad line(s)" in caplog.text


def test_only_bad_lines_or_missing_file_are_user_errors(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ['{"messages": []}'])
    with pytest.raises(UserError, match="no usable conversations"):
        load_conversations(path, skip_bad_lines=True)
    with pytest.raises(UserError, match="does not exist"):
        load_conversations(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="is a directory"):
        load_conversations(tmp_path)
    (tmp_path / "latin1.jsonl").write_bytes(b'{"messages": "\xff"}\n')
    with pytest.raises(UserError, match=r"latin1\.jsonl:1: not valid UTF-8"):
        load_conversations(tmp_path / "latin1.jsonl")


def test_shipped_demo_file_is_valid() -> None:
    loaded = load_conversations(CHAT_DEMO_PATH)
    assert len(loaded.conversations) >= 200
    assert loaded.skipped_lines == 0
    roles = {m["role"] for conv in loaded.conversations for m in conv}
    assert roles == {"system", "user", "assistant"}


def test_datum_is_shifted_by_one() -> None:
    datum = datum_from_tokens([5, 6, 7, 8], [0.0, 0.0, 1.0, 1.0])
    assert datum.model_input.to_ints() == [5, 6, 7]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [6, 7, 8]
    assert datum.loss_fn_inputs["weights"].tolist() == [0.0, 1.0, 1.0]
    assert datum_length(datum) == 4


def test_split_is_seeded_disjoint_and_never_empty() -> None:
    train, test = split_held_out(50, 0.1, split_seed=3)
    assert len(test) == 5 and len(train) == 45
    assert sorted(train + test) == list(range(50))
    assert split_held_out(50, 0.1, split_seed=3) == (train, test)
    assert split_held_out(50, 0.1, split_seed=4) != (train, test)
    assert split_held_out(3, 0.01, 0)[1] != []  # a positive fraction holds out at least one
    assert split_held_out(2, 0.9, 0)[0] != []  # and never everything
    assert split_held_out(10, 0.0, 0) == (list(range(10)), [])
    with pytest.raises(UserError, match="test_fraction"):
        split_held_out(10, 1.0, 0)


def test_epochs_are_seeded_shuffles_covering_every_example() -> None:
    datums = [datum_from_tokens([i, i + 1], [0.0, 1.0]) for i in range(10)]

    def epoch_tokens(ds: DatumDataset, epoch: int) -> list[int]:
        ds.set_epoch(epoch)
        return [d.model_input.to_ints()[0] for i in range(len(ds)) for d in ds.get_batch(i)]

    ds = DatumDataset(datums, batch_size=3, seed=7)
    assert len(ds) == 3  # 10 // 3 batches; the last takes the remainder
    assert [len(ds.get_batch(i)) for i in range(3)] == [3, 3, 4]
    e0, e1 = epoch_tokens(ds, 0), epoch_tokens(ds, 1)
    assert sorted(e0) == sorted(e1) == list(range(10))
    assert e0 != e1
    again = DatumDataset(datums, batch_size=3, seed=7)
    assert epoch_tokens(again, 1) == e1  # what a resumed run sees
    assert epoch_tokens(DatumDataset(datums, batch_size=3, seed=8), 1) != e1
    with pytest.raises(IndexError):
        ds.get_batch(3)


def test_length_limit_truncates_or_drops_and_counts() -> None:
    short = datum_from_tokens([1, 2, 3], [0.0, 1.0, 1.0])
    long_late = datum_from_tokens(list(range(10)), [0.0] * 8 + [1.0, 1.0])
    long_early = datum_from_tokens(list(range(10)), [0.0, 1.0] + [0.0] * 8)

    kept, report = fit_datums([short, long_late, long_early], 4, LongExamples.TRUNCATE)
    # long_late has no trained token in its first 4: nothing to learn, so it is dropped.
    assert (report.total, report.truncated, report.dropped) == (3, 1, 1)
    assert kept[0] is short
    assert kept[1].model_input.to_ints() == [0, 1, 2]
    assert kept[1].loss_fn_inputs["weights"].tolist() == [1.0, 0.0, 0.0]
    assert datum_length(kept[1]) == 4

    kept, report = fit_datums([short, long_late, long_early], 4, LongExamples.DROP)
    assert (report.truncated, report.dropped) == (0, 2)
    assert kept == [short]
    assert "2 of 3 train examples" in report.describe("train", LongExamples.DROP)


@pytest.mark.parametrize("mode", list(TrainOnWhat))
def test_jsonl_builder_renders_with_the_context_renderer(tmp_path: Path, mode: TrainOnWhat) -> None:
    conv = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    }
    path = write_lines(tmp_path / "one.jsonl", [json.dumps(conv)])
    builder = JsonlDatasetBuilder(path=str(path), train_on_what=mode, test_fraction=0.0)
    train, test = builder(tiny_ctx(batch_size=2))
    assert test is None
    (datum,) = train.get_batch(0)
    messages = [Message(role=cast(Role, m["role"]), content=m["content"]) for m in conv["messages"]]
    tokens, weights = TinyRenderer(ByteTokenizer()).build_supervised_example(messages, mode)
    assert datum.model_input.to_ints() == tokens[:-1]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == tokens[1:]
    assert datum.loss_fn_inputs["weights"].tolist() == weights[1:]


def test_jsonl_builder_default_is_the_demo_with_a_held_out_split() -> None:
    train, test = JsonlDatasetBuilder()(tiny_ctx(batch_size=16, seed=1))
    assert test is not None
    train_inputs = {tuple(d.model_input.to_ints()) for d in all_datums(train)}
    test_D = all_datums(test)
    assert len(test_D) == 32  # 10% of the 320 shipped conversations
    assert isinstance(train, DatumDataset)
    assert train.counts["train_examples"] == 288
    assert len(train) == 288 // 16
    # The split does not depend on the run seed (so runs with different seeds compare).
    _, test_other_seed = JsonlDatasetBuilder()(tiny_ctx(batch_size=16, seed=2))
    assert test_other_seed is not None
    assert [d.model_input.to_ints() for d in all_datums(test_other_seed)] == [
        d.model_input.to_ints() for d in test_D
    ]
    assert train_inputs  # sanity: something to train on


def test_jsonl_builder_reports_bad_options(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="train_on_what"):
        JsonlDatasetBuilder(train_on_what=cast(TrainOnWhat, "first_message"))(tiny_ctx())
    with pytest.raises(UserError, match="test_fraction"):
        JsonlDatasetBuilder(test_fraction=1.5)(tiny_ctx())
    with pytest.raises(UserError, match="does not exist"):
        JsonlDatasetBuilder(path=str(tmp_path / "missing.jsonl"))(tiny_ctx())


def test_core_plugin_registers_jsonl_and_nll() -> None:
    from cookbook.registry.catalog import load_catalog
    from cookbook.supervised.nll_eval import NLLEvaluatorBuilder

    catalog = load_catalog()
    assert catalog.get_dataset("jsonl").load() is JsonlDatasetBuilder
    assert catalog.get_eval("nll").load() is NLLEvaluatorBuilder
