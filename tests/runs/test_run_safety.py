"""A run directory is never lost or corrupted: `--fresh` deletes only what a run wrote, one run
at a time (a killed one never blocks its resume), leftovers of a killed save are cleaned up,
paths survive a move, files respect the umask, and a full disk or an unwritable directory is one
line with nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import chz
import pytest
from small_fs import SmallFilesystem

from cookbook.cli import main as cookbook_main
from cookbook.errors import UserError
from cookbook.runs.checkpoints import Checkpoint, CheckpointIndex
from cookbook.runs.metrics import MetricsLog
from cookbook.runs.run_dir import MARKER, open_run_dir
from cookbook.runs.setup import start_run


@chz.chz
class _Config:
    learning_rate: float = 1e-3
    max_steps: int = 3


def _run_files(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes (to see that nothing changed)."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


# ----- --fresh deletes only what a run wrote


def test_fresh_refuses_a_directory_no_run_wrote(tmp_path: Path) -> None:
    """The issue's repro: a folder with a config.json of its own is not a run's."""
    folder = tmp_path / "P"
    (folder / "src").mkdir(parents=True)
    (folder / "config.json").write_text('{"name": "x"}')
    (folder / "notes.txt").write_text("keep")
    for fresh in (True, False):
        with pytest.raises(UserError, match="not empty and holds no cookbook run"):
            start_run(_Config(), folder, fresh=fresh)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "notes.txt", "src"]
    assert (folder / "notes.txt").read_text() == "keep"


def test_fresh_deletes_the_runs_files_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    with start_run(_Config(), folder) as run:
        run.metrics.log(0, {"x": 1.0})
        run.checkpoints.add(Checkpoint(step=1, state_path=str(folder / "checkpoints" / "s")))
        (folder / "checkpoints" / "step000001").mkdir(parents=True)
        (folder / "transcripts").mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "analysis").mkdir()
    with start_run(_Config(), folder, fresh=True) as again:
        assert again.resume_from is None and again.metrics.read() == []
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == [MARKER, "analysis", "config.json", "notes.txt"]
    assert "kept what no run wrote" in capsys.readouterr().err


def test_a_run_written_before_the_marker_is_still_recognised(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    config = {"command": ["cookbook", "rl"], "config": {"__chz__": "m:C", "seed": 0}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.jsonl").write_text('{"step": 0}\n')
    with start_run(_Config(), folder, fresh=True):
        pass
    assert not (folder / "metrics.jsonl").exists() and (folder / MARKER).exists()


# ----- one run at a time


_HOLD_LOCK = """
import sys, time
from cookbook.runs.run_dir import RunLock
RunLock.acquire(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def _hold_lock(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_and_a_killed_one_does_not_block(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    holder = _hold_lock(folder)
    try:
        with pytest.raises(UserError, match=rf"another run \(pid {holder.pid}\) is using"):
            start_run(_Config(), folder)
        with pytest.raises(UserError, match="another run"):
            start_run(_Config(), folder, fresh=True)  # nothing deleted under a live run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with start_run(_Config(), folder) as run:  # the kernel dropped the dead process's lock
        with pytest.raises(UserError, match=rf"pid {os.getpid()}"):
            start_run(_Config(), folder)  # held by this process: the same answer
        run.metrics.log(0, {"x": 1.0})
    with start_run(_Config(), folder):  # released at the end of the block
        pass


def test_the_loops_take_the_lock_before_anything_heavy(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    holder = _hold_lock(folder)
    try:
        for command in (
            ["rl", "--env", "fixture-letters"],
            ["sft", "--dataset", "fixture-sft"],
        ):
            status = cookbook_main([*command, f"log_dir={folder}"])
            err = capsys.readouterr().err
            assert status == 2
            assert err.count("\n") == 1 and f"another run (pid {holder.pid})" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# ----- what a killed save leaves behind, paths after a move, the umask


def test_leftovers_of_a_killed_save_are_cleaned_up_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    step = folder / "checkpoints" / "step000002"
    (step / ".state.tmp-abc123").mkdir(parents=True)
    (step / ".state.tmp-abc123" / "weights.pt").write_bytes(b"half")
    (step / "sampler").mkdir()
    (step / ".sampler.old-1234abcd").mkdir()  # the replaced one: its successor is in place
    (step / ".warm.old-5678abcd").mkdir()  # killed between the two renames: put back
    (step / ".warm.old-5678abcd" / "meta.json").write_text("{}")
    (folder / "reference" / ".sampler.tmp-x").mkdir(parents=True)
    (folder / ".checkpoints.json.k2j3.tmp").write_text("[")
    (folder / MARKER).touch()
    open_run_dir(folder)
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert left == [
        MARKER,
        "checkpoints",
        "checkpoints/step000002",
        "checkpoints/step000002/sampler",
        "checkpoints/step000002/warm",
        "checkpoints/step000002/warm/meta.json",
        "reference",
    ]


def test_checkpoint_paths_are_relative_and_old_absolute_ones_survive_a_move(
    tmp_path: Path,
) -> None:
    first, moved = tmp_path / "first", tmp_path / "moved"
    state = first / "checkpoints" / "step000001" / "state"
    state.mkdir(parents=True)
    index = CheckpointIndex(first)
    index.add(Checkpoint(step=1, state_path=str(state), sampler_path="tinker://run/s"))
    stored = json.loads(index.path.read_text())
    assert stored[0]["state_path"] == "checkpoints/step000001/state"
    assert stored[0]["sampler_path"] == "tinker://run/s"
    stored[0]["state_path"] = str(state.resolve())  # as older versions wrote it
    index.path.write_text(json.dumps(stored))
    shutil.move(first, moved)
    found = CheckpointIndex(moved).latest()
    assert found is not None and Path(found.state_path) == moved / "checkpoints/step000001/state"


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_run_files_respect_the_umask(tmp_path: Path, umask: int) -> None:
    before = os.umask(umask)
    try:
        with start_run(_Config(), tmp_path / "run") as run:
            run.metrics.log(0, {"x": 1.0})
            run.checkpoints.add(Checkpoint(step=1, state_path="s"))
            run.start_steps(_Config())
    finally:
        os.umask(before)
    for name in ("config.json", "metrics.jsonl", "checkpoints.json", MARKER):
        mode = (tmp_path / "run" / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~umask, (name, oct(mode))


# ----- disk full, read-only, a file in the way: one line, nothing lost


def _sft_args(log_dir: Path, *extra: str) -> list[str]:
    return [
        "sft",
        "--dataset",
        "jsonl",
        "max_steps=2",
        "batch_size=4",
        "eval_every=0",
        "save_every=1",
        "show_progress=false",
        f"log_dir={log_dir}",
        *extra,
    ]


def _one_error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    status = cookbook_main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_full_disk_is_one_line_and_the_run_resumes_after_making_room(
    small_fs: SmallFilesystem, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real 3 MB filesystem: the step-1 checkpoint (2 MB of weights and optimizer state) fits,
    the final one does not."""
    log_dir = small_fs.mount("3m") / "run"
    line = _one_error_line(capsys, _sft_args(log_dir))
    assert "disk full" in line and "rerun the same command" in line
    before = MetricsLog(log_dir / "metrics.jsonl").read()
    assert [c.step for c in CheckpointIndex(log_dir).all()] == [1]
    assert not list(log_dir.rglob(".*.tmp*"))  # the half-written save is gone
    small_fs.remount("size=16m")
    assert cookbook_main(_sft_args(log_dir)) == 0
    records = MetricsLog(log_dir / "metrics.jsonl").read()
    assert [r["step"] for r in records] == [0, 1, 2]  # 2: the closing eval
    assert records[0] == before[0]
    assert [c.step for c in CheckpointIndex(log_dir).all()] == [1, 2]


def test_a_read_only_log_dir_is_one_line(
    small_fs: SmallFilesystem, capsys: pytest.CaptureFixture[str]
) -> None:
    small_fs.mount("1m")
    small_fs.remount("ro")
    line = _one_error_line(capsys, _sft_args(small_fs.path / "run"))
    assert "Read-only file system" in line and "writable log_dir" in line


def test_a_file_in_the_log_dir_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    line = _one_error_line(capsys, _sft_args(tmp_path / "afile" / "sub"))
    assert "afile is a file, not a directory" in line
    line = _one_error_line(capsys, _sft_args(tmp_path / "afile"))
    assert "is a file; pick a directory path" in line
