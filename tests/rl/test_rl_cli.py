"""`cookbook rl`: resume after a real SIGKILL, one-line errors, help, warm start from the registry."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rl_fixture_support import cookbook_command, subprocess_env

from cookbook.cli import main as cookbook_main


def _steps(log_dir: Path) -> list[int]:
    return [
        json.loads(line)["step"] for line in (log_dir / "metrics.jsonl").read_text().splitlines()
    ]


def test_sigkill_mid_run_then_same_command_resumes(rl_fixture_site: Path, tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    command = cookbook_command(
        "rl",
        "--env",
        "fixture-letters",
        "max_steps=8",
        "save_every=2",
        "eval_every=0",
        "env.test_batches=0",
        "env.step_delay_s=0.25",  # slow enough to be killed mid-run
        f"log_dir={log_dir}",
    )
    env = subprocess_env(rl_fixture_site)
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = log_dir / "metrics.jsonl"
    deadline = time.monotonic() + 60
    # Kill once a checkpoint exists and a step after it is logged, so the rerun drops that line.
    while time.monotonic() < deadline and first.poll() is None:
        if metrics.exists() and len(_steps(log_dir)) >= 3:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_at = _steps(log_dir)
    assert 3 <= len(killed_at) < 8
    line0 = metrics.read_text().splitlines()[0]

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert _steps(log_dir) == list(range(8))
    assert metrics.read_text().splitlines()[0] == line0  # step 0 was not run again
    index = json.loads((log_dir / "checkpoints.json").read_text())
    assert index[-1]["step"] == 8
    assert "8 steps run" not in second.stdout  # it resumed rather than starting over


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cookbook_main(["rl", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env", "fixture-lettrs"], "fixture-letters"),
        (["--env", "fixture-letters", "learning_rat=1"], "did you mean 'learning_rate'"),
        (["--env", "fixture-letters", "env.turns=abc"], "turns"),
        (["--env", "fixture-letters", "loss_fn=cross_entropy"], "not an RL loss"),
        (["--env", "fixture-letters", "--frsh"], "unknown option '--frsh'"),
        (["max_steps=3"], "cookbook rl --env NAME"),
        (
            ["--env", "fixture-letters", "env.fail_groups=4", "env.test_batches=0"],
            "max_error_fraction",
        ),
    ],
)
def test_bad_input_is_one_line(
    rl_plugin: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    status, _, err = _run_cli(capsys, *args, f"log_dir={tmp_path / 'run'}")
    assert status == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]


def test_help_lists_run_and_env_options(
    rl_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run_cli(capsys, "--env", "fixture-letters", "--help")
    assert status == 0
    for option in (
        "learning_rate",
        "warm_start_steps",
        "max_steps_off_policy",
        "env fixture-letters",
    ):
        assert option in out
    assert "step_delay_s" in out and "fail_groups" in out  # the env's own options
    assert "max_tokens=4" in out  # the env's recommended settings


def test_registered_warm_start_dataset_runs_first(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "warm"
    status, out, err = _run_cli(
        capsys,
        "--env",
        "fixture-warm",
        "max_steps=1",
        "warm_start_steps=2",
        "warm_start_batch_size=4",
        "env.test_batches=0",
        f"log_dir={log_dir}",
    )
    assert status == 0, err
    assert "1 steps run" in out
    config = json.loads((log_dir / "config.json").read_text())["config"]
    assert config["warm_start"]["dataset_builder"]["__chz__"].endswith(":ReplyDatasetBuilder")
    assert config["group_size"] == 4  # from the env's recommended settings
    assert len((log_dir / "warm_start_metrics.jsonl").read_text().splitlines()) == 2


def test_no_warm_start_without_dataset_or_when_switched_off(rl_plugin: Path) -> None:
    from cookbook.configs import make_config
    from cookbook.registry.catalog import load_catalog
    from cookbook.rl.train_cli import CLIConfig, build_config

    catalog = load_catalog()

    def warm(env: str, *args: str) -> object:
        spec = catalog.get_env(env)
        cli = make_config(CLIConfig, list(args))
        return build_config(cli, spec.name, spec.load()(), spec, catalog).warm_start

    assert warm("fixture-warm") is not None
    assert warm("fixture-letters") is None
    assert warm("fixture-warm", "warm_start_steps=0") is None
    assert warm("fixture-warm", "load_checkpoint_path=runs/x") is None
