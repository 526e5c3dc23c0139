"""`cookbook sweep --ray`: runs as tasks of a real Ray cluster started on this machine, on the
loopback interface only (slow: a cluster takes seconds to start; needs `pip install ray`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("cookbook_tictactoe")
pytest.importorskip("ray")

TINY = [
    "max_steps=2",
    "warm_start.steps=0",
    "group_size=2",
    "groups_per_batch=2",
    "eval_every=0",
    "evals=",
    "kl_penalty_coef=0",
]


def _ray_env(home: Path) -> dict[str, str]:
    """Ray on 127.0.0.1 (it otherwise binds the machine's network address), without auth
    tokens, keeping its files out of the real home directory."""
    env = dict(os.environ)
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # Ray's switch for "this machine only"
        RAY_AUTH_MODE="disabled",
        HOME=str(home),
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_sweep(sweep_dir: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["done", "done"]
    for run in state["runs"]:
        run_dir = sweep_dir / run["name"]
        steps = [
            json.loads(line)["step"]
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        ]
        assert steps == [0, 1]
        config = json.loads((run_dir / "config.json").read_text())["config"]
        assert config["log_dir"] == str(run_dir.absolute())  # absolute: workers run elsewhere
        assert config["num_threads"] == 1


@pytest.mark.slow
def test_sweep_on_a_private_local_ray(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sw"
    command = [sys.executable, "-m", "cookbook", "sweep", "rl", "--env", "tictactoe"]
    command += ["--dir", str(sweep_dir), "--ray", "local", "seed=0,1", *TINY]
    done = subprocess.run(
        command, cwd=tmp_path, env=_ray_env(tmp_path), capture_output=True, text=True, timeout=400
    )
    _check_sweep(sweep_dir, done)


@pytest.mark.slow
def test_sweep_on_a_ray_cluster_by_address(tmp_path: Path) -> None:
    port = _free_port()
    env = _ray_env(tmp_path)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must be short
    start = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block"]
    start += ["--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2"]
    start += ["--include-dashboard=false", "--temp-dir", ray_tmp]
    head = subprocess.Popen(
        start,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        sweep_dir = tmp_path / "sw"
        command = [sys.executable, "-m", "cookbook", "sweep", "rl", "--env", "tictactoe"]
        command += ["--dir", str(sweep_dir), "--ray", f"127.0.0.1:{port}", "seed=0,1", *TINY]
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400
        )
        _check_sweep(sweep_dir, done)
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head and every daemon it started
        head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
