"""A real sweep of 4 tiny tic-tac-toe runs, 2 at a time: SIGKILLed mid-way (its runs die with it),
refused while running to a second sweep, resumed by the same command (finished runs skipped,
interrupted ones rerun, each step logged exactly once), then reported: the numbers of
`cookbook report` checked against the runs' own metrics.jsonl, and the PNG plots."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main

pytest.importorskip("cookbook_tictactoe")

TINY = [
    "search=None",  # plain RL: the sweeps report reward/mean
    "max_steps=2",
    "warm_start.steps=0",
    "group_size=2",
    "groups_per_batch=2",
    "eval_every=0",
    "evals=",
    "kl_penalty_coef=0",
]
SWEPT = ["learning_rate=1e-3,3e-3", "seed=0,1"]


@dataclass
class SweepRun:
    """What the module's sweep left behind."""

    dir: Path
    args: list[str]
    done_before_kill: dict[str, str]
    """Runs done when the sweep was killed -> their metrics.jsonl text at that moment."""
    running_at_kill: dict[str, int]
    """Runs running when the sweep was killed -> their pid."""
    orphans: list[int]
    """Pids of those still alive 3 s after the kill."""
    second_sweep_error: str
    rerun: subprocess.CompletedProcess[str]


def _state(sweep_dir: Path) -> dict[str, object]:
    path = sweep_dir / "sweep.json"
    return json.loads(path.read_text()) if path.exists() else {"runs": []}


