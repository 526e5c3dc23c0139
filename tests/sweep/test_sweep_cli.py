"""`cookbook sweep` before any run starts: the plan (--dry-run), keys and values checked the way
the training command checks them, and one `error:` line for each mistake."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main

pytest.importorskip("cookbook_tictactoe")


def _sweep(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cookbook_main(["sweep", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_dry_run_prints_the_plan_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep_dir = tmp_path / "sw"
    status, out, err = _sweep(
        capsys,
        "rl",
        "--env",
        "tictactoe",
        "--dir",
        str(sweep_dir),
        "--dry-run",
        "--parallel",
        "2",
        "learning_rate=1e-3,3e-3",
        "env.opponent=random,optimal",
        "seed=0..1",
        "evals=tictactoe-vs-random,tictactoe-vs-optimal",  # a list key: one value, not swept
        "max_steps=3",
    )
    assert status == 0, err
    assert "8 runs of cookbook rl --env tictactoe, 2 at a time" in out
    assert "every run: evals=tictactoe-vs-random,tictactoe-vs-optimal max_steps=3" in out
    assert "000-learning_rate=1e-3-env.opponent=random-seed=0" in out
    assert "007-learning_rate=3e-3-env.opponent=optimal-seed=1" in out
    assert not sweep_dir.exists()


def test_sft_sweeps_take_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _sweep(
        capsys,
        "sft",
        "--dataset",
        "tictactoe-demos",
        "--dry-run",
        "--samples",
        "3",
        "learning_rate=loguniform:1e-4:1e-2",
        "batch_size=8,16",
    )
    assert status == 0, err
    assert "6 runs of cookbook sft --dataset tictactoe-demos" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["rl", "--env", "tictactoe", "lerning_rate=1e-3,3e-3"], "did you mean 'learning_rate'"),
        (["rl", "--env", "tictactoe", "env.opponet=random,optimal"], "'env.opponent'"),
        (["rl", "--env", "tictactoe", "group_size=4,x"], "bad value 'x' for group_size"),
        (["rl", "--env", "tictactoe", "learning_rate=loguniform:0:1", "--samples", "2"], "LOW > 0"),
        (["rl", "--env", "tictactoe", "learning_rate=uniform:1e-3"], "uniform:LOW:HIGH"),
        (["rl", "--env", "tictactoe", "log_dir=x,y"], "pick the sweep directory with --dir"),
        (["rl", "--env", "tictactoe", "--parallel", "0", "seed=0,1"], "--parallel must be"),
        (["rl", "--env", "tictactoe", "--fresh=yes"], "cookbook sweep:"),
        (["rl", "--env", "tictacto", "seed=0,1"], "tictactoe"),
        (["rl", "--dataset", "tictactoe-demos", "seed=0,1"], "takes --env, not --dataset"),
        (["rl", "seed=0,1"], "needs --env NAME"),
        (["dpo", "--env", "tictactoe"], "invalid choice: 'dpo'"),
        (["sft", "--dataset", "tictactoe-demos", "lr_schedule=linear,wavy"], "lr_schedule"),
    ],
)
def test_bad_input_is_one_error_line(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _sweep(capsys, *args, "--dir", str(tmp_path / "sw"))
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert not (tmp_path / "sw").exists()


def test_a_directory_that_is_not_a_sweep_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    status, _, err = _sweep(capsys, "rl", "--env", "tictactoe", "--dir", str(tmp_path), "seed=0,1")
    assert status == 2 and "is not empty and holds no sweep" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_ray_address_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    status, _, err = _sweep(
        capsys, "rl", "--env", "tictactoe", "--dir", str(tmp_path / "sw"), "--ray", address
    )
    assert status == 2 and err.count("\n") == 1
    assert f"cannot reach a Ray cluster at {address}" in err and "ray start --head" in err
    status, _, err = _sweep(capsys, "rl", "--env", "tictactoe", "--ray", "http://:x", "seed=0,1")
    assert status == 2 and "not an address" in err
