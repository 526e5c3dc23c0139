"""`cookbook eval`: registered evals on their own, against the starting model or a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tinker import types as tinker_types

from cookbook.cli import main as cookbook_main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cookbook_main(["eval", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_eval_prints_a_table_and_writes_json(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "result.json"
    status, out, err = _run(
        capsys,
        "--eval",
        "fixture-echo",
        "eval.num_prompts=2",
        "eval.max_tokens=3",
        f"output_path={output}",
    )
    assert status == 0, err
    result = json.loads(output.read_text())
    metrics = result["metrics"]
    assert set(metrics) == {
        "eval/fixture-echo/ascii_fraction",
        "eval/fixture-echo/mean_tokens",
        "eval/fixture-echo/mean_logprob",
    }
    assert 0 < metrics["eval/fixture-echo/mean_tokens"] <= 3
    assert result["config"]["evals"]["fixture-echo"]["num_prompts"] == 2
    header, *rows = out.split("\n\n")[0].splitlines()
    assert header.split() == ["EVAL", "METRIC", "VALUE"]
    assert [row.split()[:2] for row in rows] == [
        ["fixture-echo", "ascii_fraction"],
        ["fixture-echo", "mean_tokens"],
        ["fixture-echo", "mean_logprob"],
    ]


def test_several_evals_and_a_failing_one(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "result.json"
    status, out, err = _run(
        capsys,
        "--eval",
        "fixture-echo,fixture-broken-eval",
        "evals.fixture-echo.num_prompts=1",
        f"output_path={output}",
    )
    assert status == 1
    result = json.loads(output.read_text())
    assert result["failures"] == {"fixture-broken-eval": "RuntimeError: fixture eval is broken"}
    assert "eval/fixture-echo/mean_tokens" in result["metrics"]
    assert "fixture eval is broken" in out
    assert err.strip().splitlines() == ["error: 1 eval(s) failed: fixture-broken-eval"]


def test_eval_of_a_checkpoint_from_a_run_directory(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook.backends import make_service_client
    from cookbook.runs.checkpoints import Checkpoint, CheckpointIndex

    # A run directory with one checkpoint of weights that differ from the starting ones (the
    # tiny model starts with a zero output head, uniform whatever the seed: train it a little).
    run = tmp_path / "run"
    trainer = make_service_client("local").create_lora_training_client("tiny", seed=0)
    tokens = list(b"hello there")
    datum = tinker_types.Datum(
        model_input=tinker_types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": tinker_types.TensorData(data=tokens[1:], dtype="int64"),
            "weights": tinker_types.TensorData(data=[1.0] * (len(tokens) - 1), dtype="float32"),
        },
    )
    trainer.forward_backward([datum], "cross_entropy").result()
    trainer.optim_step(tinker_types.AdamParams(learning_rate=0.05)).result()
    state = trainer.save_state(str(run / "checkpoints" / "step000001" / "state")).result()
    CheckpointIndex(run).add(Checkpoint(step=1, state_path=state.path))

    def echo(*extra: str) -> dict[str, float]:
        output = tmp_path / f"r{len(extra)}.json"
        status, _, err = _run(capsys, "--eval", "fixture-echo", f"output_path={output}", *extra)
        assert status == 0, err
        metrics: dict[str, float] = json.loads(output.read_text())["metrics"]
        return metrics

    base = echo()
    trained = echo(f"load_checkpoint_path={run}")
    assert trained["eval/fixture-echo/mean_logprob"] != base["eval/fixture-echo/mean_logprob"]
    assert echo(f"load_checkpoint_path={run}", "lora_rank=32") == trained


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--eval", "fixture-ech"], "fixture-echo"),
        ([], "cookbook eval --eval NAME"),
        (
            ["--eval", "fixture-echo", "eval.num_promts=2"],
            "did you mean 'evals.fixture-echo.num_prompts'",
        ),
        (["--eval", "fixture-echo,fixture-broken-eval", "eval.num_prompts=2"], "NAME.KEY=VALUE"),
        (["--eval", "fixture-echo", "evals.fixture-echo.num_promts=2"], "num_prompts"),
        (["--eval", "fixture-echo", "--config", "x.json"], "not both"),
        (["--eval", "fixture-echo", "load_checkpoint_path=/nonexistent/run"], "does not exist"),
    ],
)
def test_bad_input_is_one_line(
    rl_plugin: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    status, _, err = _run(capsys, *args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]


def test_results_json_reruns_the_eval(
    rl_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    args = ["--eval", "fixture-echo", "eval.num_prompts=2", f"output_path={first}"]
    assert _run(capsys, *args)[0] == 0
    assert _run(capsys, "--config", str(first), f"output_path={again}")[0] == 0
    one, two = json.loads(first.read_text()), json.loads(again.read_text())
    assert two["metrics"] == one["metrics"]
    assert two["config"] == {**one["config"], "output_path": str(again)}
