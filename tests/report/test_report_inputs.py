"""`cookbook report` on run directories written by the runs' own writers (`RunDir.write_config`,
`MetricsLog.log`): grouping over seeds, directions, wall time, plots per run, and one `error:`
line for each bad input."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import chz
import pytest

from cookbook.analysis import load_run, load_runs, summarize, to_records
from cookbook.cli import main as cookbook_main
from cookbook.errors import UserError
from cookbook.runs.run_dir import open_run_dir


@chz.chz
class _Env:
    opponent: str = "random"


@chz.chz
class _Config:
    env: _Env
    log_dir: str
    learning_rate: float = 1e-3
    seed: int = 0


def _write_run(path: Path, lr: float, seed: int, losses: list[float]) -> None:
    """A run directory as a loop leaves it: config.json and one metrics line per step."""
    run_dir = open_run_dir(path)
    config = _Config(env=_Env(), log_dir=str(path), learning_rate=lr, seed=seed)
    run_dir.write_config(config, ["cookbook", "test"])
    for step, loss in enumerate(losses):
        run_dir.metrics.log(step, {"train/loss": loss, "time/step": 0.5 + seed, "note": "x"})


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Four runs: two learning rates times two seeds, known losses."""
    root = tmp_path / "runs"
    _write_run(root / "a0", 1e-3, 0, [3.0, 2.0, 2.5])
    _write_run(root / "a1", 1e-3, 1, [3.0, 1.0, 1.5])
    _write_run(root / "b0", 3e-3, 0, [3.0, 0.5, 0.7])
    _write_run(root / "b1", 3e-3, 1, [3.0, 0.9, 0.8])
    return root


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cookbook_main(["report", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_directory_of_runs_is_grouped_over_seeds(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _report(capsys, str(runs_dir), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert [m["name"] for m in report["metrics"]] == ["train/loss"]  # the default, minimised
    assert report["metrics"][0]["mode"] == "min"
    by_name = {r["run"]: r for r in report["runs"]}
    assert by_name["a1"]["params"] == {"learning_rate": "0.001", "seed": "1"}
    assert by_name["a1"]["metrics"]["train/loss"] == {
        "final": 1.5,
        "final_step": 2,
        "best": 1.0,
        "best_step": 1,
        "points": 3,
    }
    groups = {g["params"]["learning_rate"]: g for g in report["groups"]}
    assert groups["0.003"]["runs"] == ["b0", "b1"]
    final = groups["0.003"]["metrics"]["train/loss"]["final"]
    assert final["mean"] == pytest.approx(0.75)
    assert final["std"] == pytest.approx(statistics.stdev([0.7, 0.8]))
    best = groups["0.001"]["metrics"]["train/loss"]["best"]
    assert best["mean"] == pytest.approx(1.5) and best["n"] == 2


def test_direction_patterns_and_wall_time(
    runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(runs_dir / "a0"), str(runs_dir / "b1"), "--json", "--metric", "train/*:max"]
    status, out, err = _report(capsys, *args, "--metric", "wall_time")
    assert status == 0, err
    report = json.loads(out)
    assert [(m["name"], m["mode"]) for m in report["metrics"]] == [
        ("train/loss", "max"),
        ("wall_time", "min"),
    ]
    b1 = report["runs"][1]["metrics"]
    assert b1["train/loss"]["best"] == 3.0 and b1["train/loss"]["best_step"] == 0
    assert b1["wall_time"]["final"] == pytest.approx(3 * 1.5)


def test_plots_per_run(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    plots = tmp_path / "png"
    status, out, err = _report(capsys, str(runs_dir), "--by", "run", "--plots", str(plots))
    assert status == 0, err
    assert "groups (2)" in out and f"{plots}/train_loss.png" in out
    with Image.open(plots / "train_loss.png") as image:
        assert image.format == "PNG"
        image.verify()


def test_notebook_api_on_plain_runs(runs_dir: Path) -> None:
    run = load_run(runs_dir / "b0")
    assert run.series("train/loss") == [(0, 3.0), (1, 0.5), (2, 0.7)]
    assert run.wall_times() == {0: 0.5, 1: 1.0, 2: 1.5}
    assert "note" not in run.metric_names()  # text is not a metric
    assert run.flat_config()["env.opponent"] == "random"
    runs = load_runs([runs_dir])
    assert [r.name for r in runs] == ["a0", "a1", "b0", "b1"]
    records = to_records(runs, ["train/loss"])
    assert len(records) == 12
    assert records[4] == {
        "run": "a1",
        "path": str(runs_dir / "a1"),
        "status": None,
        "learning_rate": "0.001",
        "seed": "1",
        "step": 1,
        "wall_time": 3.0,
        "train/loss": 1.0,
    }
    assert [row["train/loss:final"] for row in summarize(runs)] == [2.5, 1.5, 0.7, 0.8]


def _error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status, _, err = _report(capsys, *args)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_error_line(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    err = _error_line(capsys, str(tmp_path / "empty"))
    assert "is not a run or a sweep" in err
    assert "no such directory" in _error_line(capsys, str(tmp_path / "missing"))
    assert "a file" in _error_line(capsys, str(tmp_path / "file.txt"))
    err = _error_line(capsys, str(runs_dir), "--metric", "train/los")
    assert "no run logged a metric 'train/los' (did you mean 'train/loss'?)" in err
    err = _error_line(capsys, str(runs_dir), "--metric", "eval/*/win_rate")
    assert "no run logged a metric 'eval/*/win_rate'; logged: train/loss, time/step" in err
    err = _error_line(capsys, "--compare", str(runs_dir / "a0"))
    assert "--compare takes two run directories, got 1" in err
    err = _error_line(capsys, "--compare", str(runs_dir / "a0"), str(tmp_path / "empty"))
    assert "is not a run directory" in err
    err = _error_line(capsys, str(runs_dir), "--json", "--csv")
    assert "not allowed with argument" in err
    with pytest.raises(UserError, match="not a sweep directory"):
        from cookbook.analysis import load_sweep

        load_sweep(runs_dir / "a0")


def test_compare_a_sweep_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cookbook.sweep.state import RunRecord, SweepState

    SweepState("rl", "x", {"grid": {"seed": ["0", "1"]}}, [RunRecord("000-seed=0", {})]).save(
        tmp_path
    )
    err = _error_line(capsys, "--compare", str(tmp_path), str(tmp_path))
    assert "is a sweep (give two of its runs)" in err
    err = _error_line(capsys, str(tmp_path))
    assert "no runs in" in err  # a sweep none of whose runs has started
