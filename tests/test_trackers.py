"""`cookbook.trackers`: trackio for real (local SQLite, no account), resume without duplicate
steps, a failing tracker dropped with one warning, and one-line errors for unknown or missing
trackers."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from cookbook.errors import UserError
from cookbook.trackers import NullSink, _Trackers, open_trackers, parse_tracker_names

# Two attempts of one run, as a loop resumed from a checkpoint at step 2 would send them: the
# second attempt reruns steps 2 and 3 (with other values), then goes on.
_SCRIPT = """
import math, sys
from cookbook.trackers import open_trackers

log_dir = sys.argv[1]
config = {"__chz__": "m:Config", "learning_rate": 0.002, "env": {"__chz__": "m:Env", "opponent": "random"}}
sink = open_trackers("trackio", "run-a", config, log_dir, project="cookbook-test")
for step in range(4):
    sink.log(step, {"step": step, "reward/mean": step / 10, "note": "text", "bad": math.nan})
sink.close()
sink = open_trackers(["trackio"], "run-a", config, log_dir, project="cookbook-test")
for step in range(2, 6):
    sink.log(step, {"reward/mean": 1 + step / 10})
sink.close()
"""


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="trackio not installed")
def test_trackio_mirrors_metrics_locally_and_resumes_without_duplicates(tmp_path: Path) -> None:
    store = tmp_path / "trackio"
    log_dir = tmp_path / "run"
    env = {"TRACKIO_DIR": str(store), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(log_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Trackio" not in done.stdout  # trackio's chatter goes to stderr

    (db,) = store.glob("*.db")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
        (config_text,) = conn.execute("SELECT config FROM configs").fetchone()
    names = {name for name, _, _ in rows}
    assert len(names) == 1 and names.pop().startswith("run-a-")  # one run, resumed
    steps = [step for _, step, _ in rows]
    assert steps == [0, 1, 2, 3, 4, 5]  # the rerun steps 2 and 3 were not sent twice
    values = [json.loads(blob) for _, _, blob in rows]
    assert [v["reward/mean"] for v in values] == [0.0, 0.1, 0.2, 0.3, 1.4, 1.5]
    assert all(set(v) == {"reward/mean"} for v in values)  # numbers only, NaN dropped
    config = json.loads(config_text)
    assert config["learning_rate"] == 0.002 and config["env.opponent"] == "random"
    state = json.loads((log_dir / "trackers.json").read_text())
    assert state["last_step"] == 5 and state["trackio"]["name"].startswith("run-a-")


class _Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.closed = False

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        self.steps.append(step)

    def close(self) -> None:
        self.closed = True


class _Broken(_Recorder):
    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        raise ConnectionError("server went away\nsecond line")


def test_a_failing_tracker_is_dropped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, broken = _Recorder(), _Broken()
    sink = _Trackers({"good": good, "broken": broken}, tmp_path / "trackers.json", {})
    for step in range(3):
        sink.log(step, {"x": 1.0})
    sink.close()
    err = capsys.readouterr().err
    assert err.count("warning: log_to=broken failed (server went away)") == 1
    assert err.count("\n") == 1
    assert good.steps == [0, 1, 2] and good.closed and not broken.closed


def test_names_are_checked(tmp_path: Path) -> None:
    assert parse_tracker_names("trackio, wandb,trackio") == ["trackio", "wandb"]
    assert parse_tracker_names(None) == [] and parse_tracker_names("") == []
    assert isinstance(open_trackers([], "r", {}, tmp_path), NullSink)
    with pytest.raises(UserError, match=r"unknown tracker 'trakio' \(did you mean 'trackio'\?\)"):
        parse_tracker_names("trakio")
    with pytest.raises(UserError, match="choose from trackio, wandb"):
        open_trackers("tensorboard", "r", {}, tmp_path)
    assert not (tmp_path / "trackers.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_tracker_that_is_not_installed_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"log_to=wandb needs the wandb package: pip install"):
        open_trackers("wandb", "r", {}, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_writes_the_run_under_the_log_dir(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom cookbook.trackers import open_trackers\n"
        "sink = open_trackers('wandb', 'run-w', {'learning_rate': 0.1}, sys.argv[1])\n"
        "[sink.log(s, {'reward/mean': s / 2}) for s in range(3)]\nsink.close()\n"
    )
    env = {"WANDB_MODE": "offline", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "run" / "trackers.json").read_text())
    (run_dir,) = (tmp_path / "run" / "wandb").glob(f"offline-run-*-{state['wandb']['id']}")
    assert any(run_dir.glob("*.wandb"))


# Two runs of `cookbook sft` in one interpreter (torch and trackio imported once): the second,
# longer one resumes the first at its step-2 checkpoint.
_RUNS = """
import sys
from cookbook.cli import main
for max_steps in (2, 4):
    status = main([*sys.argv[1:], f"max_steps={max_steps}"])
    if status:
        sys.exit(status)
"""


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="trackio not installed")
def test_a_run_with_log_to_mirrors_its_metrics_lines_and_a_longer_rerun_continues(
    tmp_path: Path,
) -> None:
    store, log_dir = tmp_path / "trackio", tmp_path / "run"
    env = {"TRACKIO_DIR": str(store), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    args = ["sft", "--dataset", "jsonl", f"log_dir={log_dir}", "batch_size=4", "eval_every=0"]
    args += ["show_progress=false", "save_every=2", "log_to=trackio"]
    done = subprocess.run(
        [sys.executable, "-c", _RUNS, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    (db,) = store.glob("*.db")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_name, step, metrics FROM metrics ORDER BY id").fetchall()
    lines = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert len({name for name, _, _ in rows}) == 1  # one tracker run, continued
    assert [step for _, step, _ in rows] == [line["step"] for line in lines]
    first, mirrored = lines[0], json.loads(rows[0][2])
    assert mirrored["train/loss"] == pytest.approx(first["train/loss"])


def test_an_unknown_tracker_fails_before_the_run_directory_is_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cookbook.cli import main

    log_dir = tmp_path / "run"
    status = main(["sft", "--dataset", "jsonl", f"log_dir={log_dir}", "log_to=tensorbord"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "log_to: unknown tracker 'tensorbord'" in err
    assert not log_dir.exists()
