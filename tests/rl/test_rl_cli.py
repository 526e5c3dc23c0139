"""`cookbook rl`: resume after a real SIGKILL, one-line errors, help, the config built from the
registry (warm start, recommended settings, evals and their options), `--config` reruns."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.errors import UserError
from cookbook.runs.checkpoints import CheckpointIndex
from cookbook.runs.metrics import MetricsLog


def _steps(log_dir: Path) -> list[object]:
    return [r["step"] for r in MetricsLog(log_dir / "metrics.jsonl").read()]


def _rl_command(log_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cookbook",
        "rl",
        "--env",
        "fixture-letters",
        "max_steps=8",
        "save_every=2",
        "eval_every=0",
        "env.test_batches=0",
        f"log_dir={log_dir}",
        *args,
    ]


def test_a_crash_mid_run_then_the_same_command_resumes(
    rl_plugin: Path,
    rl_plugin_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The run SIGKILLs itself when it asks for batch 5, which it does while step 4 trains (the
    next batch's envs are made meanwhile): steps 0-3 logged, checkpoint at step 4. The same
    command then reruns step 4 and finishes. The crash happens in a subprocess, the rerun in
    this one."""
    log_dir = tmp_path / "run"
    command = _rl_command(
        log_dir,
        "env.crash_at_batch=5",
        f"env.crash_marker={tmp_path / 'crashed'}",
        "lr_schedule=linear",
        "learning_rate=1e-3",
    )
    first = subprocess.run(command, env=rl_plugin_env, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert _steps(log_dir) == [0, 1, 2, 3]
    assert [c.step for c in CheckpointIndex(log_dir).all()] == [2, 4]
    line3 = MetricsLog(log_dir / "metrics.jsonl").read()[3]

    status, out, err = _run_cli(capsys, *command[command.index("rl") + 1 :])
    assert status == 0, err
    assert _steps(log_dir) == list(range(8))
    assert MetricsLog(log_dir / "metrics.jsonl").read()[3] == line3  # step 3 was not rerun
    assert CheckpointIndex(log_dir).all()[-1].step == 8
    assert "rl fixture-letters: 4 steps run" in out  # steps 4-7, not all 8
    assert "fixture-letters step 8/8" in err  # the progress line names the env, not the dir
    # The linear decay is a function of the step: the resumed steps continue the same line.
    rates = [r["optim/learning_rate"] for r in MetricsLog(log_dir / "metrics.jsonl").read()]
    assert rates == pytest.approx([1e-3 * (1 - s / 8) for s in range(8)])


@pytest.mark.slow
def test_sigkill_from_outside_mid_run_then_same_command_resumes(
    rl_plugin_env: dict[str, str], tmp_path: Path
) -> None:
    """As above, killed by another process at whatever point the run has reached."""
    log_dir = tmp_path / "run"
    command = _rl_command(log_dir, "env.step_delay_s=0.25")  # slow enough to be killed mid-run
    first = subprocess.Popen(
        command, env=rl_plugin_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    # Kill once a checkpoint exists and a step after it is logged, so the rerun drops that line.
    while time.monotonic() < deadline and first.poll() is None:
        if len(_steps(log_dir)) >= 3:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_at = _steps(log_dir)
    assert 3 <= len(killed_at) < 8
    line0 = MetricsLog(log_dir / "metrics.jsonl").read()[0]

    second = subprocess.run(command, env=rl_plugin_env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert _steps(log_dir) == list(range(8))
    assert MetricsLog(log_dir / "metrics.jsonl").read()[0] == line0  # step 0 was not run again
    assert CheckpointIndex(log_dir).all()[-1].step == 8
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
        (["--env", "fixture-letters", "env.turnz=2"], "did you mean 'env.turns'"),
        (["--env", "fixture-letters", "env.turns=abc"], "bad value 'abc' for env.turns"),
        (["--env", "fixture-letters", "loss_fn=cross_entropy"], "not an RL loss"),
        (["--env", "fixture-letters", "--frsh"], "unknown option '--frsh'"),
        (["--env", "fixture-letters", "--max_steps=3"], "write max_steps=3, without dashes"),
        (["max_steps=3"], "cookbook rl --env NAME"),
        (["--env", "fixture-letters", "evals=fixture-ech"], "did you mean 'fixture-echo'"),
        (["--env", "fixture-letters", "evals.fixture-echo.num_promts=2"], "num_prompts"),
        (["--env", "fixture-warm", "warm_start.dataset=nope"], "unknown dataset 'nope'"),
        (["--config", "/no/such/run"], "no config file at /no/such/run"),
        (["--env", "fixture-letters", "lr_schedule=step"], "bad value 'step' for lr_schedule"),
        (["--env", "fixture-warm", "warm_start.batch_size=0"], "warm_start.batch_size must be"),
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


def test_help_lists_run_env_and_warm_start_options_with_this_commands_values(
    rl_plugin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run_cli(capsys, "--env", "fixture-warm", "learning_rate=0.25", "--help")
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["learning_rate"][:3] == ["learning_rate", "float", "0.25"]  # the command's value
    assert rows["group_size"][2] == "4"  # the env's recommended setting
    assert rows["warm_start.steps"][2] == "200" and "warm_start.dataset.num_examples" in rows
    assert "max_steps_off_policy" in rows and "base_url" in rows
    assert "env fixture-warm options:" in out
    assert "env.step_delay_s" in rows and "env.fail_groups" in rows  # the env's own options
    assert "max_tokens=4" in out  # the env's recommended settings, listed
    status, out, _ = _run_cli(capsys, "--help")
    assert status == 0 and "--env NAME" in out and "warm_start" in out


def test_registered_warm_start_dataset_runs_first(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "warm"
    status, out, err = _run_cli(
        capsys,
        "--env",
        "fixture-warm",
        "max_steps=1",
        "warm_start.steps=2",
        "warm_start.batch_size=4",
        "warm_start.dataset.num_examples=8",
        "env.test_batches=0",
        f"log_dir={log_dir}",
    )
    assert status == 0, err
    assert "1 steps run" in out
    config = json.loads((log_dir / "config.json").read_text())["config"]
    assert config["warm_start"]["dataset"]["__chz__"].endswith(":ReplyDatasetBuilder")
    assert config["warm_start"]["dataset"]["num_examples"] == 8
    assert config["group_size"] == 4  # from the env's recommended settings
    assert [r["step"] for r in MetricsLog(log_dir / "warm_start_metrics.jsonl").read()] == [0, 1]


def test_the_config_comes_from_the_registry_as_from_python(rl_plugin: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder
    from cookbook_rl_fixture.evals import BrokenEvalBuilder, EchoEvalBuilder
    from cookbook_rl_fixture.sft import ReplyDatasetBuilder

    from cookbook.rl.train import Config
    from cookbook.runs.blueprints import rl_config

    config = Config.for_env("fixture-warm", "env.turns=2", "evals=fixture-echo", seed=3)
    assert config == rl_config("fixture-warm", ["env.turns=2", "evals=fixture-echo", "seed=3"])
    assert config.env == LettersBuilder(turns=2)
    assert config.log_dir == "runs/rl-fixture-warm"
    assert (config.group_size, config.max_tokens, config.seed) == (4, 4, 3)
    assert config.evals == {"fixture-echo": EchoEvalBuilder()}
    assert config.warm_start is not None
    assert config.warm_start.dataset == ReplyDatasetBuilder()

    # An eval's options; an eval named only by its options is added; another warm-start dataset
    # (here the same one, with an option); `evals=` for none.
    config = Config.for_env(
        "fixture-letters", "evals=fixture-broken-eval", "evals.fixture-echo.num_prompts=2"
    )
    assert config.evals == {
        "fixture-broken-eval": BrokenEvalBuilder(),
        "fixture-echo": EchoEvalBuilder(num_prompts=2),
    }
    config = Config.for_env(
        "fixture-letters", "warm_start.dataset=fixture-sft", "warm_start.dataset.num_examples=3"
    )
    assert config.warm_start is not None
    assert config.warm_start.dataset == ReplyDatasetBuilder(num_examples=3)
    assert Config.for_env("fixture-letters", "evals=fixture-echo", "evals=").evals == {}


def test_warm_start_only_for_an_untrained_tiny_model_unless_switched_off(rl_plugin: Path) -> None:
    from cookbook.rl.train import Config

    assert Config.for_env("fixture-warm").warm_start is not None
    assert Config.for_env("fixture-letters").warm_start is None
    assert Config.for_env("fixture-warm", "warm_start=None").warm_start is None
    assert Config.for_env("fixture-warm", "load_checkpoint_path=runs/x").warm_start is None
    assert Config.for_env("fixture-warm", model_name="/models/some-hf-model").warm_start is None
    off = Config.for_env("fixture-warm", "warm_start.steps=0").warm_start
    assert off is not None and off.steps == 0  # the loop skips a warm start of 0 steps
    with pytest.raises(UserError, match=r"missing required field warm_start\.dataset"):
        Config.for_env("fixture-letters", "warm_start.steps=5")


def test_config_file_reruns_a_run_with_overrides(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook.rl.train import Config
    from cookbook.runs.run_dir import open_run_dir

    original = Config.for_env("fixture-warm", "env.turns=3", "evals=fixture-echo")
    run = open_run_dir(tmp_path / "run")
    run.write_config(original, argv=["test"])
    from cookbook.runs.blueprints import rl_config

    assert rl_config(None, [], config_file=str(run.config_path)) == original
    changed = rl_config(None, ["learning_rate=0.5", "env.turns=1"], config_file=str(run.path))
    assert changed.learning_rate == 0.5 and changed.env.turns == 1
    assert changed.evals == original.evals and changed.warm_start == original.warm_start
    with pytest.raises(UserError, match="not both"):
        rl_config("fixture-letters", [], config_file=str(run.config_path))
    (tmp_path / "other.json").write_text('{"learning_rate": 0.1}')
    with pytest.raises(UserError, match="holds no saved config"):
        rl_config(None, [], config_file=str(tmp_path / "other.json"))
    other_run = open_run_dir(tmp_path / "other")
    other_run.write_config(Config.for_env("fixture-letters").env)  # not an RL run's config
    with pytest.raises(UserError, match="not the config of cookbook rl"):
        rl_config(None, [], config_file=str(other_run.path))
