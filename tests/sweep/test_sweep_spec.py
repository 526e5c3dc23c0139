"""The sweep syntax: grids, ranges, list keys, random draws, and one clear line per mistake."""

from __future__ import annotations

import math

import pytest

from cookbook.errors import UserError
from cookbook.sweep.spec import parse_sweep_args, run_args, run_name


def test_grid_is_the_product_in_typed_order() -> None:
    spec = parse_sweep_args(["learning_rate=1e-3,3e-3", "max_steps=5", "seed=0..2"])
    assert spec.fixed == {"max_steps": "5"}
    assert spec.swept_keys == ["learning_rate", "seed"]
    runs = spec.runs()
    assert runs == [
        {"learning_rate": lr, "seed": seed} for lr in ("1e-3", "3e-3") for seed in ("0", "1", "2")
    ]
    assert run_args(spec.fixed, runs[0]) == ["max_steps=5", "learning_rate=1e-3", "seed=0"]


def test_list_keys_keep_commas_and_sweep_on_semicolons() -> None:
    def is_list(key: str) -> bool:
        return key == "evals"

    fixed = parse_sweep_args(["evals=a,b"], is_list_key=is_list)
    assert fixed.fixed == {"evals": "a,b"} and fixed.runs() == [{}]
    swept = parse_sweep_args(["evals=a,b;c", "seed=1,2"], is_list_key=is_list)
    assert swept.runs() == [
        {"evals": "a,b", "seed": "1"},
        {"evals": "a,b", "seed": "2"},
        {"evals": "c", "seed": "1"},
        {"evals": "c", "seed": "2"},
    ]


def test_escaped_comma_is_one_value() -> None:
    spec = parse_sweep_args([r"dataset.path=a\,b.jsonl", r"name=x\,y,z"])
    assert spec.fixed == {"dataset.path": "a,b.jsonl"}
    assert spec.grid == {"name": ("x,y", "z")}


def test_random_draws_are_seeded_in_range_and_crossed_with_the_grid() -> None:
    args = [
        "learning_rate=loguniform:1e-4:1e-2",
        "temperature=uniform:0.5:1.5",
        "group_size=randint:2:4",
        "env.opponent=choice:random,optimal",
        "seed=0,1,2",
    ]
    spec = parse_sweep_args(args, samples=5, search_seed=7)
    runs = spec.runs()
    assert len(runs) == 15
    assert runs == parse_sweep_args(args, samples=5, search_seed=7).runs()  # reproducible
    assert runs != parse_sweep_args(args, samples=5, search_seed=8).runs()
    for i in range(5):  # each draw runs every seed with the same drawn values
        block = runs[3 * i : 3 * i + 3]
        assert [r["seed"] for r in block] == ["0", "1", "2"]
        assert len({tuple((k, v) for k, v in r.items() if k != "seed") for r in block}) == 1
    for run in runs:
        assert 1e-4 <= float(run["learning_rate"]) <= 1e-2
        assert 0.5 <= float(run["temperature"]) <= 1.5
        assert run["group_size"] in {"2", "3", "4"}
        assert run["env.opponent"] in {"random", "optimal"}
    lrs = [math.log10(float(r["learning_rate"])) for r in runs[::3]]
    assert len(set(lrs)) == 5


def test_run_names_are_safe_and_unique_by_index() -> None:
    assert run_name(3, {"learning_rate": "1e-3", "seed": "2"}) == "003-learning_rate=1e-3-seed=2"
    name = run_name(12, {"dataset.path": "/data/my file.jsonl"})
    assert name == "012-dataset.path=_data_my_file.jsonl"
    assert len(run_name(1, {"k": "x" * 200})) <= 80


@pytest.mark.parametrize(
    ("args", "samples", "expected"),
    [
        (["learning_rate=loguniform:0:1"], 2, "loguniform needs LOW > 0"),
        (["learning_rate=loguniform:1e-4"], 2, "write loguniform:LOW:HIGH"),
        (["learning_rate=uniform:a:b"], 2, "must be numbers"),
        (["learning_rate=uniform:3:1"], 2, "LOW <= HIGH"),
        (["group_size=randint:1.5:3"], 2, "must be integers"),
        (["env.opponent=choice:"], 2, "choice:a,b,c"),
        (["learning_rate=1e-3,,3e-3"], None, "empty value"),
        (["seed=5..1"], None, "range is empty"),
        (["learning_rate"], None, "not a key=value sweep argument"),
        (["--learning_rate=1"], None, "not a key=value sweep argument"),
        (["seed=0,1", "seed=2"], None, "given twice"),
        (["learning_rate=loguniform:1e-4:1e-2"], None, "add --samples N"),
        (["seed=0,1"], 3, "none is given"),
        (["seed=0,1"], 0, "--samples must be at least 1"),
        (["a=0..99", "b=0..99", "c=0..9"], None, "narrow the grid"),
    ],
)
def test_malformed_sweep_values_are_one_line(
    args: list[str], samples: int | None, expected: str
) -> None:
    with pytest.raises(UserError) as info:
        parse_sweep_args(args, samples=samples)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
