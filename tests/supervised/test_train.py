"""Real SFT runs of the tiny model on the local backend: learning, outputs, checkpoints, resume."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import pytest

from cookbook.errors import UserError
from cookbook.runs.checkpoints import CheckpointIndex
from cookbook.runs.config_io import load_config_file
from cookbook.runs.metrics import MetricsLog
from cookbook.supervised.datasets import all_datums
from cookbook.supervised.jsonl import JsonlDatasetBuilder
from cookbook.supervised.lengths import LongExamples
from cookbook.supervised.train import Config, SFTResult, batch_weight, learning_rate_at, main

STEPS = 60


def read_metrics(log_dir: Path) -> list[dict[str, float]]:
    """The run's metrics records (every value of these runs is a number)."""
    return cast("list[dict[str, float]]", MetricsLog(log_dir / "metrics.jsonl").read())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, SFTResult]:
    config = Config(
        dataset=JsonlDatasetBuilder(),
        log_dir=str(tmp_path_factory.mktemp("sft") / "run"),
        max_steps=STEPS,
        eval_every=20,
        save_every=30,
        show_progress=False,
    )
    return config, main(config, argv=["test"])


def test_loss_and_held_out_nll_fall(finished_run: tuple[Config, SFTResult]) -> None:
    config, result = finished_run
    records = read_metrics(result.log_dir)
    train = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in train] == list(range(STEPS))
    first = sum(r["train/loss"] for r in train[:5]) / 5
    last = sum(r["train/loss"] for r in train[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    # Held-out NLL before steps 0, 20, 40 and after the last one (its own record at STEPS).
    nll = [(r["step"], r["test/nll"]) for r in records if "test/nll" in r]
    assert [s for s, _ in nll] == [0, 20, 40, STEPS]
    assert nll[0][1] == pytest.approx(math.log(261), rel=1e-3)  # zero-init head: uniform
    assert nll[1][1] < nll[0][1] and nll[-1][1] < 0.75 * nll[0][1], nll
    assert result.last_metrics["test/nll"] == nll[-1][1]
    for r in train:
        assert r["tokens_per_s"] > 0 and r["tokens"] > 0 and r["train/tokens"] > 0
        want_lr = learning_rate_at(int(r["step"]), STEPS, config.learning_rate, "linear")
        assert r["learning_rate"] == pytest.approx(want_lr)


def test_outputs_config_and_checkpoint_index(finished_run: tuple[Config, SFTResult]) -> None:
    config, result = finished_run
    assert load_config_file(result.log_dir / "config.json") == config
    checkpoints = CheckpointIndex(result.log_dir).all()
    assert [c.step for c in checkpoints] == [30, STEPS]
    assert checkpoints[-1].state_path == result.final_checkpoint
    assert checkpoints[-1].sampler_path == result.final_sampler_path
    # Checkpoints live inside the run directory.
    assert Path(result.final_checkpoint).resolve().is_relative_to(result.log_dir.resolve())


def test_checkpoint_loads_into_a_fresh_training_client(
    finished_run: tuple[Config, SFTResult],
) -> None:
    """A new client (other seed) loading the final state scores the held-out set exactly as the
    run's last evaluation did, through `forward` (training model) and through the sampler
    weights with the `nll` evaluator (sampling model)."""
    from cookbook.backends import make_service_client
    from cookbook.runs.setup import build_context
    from cookbook.supervised.nll_eval import NLLEvaluator

    config, result = finished_run
    service = make_service_client("local")
    client = service.create_lora_training_client(base_model="tiny", seed=1234)
    ctx = build_context("tiny", client, seed=config.seed, groups_per_batch=config.batch_size)
    _, test = JsonlDatasetBuilder()(ctx)
    assert test is not None
    test_D = all_datums(test)
    before = client.forward(test_D, "cross_entropy").result().metrics["loss:sum"]
    client.load_state(result.final_checkpoint).result()
    after = client.forward(test_D, "cross_entropy").result().metrics["loss:sum"]
    weight = batch_weight(test_D)
    assert after / weight == pytest.approx(result.last_metrics["test/nll"], rel=1e-4)
    assert before / weight > after / weight + 1.0
    assert result.final_sampler_path is not None
    sampler = service.create_sampling_client(model_path=result.final_sampler_path)
    nll = asyncio.run(NLLEvaluator(test_D)(sampler))["nll"]
    assert nll == pytest.approx(result.last_metrics["test/nll"], rel=1e-4)


def test_nll_eval_command_scores_the_sft_checkpoint(
    finished_run: tuple[Config, SFTResult], tmp_path: Path
) -> None:
    """The registered `nll` eval on the same held-out split gives the run's final test NLL."""
    from cookbook.cli import main as cookbook

    _, result = finished_run
    out = tmp_path / "results.json"
    args = ["eval", "--eval", "nll", f"load_checkpoint_path={result.log_dir}", f"output_path={out}"]
    assert cookbook(args) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["eval/nll/nll"] == pytest.approx(result.last_metrics["test/nll"], rel=1e-4)
    assert metrics["eval/nll/examples"] == 32


def test_a_finished_run_reruns_as_a_no_op(finished_run: tuple[Config, SFTResult]) -> None:
    config, result = finished_run
    again = main(config)
    assert again.final_checkpoint == result.final_checkpoint
    records = read_metrics(result.log_dir)
    assert [r["step"] for r in records] == [*range(STEPS), STEPS]
    assert again.last_metrics["test/nll"] == pytest.approx(result.last_metrics["test/nll"])


def test_resume_refuses_other_settings_but_extends_a_moved_run(tmp_path: Path) -> None:
    import shutil

    config = Config(
        dataset=JsonlDatasetBuilder(),
        log_dir=str(tmp_path / "a"),
        max_steps=4,
        eval_every=0,
        save_every=2,
        show_progress=False,
    )
    main(config)
    moved = tmp_path / "b"
    shutil.move(tmp_path / "a", moved)
    with pytest.raises(UserError, match=r"different settings \(learning_rate\)"):
        main(replace_log_dir(config, moved, learning_rate=1e-4))
    longer = main(replace_log_dir(config, moved, max_steps=6))
    assert Path(longer.final_checkpoint).is_relative_to(moved)
    steps = [r["step"] for r in read_metrics(longer.log_dir)]
    assert steps == [*range(6), 6]  # steps 4 and 5 added, the old final eval record replaced


def test_a_new_run_starts_from_an_earlier_run(
    finished_run: tuple[Config, SFTResult], tmp_path: Path
) -> None:
    config, result = finished_run
    follow_up = main(
        Config(
            dataset=config.dataset,
            log_dir=str(tmp_path / "next"),
            load_checkpoint_path=str(result.log_dir),  # a run directory: its newest checkpoint
            max_steps=1,
            eval_every=1,
            show_progress=False,
        )
    )
    first = read_metrics(follow_up.log_dir)[0]
    assert first["test/nll"] == pytest.approx(result.last_metrics["test/nll"], rel=1e-4)
    with pytest.raises(UserError, match="does not exist"):
        main(replace_log_dir(config, tmp_path / "bad", load_checkpoint_path="/no/such/ckpt"))


def replace_log_dir(config: Config, log_dir: Path, **changes: object) -> Config:
    import chz

    return chz.replace(config, log_dir=str(log_dir), **changes)


def test_examples_longer_than_the_context_need_max_length(tmp_path: Path) -> None:
    long_line = {
        "messages": [
            {"role": "user", "content": "x" * 600},
            {"role": "assistant", "content": "ok"},
        ]
    }
    short = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(long_line) + "\n" + json.dumps(short) + "\n", encoding="utf-8")
    builder = JsonlDatasetBuilder(path=str(path), test_fraction=0.0)

    def config(name: str, max_length: int | None) -> Config:
        return Config(
            dataset=builder,
            log_dir=str(tmp_path / name),
            batch_size=2,
            max_steps=1,
            eval_every=0,
            max_length=max_length,
            long_examples=LongExamples.DROP,
            show_progress=False,
        )

    with pytest.raises(UserError, match=r"context.*set max_length=N"):
        main(config("a", None))
    dropped = main(config("b", 64))
    assert read_metrics(dropped.log_dir)[0]["train/tokens"] == 3  # only "yo<|eos|>"


# ----------------------------------------------------------------------------- resume


def test_a_crash_mid_run_then_the_same_command_resumes_and_replays_exactly(
    rl_plugin: Path,
    rl_plugin_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cookbook sft` on the fixture plugin's dataset SIGKILLs itself when it asks for batch 3
    (steps 0-2 logged, checkpoint at step 2); the same command, run again in this process,
    resumes at step 2 and replays it exactly (same weights, optimizer state and batch)."""
    from cookbook.cli import main as cookbook

    log_dir = tmp_path / "run"
    args = [
        "sft",
        "--dataset",
        "fixture-sft",
        f"log_dir={log_dir}",
        "batch_size=4",
        "max_steps=6",
        "save_every=2",
        "eval_every=0",
        "show_progress=false",
        "dataset.crash_at_batch=3",
        f"dataset.crash_marker={tmp_path / 'crashed'}",
    ]
    first = subprocess.run(
        [sys.executable, "-m", "cookbook", *args], env=rl_plugin_env, capture_output=True
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    before = read_metrics(log_dir)
    assert [r["step"] for r in before] == [0, 1, 2]
    assert [c.step for c in CheckpointIndex(log_dir).all()] == [2]

    assert cookbook(args) == 0
    assert "sft: resuming" in capsys.readouterr().err
    after = read_metrics(log_dir)
    assert [r["step"] for r in after] == [0, 1, 2, 3, 4, 5]  # each step exactly once
    assert after[:2] == before[:2]  # steps before the checkpoint were not run again
    assert after[2]["train/loss"] == pytest.approx(before[2]["train/loss"], rel=1e-5)
    assert after[2]["tokens"] == before[2]["tokens"]
    assert [c.step for c in CheckpointIndex(log_dir).all()] == [2, 4, 6]


def sft_command(log_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cookbook",
        "sft",
        "--dataset",
        "jsonl",
        f"log_dir={log_dir}",
        "max_steps=80",
        "save_every=10",
        "eval_every=25",
        "show_progress=false",
    ]


@pytest.mark.slow
def test_resume_after_sigkill_keeps_every_step_once_and_replays_exactly(tmp_path: Path) -> None:
    """As above, on the shipped jsonl dataset, killed by another process wherever it got to."""
    log_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        sft_command(log_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    index = CheckpointIndex(log_dir)
    killed_at: list[dict[str, float]] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            latest = index.latest() if index.path.exists() else None
            if latest is not None and latest.step >= 20:
                records = read_metrics(log_dir)
                if records and records[-1]["step"] >= latest.step + 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = records
                    break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=30)
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way: {stderr[-2000:]}"
    latest = index.latest()
    assert latest is not None and latest.step >= 20
    resume_step = latest.step
    replayed_before_kill = {r["step"]: r for r in killed_at if r["step"] >= resume_step}
    assert len(replayed_before_kill) >= 2

    done = subprocess.run(
        sft_command(log_dir), env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {log_dir} at step {resume_step}/80" in done.stderr
    records = read_metrics(log_dir)
    assert [r["step"] for r in records] == [*range(80), 80]  # each step exactly once
    by_step = {r["step"]: r for r in records}
    # Same weights, optimizer state and batches after the resume: the replayed steps match.
    for step, before in replayed_before_kill.items():
        assert by_step[step]["train/loss"] == pytest.approx(before["train/loss"], rel=1e-5)
        assert by_step[step]["tokens"] == before["tokens"]
    assert [c.step for c in index.all()][-1] == 80
