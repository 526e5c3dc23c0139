"""Run-directory plumbing: atomic writes, exactly-once metrics across resume, config round trip."""

from __future__ import annotations

from pathlib import Path

import chz

from cookbook.runs.checkpoints import Checkpoint
from cookbook.runs.config_io import config_from_json, config_to_json, load_config_file
from cookbook.runs.run_dir import open_run_dir


@chz.chz
class Inner:
    opponent: str = "random"
    depth: int = 2


@chz.chz
class Outer:
    inner: Inner
    learning_rate: float = 1e-3
    evals: list[str] = chz.field(default_factory=list)


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = Outer(inner=Inner(opponent="optimal"), learning_rate=3e-4, evals=["a", "b"])
    assert config_from_json(config_to_json(cfg)) == cfg
    run = open_run_dir(tmp_path / "run")
    run.write_config(cfg, argv=["cookbook", "rl"])
    assert load_config_file(run.config_path) == cfg


def test_resume_drops_metrics_after_checkpoint_and_torn_lines(tmp_path: Path) -> None:
    run = open_run_dir(tmp_path / "run")
    assert run.start_step == 0
    for step in range(5):
        run.metrics.log(step, {"reward": step / 10, "nan": float("nan")})
    run.checkpoints.add(Checkpoint(step=3, state_path=str(tmp_path / "ckpt3")))
    with open(run.metrics.path, "a") as f:
        f.write('{"step": 5, "rew')  # a kill in the middle of a write

    resumed = open_run_dir(tmp_path / "run")
    assert resumed.start_step == 3
    assert len(resumed.metrics.read()) == 5  # nothing dropped until the steps start again
    resumed.start_steps(Outer(inner=Inner()))
    assert [r["step"] for r in resumed.metrics.read()] == [0, 1, 2]
    for step in range(3, 6):
        resumed.metrics.log(step, {"reward": 1.0})
    steps = [r["step"] for r in resumed.metrics.read()]
    assert steps == [0, 1, 2, 3, 4, 5]
    assert resumed.metrics.read()[0]["nan"] is None


def test_fresh_starts_over(tmp_path: Path) -> None:
    run = open_run_dir(tmp_path / "run")
    run.write_config(Outer(inner=Inner()))
    run.metrics.log(0, {"x": 1})
    run.checkpoints.add(Checkpoint(step=1, state_path="p"))
    again = open_run_dir(tmp_path / "run", fresh=True)
    assert again.resume_from is None
    assert again.metrics.read() == []
