"""Where judge and reference weights come from: run directories, checkpoints, base models, and a
run's starting weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cookbook_pairwise.weights import Weights, resolve_weights, start_of_run

from cookbook.errors import UserError
from cookbook.runs.checkpoints import Checkpoint, CheckpointIndex


def _checkpoint(path: Path) -> str:
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"format": "cookbook-local/1"}), encoding="utf-8")
    return str(path)


def _run(path: Path, config: dict[str, object]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps({"command": ["cookbook", "rl"], "config": config}), encoding="utf-8"
    )
    return path


def test_run_directory_means_its_newest_checkpoint(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", {"model_name": "tiny"})
    with pytest.raises(UserError, match="no checkpoint yet"):
        resolve_weights(str(run))
    old = _checkpoint(run / "checkpoints" / "step000010" / "state")
    new = _checkpoint(run / "checkpoints" / "step000020" / "sampler")
    index = CheckpointIndex(run)
    index.add(Checkpoint(step=10, state_path=old))
    index.add(Checkpoint(step=20, state_path=old, sampler_path=new))
    assert resolve_weights(str(run)) == Weights(model_path=new)


def test_a_moved_run_finds_its_checkpoints_again(tmp_path: Path) -> None:
    run = _run(tmp_path / "before", {})
    state = _checkpoint(run / "checkpoints" / "step000005" / "state")
    CheckpointIndex(run).add(Checkpoint(step=5, state_path=state))
    moved = tmp_path / "after"
    run.rename(moved)
    assert resolve_weights(str(moved)).model_path == str(moved / "checkpoints/step000005/state")


def test_checkpoints_base_models_and_mistakes(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "ckpt")
    assert resolve_weights(ckpt) == Weights(model_path=ckpt)
    assert resolve_weights("tiny", seed=4) == Weights(base_model="tiny", seed=4)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(UserError, match="neither a run directory"):
        resolve_weights(str(tmp_path / "junk"))
    with pytest.raises(UserError, match="no weights at"):
        resolve_weights(str(tmp_path / "nowhere"))


def test_start_of_run_prefers_the_recorded_start(tmp_path: Path) -> None:
    # No record: the base model at the run's seed.
    run = _run(tmp_path / "plain", {"model_name": "tiny", "seed": 7})
    assert start_of_run(run) == Weights(base_model="tiny", seed=7)
    # Started from a checkpoint.
    ckpt = _checkpoint(tmp_path / "ckpt")
    started = _run(tmp_path / "started", {"model_name": "tiny", "load_checkpoint_path": ckpt})
    assert start_of_run(started) == Weights(model_path=ckpt)
    # A warm start: its step-0 checkpoint, not a later one.
    warm = _run(tmp_path / "warm", {"model_name": "tiny"})
    end_of_warm = _checkpoint(warm / "checkpoints" / "step000000" / "warm000300" / "state")
    later = _checkpoint(warm / "checkpoints" / "step000050" / "state")
    index = CheckpointIndex(warm)
    index.add(Checkpoint(step=0, state_path=end_of_warm))
    index.add(Checkpoint(step=50, state_path=later))
    assert start_of_run(warm) == Weights(model_path=end_of_warm)
    # The KL reference a run saved is its start too.
    reference = _checkpoint(warm / "reference" / "sampler")
    (warm / "reference.json").write_text(json.dumps({"sampler_path": reference}), encoding="utf-8")
    assert start_of_run(warm) == Weights(model_path=reference)
    with pytest.raises(UserError, match="not a run directory"):
        start_of_run(tmp_path / "ckpt")
