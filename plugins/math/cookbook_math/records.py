"""Problems with reference answers, read from local JSONL or Parquet files or (optionally, with
network) the Hugging Face hub.

The reference is extracted from the answer field the way the dataset writes it: GSM8K solutions
end with `#### 42`, MATH solutions put it in `\\boxed{}`; a field that is already the bare
answer is used as is (see `reference_answer`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cookbook.errors import UserError
from cookbook_math.answers import extract_boxed, extract_hash

DATA_DIR = Path(__file__).with_name("data")
DEMO_FILES = {
    "word_problems": DATA_DIR / "word_problems.jsonl",
    "competition": DATA_DIR / "competition.jsonl",
}
"""Small problem sets written for this repository (not copied from a public dataset)."""


@dataclass(frozen=True)
class MathRecord:
    """One problem and its reference answer."""

    question: str
    answer: str


def _rows_jsonl(path: Path) -> Iterable[tuple[str, object]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(
                    f"{path}:{lineno} is not valid JSON ({e.msg}); fix or remove that line"
                ) from None


def _rows_parquet(path: Path) -> Iterable[tuple[str, object]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            f"reading {path} needs pyarrow; install it with `pip install 'cookbook-env-math[parquet]'` "
            "or convert the file to JSONL"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise UserError(f"cannot read Parquet file {path}: {e}") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path} row {i}", row


def _to_record(
    where: str,
    row: object,
    question_field: str,
    answer_field: str,
) -> MathRecord:
    if not isinstance(row, Mapping):
        raise UserError(f"{where}: expected an object with fields, got {type(row).__name__}")
    missing = [f for f in (question_field, answer_field) if f not in row]
    if missing:
        fields = ", ".join(sorted(str(k) for k in row)) or "none"
        raise UserError(
            f"{where}: no field {missing[0]!r} (fields: {fields}); "
            "set question_field= / answer_field= to the right names"
        )
    question = str(row[question_field]).strip()
    return MathRecord(question=question, answer=reference_answer(str(row[answer_field])))


def reference_answer(field: str) -> str:
    """The reference in an answer field: its `\\boxed{}` (MATH solutions), else the text after
    `####` (GSM8K solutions), else the whole field (already the bare answer)."""
    return (extract_boxed(field) or extract_hash(field) or field).strip()


def load_records(
    path: str | Path,
    *,
    question_field: str,
    answer_field: str,
) -> list[MathRecord]:
    """All problems of a `.jsonl` (one JSON object per line) or `.parquet` file.

    The reference answer is `reference_answer(row[answer_field])`.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"dataset file {p} does not exist; pass path=FILE.jsonl (or .parquet)")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        rows = _rows_parquet(p)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        rows = _rows_jsonl(p)
    else:
        raise UserError(f"{p}: unknown file type {suffix!r}; use .jsonl or .parquet")
    records = [_to_record(w, r, question_field, answer_field) for w, r in rows]
    if not records:
        raise UserError(f"{p} has no problems in it")
    return records


def load_hub_records(
    name: str,
    *,
    config: str | None,
    split: str,
    question_field: str,
    answer_field: str,
) -> list[MathRecord]:
    """All problems of a split of a Hugging Face hub dataset (needs `datasets` and network)."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            "loading from the Hugging Face hub needs `datasets`: pip install 'cookbook-env-math[hub]'"
        ) from None
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, missing dataset or split: all are the user's to fix
        raise UserError(
            f"cannot load {name!r} (config {config!r}, split {split!r}) from the hub: {e}"
        ) from None
    return [
        _to_record(f"{name}[{split}] row {i}", row, question_field, answer_field)
        for i, row in enumerate(data)
    ]


def is_heldout(record: MathRecord, test_fraction: float) -> bool:
    """A stable split by a hash of the question: the same records are held out whatever the file
    order or the run seed."""
    digest = hashlib.sha256(record.question.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def split_records(
    records: list[MathRecord], test_fraction: float
) -> tuple[list[MathRecord], list[MathRecord]]:
    """`(train, test)` by `is_heldout`."""
    train = [r for r in records if not is_heldout(r, test_fraction)]
    test = [r for r in records if is_heldout(r, test_fraction)]
    return train, test
