"""The RL loop end to end on the local backend with the tiny model and the fixture env."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import chz
import pytest

from cookbook.errors import UserError
from cookbook.runs.config_io import load_config_file
from cookbook.runs.metrics import MetricsLog, MetricValue

if TYPE_CHECKING:
    from cookbook.rl.train import Config
    from cookbook.rl.types import RLDatasetBuilder


def _letters_config(
    log_dir: Path, env: RLDatasetBuilder | None = None, **changes: object
) -> Config:
    """A small run of the letters env (4 groups of 4, 3 steps), with `changes` applied."""
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import Config

    config = Config(
        env=env or LettersBuilder(),
        log_dir=str(log_dir),
        group_size=4,
        groups_per_batch=4,
        max_tokens=4,
        max_steps=3,
        eval_every=0,
        save_every=0,
        show_progress=False,
    )
    return chz.replace(config, **changes)


def _records(log_dir: Path) -> list[dict[str, MetricValue]]:
    return MetricsLog(log_dir / "metrics.jsonl").read()


def _without_timings(records: list[dict[str, MetricValue]]) -> list[dict[str, MetricValue]]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


@pytest.fixture(scope="module")
def letters_run(rl_plugin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step two-turn run with inline evals (one of them broken) and checkpoints; serial
    sampling (`deterministic=True`), so its config replays it exactly even on a loaded machine
    (batched sampling replays only as long as the same requests happen to arrive together)."""
    from cookbook_rl_fixture.envs import LettersBuilder
    from cookbook_rl_fixture.evals import BrokenEvalBuilder, EchoEvalBuilder

    from cookbook.rl.train import main

    log_dir = tmp_path_factory.mktemp("rl") / "letters"
    config = _letters_config(
        log_dir,
        env=LettersBuilder(turns=2),
        eval_every=2,
        save_every=2,
        evals={"echo": EchoEvalBuilder(), "broken": BrokenEvalBuilder()},
        deterministic=True,
    )
    summary = main(config, argv=["test"])
    assert summary.steps_run == 3
    return log_dir


def test_a_run_writes_config_metrics_checkpoints_and_transcripts(letters_run: Path) -> None:
    config = load_config_file(letters_run / "config.json")
    assert type(config).__name__ == "Config"
    records = _records(letters_run)
    assert [r["step"] for r in records] == [0, 1, 2]
    for r in records:
        for key in (
            "reward/mean",
            "tag/letters/reward/mean",
            "episode/turns",
            "env/ascii",
            "optim/entropy",
            "optim/kl_sample_train_v1",
            "optim/tokens",
            "rollout/errors",
            "rollout/staleness_max",
            "time/step",
            "time/backend",
        ):
            assert key in r, key
        # Two turns whose observations extend each other: one datum per trajectory.
        assert r["optim/datums"] == r["rollout/trajectories"] == 16
        assert r["episode/turns"] == 2
    # Evals after step 2 (eval_every) and at the end; the broken one is reported, not fatal.
    assert ["eval/test/reward/mean" in r for r in records] == [False, True, True]
    assert records[2]["eval/echo/mean_tokens"] == 4
    assert records[2]["eval/broken/failed"] == 1
    index = json.loads((letters_run / "checkpoints.json").read_text())
    assert [c["step"] for c in index] == [2, 3]
    # Stored relative to the run directory (so a moved run finds them).
    assert all(not Path(c["state_path"]).is_absolute() for c in index)
    assert all((letters_run / c[k]).exists() for c in index for k in ("state_path", "sampler_path"))
    transcripts = sorted(p.name for p in (letters_run / "transcripts").iterdir())
    assert transcripts == ["step000000.txt", "step000001.txt", "step000002.txt"]
    text = (letters_run / "transcripts" / "step000001.txt").read_text()
    assert "say " in text and "[turn 1] observation: '<|user|>again" in text


def test_config_json_reproduces_the_run(letters_run: Path, tmp_path: Path) -> None:
    from cookbook.rl.train import Config, main

    config = load_config_file(letters_run / "config.json")
    assert isinstance(config, Config)
    main(chz.replace(config, log_dir=str(tmp_path / "again")))
    assert _without_timings(_records(tmp_path / "again")) == _without_timings(_records(letters_run))


def test_deterministic_kernels_last_as_long_as_the_run(letters_run: Path) -> None:
    """deterministic=true turns on torch's deterministic kernels and the math attention kernel
    (CUDA's defaults add in a varying order) for the run only: the process keeps its own."""
    import torch

    from cookbook.rl.train import _deterministic_kernels

    def state() -> tuple[bool, bool, bool]:
        cuda = torch.backends.cuda
        return (
            torch.are_deterministic_algorithms_enabled(),
            cuda.mem_efficient_sdp_enabled(),
            cuda.flash_sdp_enabled(),
        )

    assert getattr(load_config_file(letters_run / "config.json"), "deterministic", False)
    assert state() == (False, True, True)  # after that deterministic run
    with _deterministic_kernels(True):
        assert state() == (True, False, False)
    assert state() == (False, True, True)
    with _deterministic_kernels(False):
        assert state() == (False, True, True)


