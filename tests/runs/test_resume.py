"""Resuming a finished run: asking for fewer (or as many) steps changes nothing, in SFT as in RL;
asking for more goes on from the last checkpoint, each step logged once."""

from __future__ import annotations

from pathlib import Path

import chz
import pytest

from cookbook.runs.metrics import MetricsLog
from cookbook.runs.run_dir import MARKER


def _files(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _steps(log_dir: Path) -> list[object]:
    return [r["step"] for r in MetricsLog(log_dir / "metrics.jsonl").read()]


def test_sft_lowering_max_steps_of_a_finished_run_changes_nothing(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_rl_fixture.sft import ReplyDatasetBuilder

    from cookbook.supervised.train import Config, main

    config = Config(
        dataset=ReplyDatasetBuilder(num_examples=8),
        log_dir=str(tmp_path / "run"),
        batch_size=4,
        max_steps=4,
        save_every=2,
        eval_every=0,
        show_progress=False,
    )
    main(config)
    finished = _files(tmp_path / "run")
    capsys.readouterr()
    for lower in (2, 4):
        result = main(chz.replace(config, max_steps=lower))
        assert "run already complete (4 steps" in capsys.readouterr().err
        assert _files(tmp_path / "run") == finished
        assert result.steps == 4 and result.final_checkpoint.endswith("step000004/state")
    main(chz.replace(config, max_steps=6))
    assert _steps(tmp_path / "run") == [0, 1, 2, 3, 4, 5]


def test_rl_lowering_max_steps_of_a_finished_run_changes_nothing(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_rl_fixture.envs import LettersBuilder

    from cookbook.rl.train import Config, main

    config = Config(
        env=LettersBuilder(test_batches=0),
        log_dir=str(tmp_path / "run"),
        group_size=2,
        groups_per_batch=2,
        max_tokens=2,
        max_steps=2,
        eval_every=0,
        save_every=1,
        show_progress=False,
    )
    main(config)
    finished = _files(tmp_path / "run")
    capsys.readouterr()
    assert main(chz.replace(config, max_steps=1)).steps_run == 0
    assert "run already complete (2 steps; max_steps=1 is lower)" in capsys.readouterr().err
    assert _files(tmp_path / "run") == finished
