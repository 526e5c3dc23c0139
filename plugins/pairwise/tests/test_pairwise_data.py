"""Prompt sets, the comparisons dataset (file and synthetic) and the warm-start dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cookbook_pairwise.builders import PairwiseWarmupBuilder
from cookbook_pairwise.comparisons import (
    Comparison,
    ComparisonsBuilder,
    both_orders,
    read_comparisons,
)
from cookbook_pairwise.preference.rules import VowelShare
from cookbook_pairwise.prompts import load_prompt_set, read_prompts
from cookbook_pairwise.synthetic import builtin_prompts

from cookbook.errors import UserError
from cookbook.testing import tiny_context


def _write_jsonl(path: Path, rows: list[object]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_builtin_prompts_are_fixed_and_disjoint() -> None:
    train, test = builtin_prompts()
    assert (train, test) == builtin_prompts()
    assert len(test) > 50 and len(train) > 9 * len(test) * 0.8
    assert not set(train) & set(test)


def test_prompt_file_split_is_stable_and_errors_are_one_line(tmp_path: Path) -> None:
    rows = [{"prompt": f"question {i}"} for i in range(200)]
    path = _write_jsonl(tmp_path / "p.jsonl", rows)
    first = load_prompt_set(path, test_fraction=0.2)
    again = load_prompt_set(_write_jsonl(tmp_path / "q.jsonl", rows[::-1]), test_fraction=0.2)
    assert set(first.test) == set(again.test) and 20 < len(first.test) < 60
    assert not set(first.train) & set(first.test)

    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"text": "no"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl:2: needs a non-empty string under 'prompt'"):
        read_prompts(str(tmp_path / "bad.jsonl"), "prompt")
    with pytest.raises(UserError, match="no prompt file"):
        read_prompts(str(tmp_path / "missing.jsonl"), "prompt")


def test_synthetic_comparisons_follow_their_rule() -> None:
    source = ComparisonsBuilder(num_examples=300, num_test=100)
    rule = VowelShare()
    train, test = source.load_train(seed=0), source.load_test()
    assert len(train) == 300 and len(test) == 100
    for c in [*train, *test]:
        assert rule.score(c.prompt, c.chosen) > rule.score(c.prompt, c.rejected)
    # Held-out comparisons use held-out prompts and do not depend on the seed.
    _, test_prompts = builtin_prompts()
    assert {c.prompt for c in test} <= set(test_prompts)
    assert source.load_test() == test
    assert source.load_train(seed=1) != train


def test_each_comparison_trains_both_orders() -> None:
    first, second = both_orders(Comparison("cat", "aei", "xyz"), "compact")
    assert first[0]["content"] == "cat\naei\nxyz" and first[1]["content"] == "A"
    assert second[0]["content"] == "cat\nxyz\naei" and second[1]["content"] == "B"


def test_comparisons_dataset_from_a_file(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(40)]
    path = _write_jsonl(tmp_path / "c.jsonl", rows)
    train_ds, test_ds = ComparisonsBuilder(path=path, test_fraction=0.25)(
        tiny_context(groups_per_batch=8)
    )
    assert test_ds is not None
    n_train, n_test = (
        sum(len(train_ds.get_batch(i)) for i in range(len(train_ds))),
        sum(len(test_ds.get_batch(i)) for i in range(len(test_ds))),
    )
    assert n_train + n_test == 80  # two examples (orders) per comparison
    datum = train_ds.get_batch(0)[0]
    weights = datum.loss_fn_inputs["weights"].to_numpy()
    assert weights.sum() == 2  # the answer letter and the end token

    _write_jsonl(tmp_path / "broken.jsonl", [{"prompt": "p", "chosen": "x"}])
    with pytest.raises(UserError, match="needs string fields rejected"):
        read_comparisons(str(tmp_path / "broken.jsonl"))


def test_synthetic_set_needs_a_programmatic_rule() -> None:
    with pytest.raises(UserError, match="not a programmatic preference model"):
        ComparisonsBuilder(rule="judge:tiny", num_examples=4, num_test=2).load_test()


def test_warmup_replies_are_letters_of_the_configured_length() -> None:
    train, test = PairwiseWarmupBuilder(num_examples=64, num_test=16)(
        tiny_context(groups_per_batch=16)
    )
    assert test is not None and len(train) == 4
    ctx = tiny_context()
    for datum in train.get_batch(0):
        tokens = [
            *datum.model_input.to_ints(),
            int(datum.loss_fn_inputs["target_tokens"].to_numpy()[-1]),
        ]
        text = ctx.tokenizer.decode(tokens)
        reply = text.split("<|assistant|>")[1].removesuffix("<|eos|>")
        assert reply.isalpha() and reply.islower() and 3 <= len(reply) <= 10