def test_resume_extends_a_finished_run_and_refuses_other_settings(
    letters_run: Path, tmp_path: Path
) -> None:
    from cookbook.rl.train import Config, main

    copy = tmp_path / "letters"
    shutil.copytree(letters_run, copy)
    config = load_config_file(copy / "config.json")
    assert isinstance(config, Config)
    before = _records(copy)
    summary = main(chz.replace(config, log_dir=str(copy), max_steps=4))
    assert summary.steps_run == 1  # resumed from the step-3 checkpoint
    after = _records(copy)
    assert [r["step"] for r in after] == [0, 1, 2, 3]
    assert after[:3] == before
    with pytest.raises(UserError, match=r"different settings \(learning_rate\).*--fresh"):
        main(chz.replace(config, log_dir=str(copy), max_steps=5, learning_rate=0.5))


def test_a_moved_run_resumes_from_its_own_files(rl_plugin: Path, tmp_path: Path) -> None:
    """The checkpoint index and reference.json keep the paths of the first place; after a move,
    resume finds the checkpoint and the KL reference weights under the new place."""
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import main

    first, moved = tmp_path / "first", tmp_path / "moved"
    env = LettersBuilder(test_batches=0)
    config = _letters_config(first, env=env, max_steps=2, save_every=1, kl_penalty_coef=0.1)
    main(config)
    shutil.move(first, moved)
    summary = main(chz.replace(config, log_dir=str(moved), max_steps=3))
    assert summary.steps_run == 1  # resumed from the step-2 checkpoint
    assert [r["step"] for r in _records(moved)] == [0, 1, 2]
    assert "kl_policy_ref" in _records(moved)[2]
    assert not first.exists()  # nothing was read or written at the old place


def test_faulty_groups_are_lost_alone_and_counted(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import main

    # The slow group sleeps a minute; a healthy env call takes microseconds, far inside 1 s.
    env = LettersBuilder(fail_groups=1, slow_groups=1, slow_s=60.0, test_batches=0)
    main(_letters_config(tmp_path, env=env, max_steps=1, env_step_timeout_s=1.0))
    for r in _records(tmp_path):
        assert (r["rollout/errors"], r["rollout/timeouts"]) == (1, 1)
        assert r["rollout/trajectories"] == 8  # the two healthy groups of four


def test_too_many_lost_groups_stop_the_run(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import RolloutFailureError, main

    env = LettersBuilder(fail_groups=3, test_batches=0)
    with pytest.raises(RolloutFailureError) as info:
        main(_letters_config(tmp_path, env=env))
    message = str(info.value)
    assert "3 of 4 groups lost (3 errors, 0 timeouts)" in message
    assert "RuntimeError: fixture env failure" in message
    assert "max_error_fraction=0.5" in message and "\n" not in message


def test_off_policy_pipelining_records_staleness_and_kl(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import main

    config = _letters_config(
        tmp_path,
        env=LettersBuilder(test_batches=0),
        max_steps=3,
        max_steps_off_policy=1,
        kl_penalty_coef=0.1,
    )
    main(config)
    records = _records(tmp_path)
    # Batch 0 is sampled by the starting weights; later ones while the previous step trains.
    assert [r["rollout/staleness_max"] for r in records] == [0, 1, 1]
    assert all("kl_policy_ref" in r for r in records)
    assert (tmp_path / "reference.json").exists()


def test_warm_start_runs_once_and_is_not_redone_on_resume(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder
    from cookbook_rl_fixture.sft import ReplyDatasetBuilder

    from cookbook.rl.train import main
    from cookbook.rl.warm_start import WarmStartConfig

    warm = WarmStartConfig(dataset=ReplyDatasetBuilder(), steps=4, batch_size=8, save_every=2)
    config = _letters_config(
        tmp_path, env=LettersBuilder(test_batches=0), max_steps=1, warm_start=warm
    )
    main(config)
    warm_log = MetricsLog(tmp_path / "warm_start_metrics.jsonl")
    first = warm_log.read()
    assert [r["step"] for r in first] == [0, 1, 2, 3]
    assert all(isinstance(r["train/loss"], float) and r["train/loss"] > 0 for r in first)
    main(chz.replace(config, max_steps=2))
    assert warm_log.read() == first
    assert [r["step"] for r in _records(tmp_path)] == [0, 1]
