"""Problem files: JSONL / Parquet loading, field names, errors, splits, the demo sets, and the
`gsm8k-file` / `math-file` envs over them."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
from cookbook_math.answers import parse_number
from cookbook_math.env import MathGroupBuilder
from cookbook_math.file_env import (
    CompetitionEnvBuilder,
    RecordsDataset,
    WordProblemsEnvBuilder,
)
from cookbook_math.grader import symbolic_grader
from cookbook_math.records import (
    DEMO_FILES,
    MathRecord,
    load_records,
    reference_answer,
    split_records,
)

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.renderers.tiny import TinyRenderer
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
RENDERER = TinyRenderer(TOKENIZER)
EOS = TOKENIZER.eos_token_id


def ctx(seed: int = 0, group_size: int = 2, groups_per_batch: int = 4) -> BuildContext:
    return BuildContext(
        model_name="tiny",
        tokenizer=TOKENIZER,
        renderer=RENDERER,
        seed=seed,
        group_size=group_size,
        groups_per_batch=groups_per_batch,
    )


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS: list[dict[str, object]] = [
    {"q": f"What is {i} plus {i}?", "sol": f"Double it.\n#### {2 * i}"} for i in range(1, 21)
]


def test_jsonl_with_custom_field_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    records = load_records(path, question_field="q", answer_field="sol")
    assert records[0] == MathRecord("What is 1 plus 1?", "2")
    assert len(records) == 20


def test_reference_answer_forms() -> None:
    assert reference_answer("work\n#### 1,250") == "1,250"
    assert reference_answer("so $x = \\boxed{\\frac{2\\pi}{3}}$.") == "\\frac{2\\pi}{3}"
    assert reference_answer(" 42 ") == "42"


def test_numeric_answer_fields_are_accepted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "one?", "answer": 1}])
    assert load_records(path, question_field="question", answer_field="answer")[0].answer == "1"


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"q": "x", "sol": "1"}\n{"q": "y"\n', ".jsonl", r"p\.jsonl:2 is not valid JSON"),
        (
            '{"question": "x", "answer": "1"}\n',
            ".jsonl",
            r"no field 'q' \(fields: answer, question\)",
        ),
        ('["q", "sol"]\n', ".jsonl", "expected an object"),
        ("", ".jsonl", "has no problems"),
        ("q,sol\n", ".csv", "unknown file type"),
    ],
)
def test_bad_files_are_one_line_user_errors(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"p{suffix}"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_records(path, question_field="q", answer_field="sol")
    assert "\n" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        WordProblemsEnvBuilder(path=str(tmp_path / "nope.jsonl"))(ctx())


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
def test_parquet_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    records = load_records(path, question_field="q", answer_field="sol")
    assert records == load_records(
        write_jsonl(tmp_path / "p.jsonl", ROWS), question_field="q", answer_field="sol"
    )
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read Parquet"):
        load_records(tmp_path / "bad.parquet", question_field="q", answer_field="sol")


@pytest.mark.skipif(
    importlib.util.find_spec("datasets") is not None,
    reason="datasets installed (would use network)",
)
def test_hub_loading_without_datasets_says_how_to_install() -> None:
    with pytest.raises(UserError, match=r"cookbook-env-math\[hub\]"):
        WordProblemsEnvBuilder(hub_dataset="someone/gsm8k")(ctx())


def test_split_is_stable_and_independent_of_order() -> None:
    records = [MathRecord(f"problem {i}", str(i)) for i in range(400)]
    train, test = split_records(records, 0.25)
    train_rev, test_rev = split_records(list(reversed(records)), 0.25)
    assert set(test) == set(test_rev) and set(train) == set(train_rev)
    assert not set(train) & set(test)
    assert 60 < len(test) < 140  # about a quarter


def test_demo_sets_have_gradable_references() -> None:
    words = load_records(
        DEMO_FILES["word_problems"], question_field="question", answer_field="answer"
    )
    assert len(words) >= 40 and len({r.question for r in words}) == len(words)
    # GSM8K-style answers are numbers: the exact path grades them.
    assert all(parse_number(r.answer) is not None for r in words)
    comps = load_records(
        DEMO_FILES["competition"], question_field="problem", answer_field="solution"
    )
    assert len(comps) >= 30 and len({r.question for r in comps}) == len(comps)
    # Every competition reference is LaTeX math-verify can parse (else it equals nothing).
    grader = symbolic_grader()
    for r in comps:
        assert "boxed" not in r.answer
        assert grader.compare(r.answer, r.answer, timeout_s=10.0) == "equal", r.answer


def test_word_problem_env_rewards(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    builder = WordProblemsEnvBuilder(
        path=str(path), question_field="q", answer_field="sol", test_fraction=0.0
    )
    train, test = builder(ctx(group_size=4))
    assert test is None
    group = train.get_batch(0)[0]
    assert isinstance(group, MathGroupBuilder)
    assert group.logging_tags() == ["gsm8k-file"]
    gold = group.gold
    replies = [
        f"Work.\n#### {gold}",  # correct with the format
        f"The answer is {gold}.",  # correct by last number, no ####
        f"#### {int(gold) + 1}",  # wrong with the format
        "I don't know",
    ]

    async def run() -> list[float]:
        envs = await group.make_envs()
        return [
            (await env.step([*TOKENIZER.encode(r), EOS])).reward
            for env, r in zip(envs, replies, strict=True)
        ]

    assert asyncio.run(run()) == [1.1, 1.0, 0.1, 0.0]


def test_competition_env_uses_boxed_answers_and_symbolic_grading() -> None:
    builder = CompetitionEnvBuilder(test_fraction=0.0)
    train, _ = builder(ctx(group_size=2, groups_per_batch=100))
    groups = [g for g in train.get_batch(0) if isinstance(g, MathGroupBuilder)]
    by_gold = {g.gold: g for g in groups}
    group = by_gold["6\\sqrt{2}"]
    assert "\\boxed{}" in group.messages[-1]["content"]

    async def run() -> list[float]:
        envs = await group.make_envs()
        replies = ["so \\boxed{\\sqrt{72}}", "so \\boxed{6\\sqrt{3}}"]
        return [
            (await env.step([*TOKENIZER.encode(r), EOS])).reward
            for env, r in zip(envs, replies, strict=True)
        ]

    assert asyncio.run(run()) == [1.1, 0.1]


def test_epochs_cover_every_problem_and_reshuffle_by_seed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", ROWS)
    builder = WordProblemsEnvBuilder(
        path=str(path), question_field="q", answer_field="sol", test_fraction=0.0, num_epochs=2
    )
    train, _ = builder(ctx(seed=3, groups_per_batch=6))
    assert isinstance(train, RecordsDataset)
    assert len(train) == 7  # 40 problems in batches of 6
    seen = [r.question for i in range(len(train)) for r in train.batch_records(i)]
    assert len(seen) == 40
    assert sorted(seen[:20]) == sorted(seen[20:]) == sorted(str(r["q"]) for r in ROWS)
    assert seen[:20] != seen[20:]  # a new order each epoch
    again, _ = builder(ctx(seed=3, groups_per_batch=6))
    other, _ = builder(ctx(seed=4, groups_per_batch=6))
    assert isinstance(again, RecordsDataset) and isinstance(other, RecordsDataset)
    assert again.batch_records(0) == train.batch_records(0)
    assert other.batch_records(0) != train.batch_records(0)
