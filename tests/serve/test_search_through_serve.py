"""Search targets (`cookbook/rl/search.py`) through the real tinker SDK against `cookbook serve`:
the continuation samples, the `cross_entropy` update and the checkpoints all go over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.serve.state import ServerState


@pytest.mark.filterwarnings("error::FutureWarning")
def test_cookbook_rl_search_through_cookbook_serve(
    ttt_server: tuple[str, ServerState],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, state = ttt_server
    runs_before = set(state.runs)
    log_dir = tmp_path / "search"
    status = cookbook_main(
        [
            "rl",
            "--env",
            "tictactoe",
            "backend=tinker",
            f"base_url={url}",
            "model_name=tiny-32x1",
            "search.horizon=1",
            "search.deepen_at_step=1",  # step 1 plays every branch out with the policy
            "kl_penalty_coef=0",
            "env.opponent=optimal",
            "env.seat=alternate",
            "env.opening_plies=4",
            "max_steps=2",
            "warm_start.steps=4",
            "warm_start.batch_size=8",
            "groups_per_batch=4",
            "group_size=1",
            "evals=tictactoe-vs-random",  # not the recommended exhaustive eval: 4,520 prompts
            "evals.tictactoe-vs-random.num_games=4",
            "eval_before_rl=false",
            "show_progress=False",
            f"log_dir={log_dir}",
        ]
    )
    _out, err = capsys.readouterr()
    assert status == 0, err
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    assert [r["search/horizon"] for r in records] == [1.0, 0.0]
    assert records[1]["search/policy_turns"] > 0
    assert all(r["search/roots"] == 4 and r["search/lost_roots"] == 0 for r in records)
    assert "eval/tictactoe-vs-random/win_rate" in records[-1]
    checkpoint = json.loads((log_dir / "checkpoints.json").read_text())[-1]
    assert checkpoint["step"] == 2 and str(checkpoint["state_path"]).startswith("tinker://")
    assert set(state.runs) - runs_before, "the run trained on the server"
    blocking = [r.getMessage() for r in caplog.records if "called from async" in r.getMessage()]
    assert not blocking, blocking[0]
