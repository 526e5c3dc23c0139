"""`cookbook sft` from the command line: help, one-line errors, overrides reaching the run."""

from __future__ import annotations

import json
from pathlib import Path

import chz
import pytest

from cookbook.cli import main as cookbook
from cookbook.renderers.base import TrainOnWhat
from cookbook.runs.blueprints import default_log_dir
from cookbook.runs.config_io import load_config_file
from cookbook.runs.metrics import MetricsLog
from cookbook.supervised.jsonl import JsonlDatasetBuilder
from cookbook.supervised.train import Config


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cookbook(args)
    out, err = capsys.readouterr()
    return status, out, err


def test_help_shows_run_and_dataset_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["sft", "--dataset", "jsonl", "--help"], capsys)
    assert status == 0
    assert "learning_rate" in out and "lr_schedule" in out and "constant|linear|cosine" in out
    assert "dataset jsonl options:" in out
    assert "dataset.train_on_what" in out and "dataset.skip_bad_lines" in out
    status, out, _ = run(["sft", "--help"], capsys)
    assert status == 0 and "--dataset NAME" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sft"], "sft needs --dataset NAME"),
        (["sft", "--dataset", "jsonl", "evals=nl"], "did you mean 'nll'"),
        (["sft", "--dataset", "jsnl"], "jsonl"),
        (["sft", "--dataset", "jsonl", "learning_rat=1e-3"], "did you mean 'learning_rate'"),
        (["sft", "--dataset", "jsonl", "dataset.pth=x.jsonl"], "did you mean 'dataset.path'"),
        (["sft", "--dataset", "jsonl", "batch_size=lots"], "bad value 'lots' for batch_size"),
        (["sft", "--dataset", "jsonl", "--epochs", "3"], "unknown option '--epochs'"),
        (["sft", "--dataset", "jsonl", "batch_size=0"], "batch_size must be at least 1"),
        (["sft", "--dataset", "jsonl", "lr_schedule=step"], "lr_schedule"),
    ],
)
def test_mistakes_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = run([*args, f"log_dir={tmp_path / 'run'}"], capsys)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


def test_bad_jsonl_line_is_named_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "chats.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    bad = {"messages": [{"role": "robot", "content": "a"}]}
    path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n", encoding="utf-8")
    args = ["sft", "--dataset", "jsonl", f"dataset.path={path}", f"log_dir={tmp_path / 'run'}"]
    status, _, err = run(args, capsys)
    assert status == 2
    assert f"{path}:2: message 1 has unknown role 'robot'" in err
    assert err.count("\n") == 1


def test_overrides_reach_the_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    args = [
        "sft",
        "--dataset",
        "jsonl",
        f"log_dir={log_dir}",
        "max_steps=3",
        "batch_size=8",
        "learning_rate=1e-3",
        "lr_schedule=cosine",
        "warmup_steps=2",
        "eval_every=0",
        "max_length=40",
        "show_progress=false",
        "dataset.train_on_what=last_assistant_message",
        "dataset.test_fraction=0.2",
    ]
    status, _, err = run(args, capsys)
    assert status == 0, err
    assert "sft: final checkpoint" in err
    assert "train examples are longer than max_length=40 tokens" in err
    config = load_config_file(log_dir / "config.json")
    assert isinstance(config, Config)
    assert (config.max_steps, config.batch_size, config.learning_rate) == (3, 8, 1e-3)
    assert (config.lr_schedule, config.warmup_steps, config.max_length) == ("cosine", 2, 40)
    assert config.dataset == JsonlDatasetBuilder(
        train_on_what=TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        test_fraction=0.2,
    )
    records = MetricsLog(log_dir / "metrics.jsonl").read()
    assert [r["learning_rate"] for r in records if "learning_rate" in r] == pytest.approx(
        [5e-4, 1e-3, 1e-3]  # warm-up 1/2, 2/2, then the cosine decay at its start
    )
    # --fresh starts over; without it the same command resumes (here: already done).
    status, _, err = run([*args, "--fresh"], capsys)
    assert status == 0 and "resuming" not in err
    status, _, err = run(args, capsys)
    assert status == 0 and "already complete" in err


def test_default_log_dir_is_per_dataset() -> None:
    assert default_log_dir("sft", "jsonl") == "runs/sft-jsonl"
    assert default_log_dir("sft", "cookbook-env-math:arith") == "runs/sft-arith"
    assert default_log_dir("rl", "cookbook-env-math:arith") == "runs/rl-cookbook-env-math-arith"


def test_evals_and_their_options_from_the_command_line_and_from_python(tmp_path: Path) -> None:
    from cookbook.supervised.nll_eval import NLLEvaluatorBuilder

    args = ["evals=nll", "evals.nll.max_examples=4", f"log_dir={tmp_path / 'run'}"]
    config = Config.for_dataset("jsonl", *args, max_steps=2)
    assert config.evals == {"nll": NLLEvaluatorBuilder(max_examples=4)}
    assert config.max_steps == 2 and config.log_dir == str(tmp_path / "run")
    assert Config.for_dataset("jsonl").log_dir == "runs/sft-jsonl"


def test_config_file_reruns_the_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = tmp_path / "first"
    args = ["--dataset", "jsonl", f"log_dir={first}", "max_steps=2", "eval_every=0"]
    status, _, err = run(["sft", *args, "show_progress=false", "dataset.test_fraction=0.2"], capsys)
    assert status == 0, err
    again = tmp_path / "again"
    status, _, err = run(["sft", "--config", str(first), f"log_dir={again}"], capsys)
    assert status == 0, err
    one, two = load_config_file(first / "config.json"), load_config_file(again / "config.json")
    assert isinstance(one, Config) and isinstance(two, Config)
    assert two == chz.replace(one, log_dir=str(again))
    losses = [MetricsLog(d / "metrics.jsonl").read()[0]["train/loss"] for d in (first, again)]
    assert losses[0] == losses[1]  # the same run, replayed