def _runs(sweep_dir: Path) -> list[dict[str, object]]:
    runs = _state(sweep_dir)["runs"]
    assert isinstance(runs, list)
    return runs


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left for a non-reaping init counts as dead)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def _metrics(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    work = tmp_path_factory.mktemp("sweep")
    sweep_dir = work / "sw"
    args = ["sweep", "rl", "--env", "tictactoe", "--dir", str(sweep_dir), "--parallel", "2"]
    args += [*SWEPT, *TINY]
    command = [sys.executable, "-m", "cookbook", *args]
    first = subprocess.Popen(
        command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    runs: list[dict[str, object]] = []
    # Kill once a run is done and two are running (the second pair has started).
    while time.monotonic() < deadline and first.poll() is None:
        runs = _runs(sweep_dir)
        running = [r for r in runs if r["status"] == "running"]
        if any(r["status"] == "done" for r in runs) and len(running) == 2:
            break
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    second = io.StringIO()
    with contextlib.redirect_stderr(second):
        status = cookbook_main(args)  # the same sweep again, while the first one runs
    assert status == 2
    first.send_signal(signal.SIGKILL)
    first.wait()
    runs = _runs(sweep_dir)
    done = {
        str(r["name"]): (sweep_dir / str(r["name"]) / "metrics.jsonl").read_text()
        for r in runs
        if r["status"] == "done"
    }
    running_pids = {str(r["name"]): int(str(r["pid"])) for r in runs if r["status"] == "running"}
    # The kernel kills the runs with the sweep (parent-death signal); give it a moment.
    wait_until = time.monotonic() + 3  # a run killed late would still be running
    while time.monotonic() < wait_until and any(_alive(p) for p in running_pids.values()):
        time.sleep(0.05)
    orphans = [pid for pid in running_pids.values() if _alive(pid)]
    rerun = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    return SweepRun(sweep_dir, args, done, running_pids, orphans, second.getvalue(), rerun)


def test_killed_sweep_takes_its_runs_down_and_resumes_exactly_once(sweep: SweepRun) -> None:
    assert sweep.done_before_kill and len(sweep.running_at_kill) == 2
    assert sweep.orphans == []  # the kernel killed the runs with the sweep
    assert sweep.rerun.returncode == 0, sweep.rerun.stderr
    assert "4 of 4 runs done" in sweep.rerun.stdout
    assert f"{len(sweep.done_before_kill)} of 4 runs already done" in sweep.rerun.stderr
    runs = {str(r["name"]): r for r in _runs(sweep.dir)}
    assert len(runs) == 4 and all(r["status"] == "done" for r in runs.values())
    for name, text in sweep.done_before_kill.items():  # skipped: never started again
        assert runs[name]["attempts"] == 1
        assert (sweep.dir / name / "metrics.jsonl").read_text() == text
    for name in sweep.running_at_kill:
        assert runs[name]["attempts"] == 2
    for name, run in runs.items():
        assert [m["step"] for m in _metrics(sweep.dir / name)] == [0, 1]
        config = json.loads((sweep.dir / name / "config.json").read_text())["config"]
        overrides = run["overrides"]
        assert isinstance(overrides, dict)
        assert config["learning_rate"] == float(overrides["learning_rate"])
        assert config["seed"] == int(overrides["seed"])
        assert config["num_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
        assert config["log_dir"] == str(sweep.dir / name)


def test_a_second_sweep_on_the_same_directory_is_refused(sweep: SweepRun) -> None:
    err = sweep.second_sweep_error
    assert err.startswith("error: another `cookbook sweep` (pid ")
    assert err.count("\n") == 1


def test_another_definition_in_the_same_directory_is_refused(
    sweep: SweepRun, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a if a != "seed=0,1" else "seed=0,1,2" for a in sweep.args]
    assert cookbook_main(args) == 2
    err = capsys.readouterr().err
    assert "holds another sweep" in err and "--fresh" in err


def test_report_numbers_match_the_runs_metrics(
    sweep: SweepRun, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    metrics = "reward/mean,time/step,wall_time"
    assert cookbook_main(["report", str(sweep.dir), "--json", "--metric", metrics]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in report["metrics"]] == ["reward/mean", "time/step", "wall_time"]
    assert [m["mode"] for m in report["metrics"]] == ["max", "min", "min"]
    assert report["plots"] == []  # --json writes no plots unless --plots is given
    finals: dict[str, dict[str, float]] = {}
    for run in report["runs"]:
        lines = _metrics(Path(run["path"]))
        rewards = [float(m["reward/mean"]) for m in lines]
        step_times = [float(m["time/step"]) for m in lines]
        got = run["metrics"]
        assert got["reward/mean"]["final"] == rewards[-1]
        assert got["reward/mean"]["best"] == max(rewards)
        assert got["time/step"]["final"] == step_times[-1]
        assert got["time/step"]["best"] == min(step_times)
        assert got["time/step"]["best_step"] == step_times.index(min(step_times))
        assert got["wall_time"]["final"] == pytest.approx(sum(step_times))
        assert run["steps"] == 2 and run["status"] == "done"
        assert set(run["params"]) == {"learning_rate", "seed"}
        finals[run["run"]] = {"time/step": step_times[-1]}
    groups = report["groups"]
    assert [g["params"] for g in groups] == [{"learning_rate": "1e-3"}, {"learning_rate": "3e-3"}]
    for group in groups:
        values = [finals[name]["time/step"] for name in group["runs"]]
        assert len(values) == 2
        stat = group["metrics"]["time/step"]["final"]
        assert stat["mean"] == pytest.approx(statistics.fmean(values))
        assert stat["std"] == pytest.approx(statistics.stdev(values))
        assert stat["n"] == 2


def test_report_table_csv_and_plots(
    sweep: SweepRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    capsys.readouterr()
    plots = tmp_path / "plots"
    args = ["report", str(sweep.dir), "--metric", "reward/mean,time/step", "--plots", str(plots)]
    assert cookbook_main(args) == 0
    out = capsys.readouterr().out
    for run in _runs(sweep.dir):
        assert str(run["name"]) in out
    assert "groups (2)" in out
    written = sorted(plots.iterdir())
    assert [p.name for p in written] == ["reward_mean.png", "time_step.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size[0] > 600 and image.size[1] > 300
            image.verify()

    assert cookbook_main(["report", str(sweep.dir), "--csv", "--metric", "time/step"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4
    for row in rows:
        lines = _metrics(Path(row["path"]))
        assert float(row["time/step:final"]) == float(str(lines[-1]["time/step"]))
        assert row["learning_rate"] in ("1e-3", "3e-3") and row["status"] == "done"


def test_compare_shows_config_and_metric_differences(
    sweep: SweepRun, capsys: pytest.CaptureFixture[str]
) -> None:
    names = sorted(str(r["name"]) for r in _runs(sweep.dir))
    a, b = sweep.dir / names[0], sweep.dir / names[-1]  # lr 1e-3 seed 0, lr 3e-3 seed 1
    capsys.readouterr()
    args = ["report", "--compare", str(a), str(b), "--metric", "time/step", "--json"]
    assert cookbook_main(args) == 0
    result = json.loads(capsys.readouterr().out)
    config = {row["key"]: (row["a"], row["b"]) for row in result["config"]}
    assert config == {"learning_rate": ("0.001", "0.003"), "seed": ("0", "1")}
    (row,) = result["metrics"]
    a_time = float(str(_metrics(a)[-1]["time/step"]))
    b_time = float(str(_metrics(b)[-1]["time/step"]))
    assert row["a_final"] == a_time and row["b_final"] == b_time
    assert row["final_diff"] == pytest.approx(b_time - a_time)
    assert cookbook_main(["report", "--compare", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    assert "learning_rate" in table and "0.003" in table


def test_notebook_api_reads_the_sweep(sweep: SweepRun) -> None:
    from cookbook.analysis import load_sweep, summarize, to_dataframe, to_records

    loaded = load_sweep(sweep.dir)
    assert loaded.swept_keys == ["learning_rate", "seed"]
    assert [r.params for r in loaded.runs] == [
        {"learning_rate": lr, "seed": s} for lr in ("1e-3", "3e-3") for s in ("0", "1")
    ]
    records = to_records(loaded)
    assert len(records) == 8 and {r["step"] for r in records} == {0, 1}
    first = _metrics(loaded.runs[0].path)[0]
    assert records[0]["reward/mean"] == first["reward/mean"]
    assert records[0]["wall_time"] == first["time/step"]
    rows = summarize(sweep.dir, ["reward/mean"])
    assert [r["steps"] for r in rows] == [2, 2, 2, 2]
    pandas = pytest.importorskip("pandas")
    frame = to_dataframe(loaded, ["reward/mean"])
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 8
    assert set(frame.columns) >= {"run", "learning_rate", "seed", "step", "reward/mean"}


@pytest.mark.slow
def test_sft_sweep_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sw"
    command = [sys.executable, "-m", "cookbook", "sweep", "sft", "--dataset", "tictactoe-demos"]
    command += ["--dir", str(sweep_dir), "--parallel", "2", "learning_rate=1e-3,3e-3"]
    command += ["max_steps=3", "batch_size=8", "eval_every=0"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 of 2 runs done" in done.stdout
    assert cookbook_main(["report", str(sweep_dir), "--json", "--metric", "train/loss"]) == 0
    report = json.loads(capsys.readouterr().out)
    for run in report["runs"]:
        losses = [m["train/loss"] for m in _metrics(Path(run["path"])) if "train/loss" in m]
        assert run["steps"] == 3  # the closing eval record is not a training step
        assert run["metrics"]["train/loss"]["final"] == losses[-1]
        assert run["metrics"]["train/loss"]["best"] == min(losses)


@pytest.mark.slow
def test_a_run_killed_after_a_checkpoint_resumes_from_it(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sw"
    command = [sys.executable, "-m", "cookbook", "sweep", "rl", "--env", "tictactoe"]
    tiny = [a for a in TINY if not a.startswith("max_steps=")]
    command += ["--dir", str(sweep_dir), "seed=0,1", *tiny, "max_steps=30", "save_every=5"]
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    run0 = sweep_dir / "000-seed=0"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:  # past a checkpoint, mid-run
        metrics = run0 / "metrics.jsonl"
        if (run0 / "checkpoints.json").exists() and metrics.exists() and len(_metrics(run0)) >= 7:
            break
        time.sleep(0.05)
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait()
    line0 = (run0 / "metrics.jsonl").read_text().splitlines()[0]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = {str(r["name"]): r for r in _runs(sweep_dir)}
    assert runs["000-seed=0"]["attempts"] == 2 and runs["001-seed=1"]["attempts"] == 1
    for name in runs:
        assert [m["step"] for m in _metrics(sweep_dir / name)] == list(range(30))
    assert (run0 / "metrics.jsonl").read_text().splitlines()[0] == line0  # resumed, not redone
