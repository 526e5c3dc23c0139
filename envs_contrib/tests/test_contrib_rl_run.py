"""`cookbook rl` end to end on the local backend for the multi-turn envs: a warm start on the
env's demos, two RL steps (whole episodes trained as one sequence each), the env's test split as
the eval, metrics averaged per episode. Too short to learn anything (the groups may well all
fail alike): the learning curves are in envs_contrib/README.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main

needs_local_backend = pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.service") is None,
    reason="the local backend is not installed",
)


@needs_local_backend
@pytest.mark.parametrize(
    ("env", "metric", "test_set"),
    [
        ("guess-number", "env/solved", "env.num_test=4"),
        ("calculator", "env/correct", "env.num_test=4"),
    ],
)
def test_cookbook_rl_trains_a_multi_turn_env(
    env: str, metric: str, test_set: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / env
    status = cookbook_main(
        [
            "rl",
            "--env",
            env,
            "max_steps=2",
            "warm_start.steps=40",  # enough for well-formed replies, so episodes go on
            "warm_start.batch_size=16",
            "warm_start.dataset.num_games=80",
            "groups_per_batch=2",
            "group_size=4",
            test_set,
            f"log_dir={log_dir}",
        ]
    )
    _out, err = capsys.readouterr()
    assert status == 0, err
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert r["rollout/trajectories"] == 8
        assert 0.0 <= r[metric] <= 1.0 and 0.0 <= r["env/invalid"] <= 1.0
    assert max(r["episode/turns"] for r in records) > 1  # some episodes went on after a reply
    assert f"eval/test/{metric}" in records[-1]  # the env's test split, at the end
