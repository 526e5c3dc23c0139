"""The plugin as users meet it: registration, the contract checks, and the three-command RLHF path
(train a judge, check its accuracy, RL against it) through `cookbook` itself, on small sizes."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from cookbook_pairwise.plugin import RECOMMENDED_RUN

from cookbook.cli import main as cookbook_main
from cookbook.registry.catalog import Catalog
from cookbook.testing import (
    assert_dataset_contract,
    assert_env_contract,
    assert_eval_contract,
    assert_preference_model_contract,
)


def test_registered_through_the_entry_point() -> None:
    points = {ep.name: ep.value for ep in entry_points(group="cookbook")}
    assert points.get("pairwise") == "cookbook_pairwise.plugin"
    catalog = Catalog.discover()
    spec = catalog.get_env("pairwise")
    assert spec.distribution == "cookbook-env-pairwise"
    assert spec.warm_start_dataset == "pairwise-warmup"
    assert spec.recommended == RECOMMENDED_RUN
    assert catalog.get_dataset("comparisons").distribution == "cookbook-env-pairwise"
    for name in ("pairwise-win-rate", "comparison-accuracy"):
        assert catalog.get_eval(name).distribution == "cookbook-env-pairwise"
    names = [s.name for s in catalog.list("preference_model") if "pairwise" in s.distribution]
    assert names == ["judge", "length", "trained", "vowels"]


def test_preference_models_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cookbook_main(["list", "preference-models", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["trained"]["kind"] == "preference_model"
    assert cookbook_main(["describe", "preference-model", "judge"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("preference model judge  (from cookbook-env-pairwise")
    assert "judge[:ARG],KEY=VALUE" in out and "prompt_style" in out
    assert cookbook_main(["check", "length", "preference_model.target=3"]) == 0
    assert "preference model length: passed" in capsys.readouterr().out
    # The form preference models are named in elsewhere: NAME:ARG[,KEY=VALUE...].
    assert cookbook_main(["check", "length:3", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["target"] == "length" and report["passed"]
    assert cookbook_main(["check", "cookbook-env-pairwise:length:3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["passed"]
    assert cookbook_main(["describe", "preference-model", "trained:runs/judge,mode=sample"]) == 0
    assert capsys.readouterr().out.startswith("preference model trained  (from")
    # A bad argument fails the config check, as a bad preference_model.KEY=VALUE does.
    assert cookbook_main(["check", "trained:/no/such/run", "--json"]) == 1
    (failed,) = json.loads(capsys.readouterr().out)
    assert "no trained judge at '/no/such/run'" in json.dumps(failed)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["check", "pairwise:x"], "'pairwise' is an env, not a preference model"),
        (["check", "vowels:3"], "vowels takes no argument; write vowels"),
        (["check", "length:3", "--kind", "env"], "name the env alone"),
    ],
)
def test_check_spec_mistakes_are_one_line(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cookbook_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_preference_models_keep_the_contract() -> None:
    assert_preference_model_contract("vowels")
    assert_preference_model_contract("length", ["target=4"])
    assert_preference_model_contract("judge")  # an untrained tiny model, both orders


def test_env_keeps_the_contract_with_a_rule_and_a_model_judge() -> None:
    assert_env_contract("pairwise", ["num_test_prompts=4"])
    assert_env_contract("pairwise", ["preference_model=length:4", "comparisons_per_completion=2"])
    # An untrained tiny judge in both orders: symmetric, deterministic, never loses a group.
    assert_env_contract("pairwise", ["preference_model=judge:tiny"])


def test_datasets_and_evals_keep_the_contract() -> None:
    assert_dataset_contract("comparisons", ["num_examples=64", "num_test=16"])
    assert_dataset_contract("pairwise-warmup", ["num_examples=64", "num_test=16"])
    assert_eval_contract("pairwise-win-rate", ["num_prompts=8"])
    assert_eval_contract("comparison-accuracy", ["num_test=16"])


def _metrics(path: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_three_commands_train_check_and_use_a_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    judge_dir = tmp_path / "judge"
    # 1. Train the judge (a few steps: this checks the plumbing, the benchmark the learning).
    assert (
        cookbook_main(
            [
                "sft",
                "--dataset",
                "comparisons",
                "dataset.num_examples=64",
                "dataset.num_test=16",
                "batch_size=16",
                "max_steps=3",
                f"log_dir={judge_dir}",
            ]
        )
        == 0
    )
    # 2. Its held-out accuracy, with the evaluated checkpoint as the judge.
    out_file = tmp_path / "accuracy.json"
    assert (
        cookbook_main(
            [
                "eval",
                "--eval",
                "comparison-accuracy",
                "eval.num_test=16",
                f"load_checkpoint_path={judge_dir}",
                f"output_path={out_file}",
            ]
        )
        == 0
    )
    metrics = json.loads(out_file.read_text(encoding="utf-8"))["metrics"]
    assert metrics["eval/comparison-accuracy/comparisons"] == 16
    assert 0.0 <= metrics["eval/comparison-accuracy/accuracy"] <= 1.0
    assert metrics["eval/comparison-accuracy/judge_failure_rate"] == 0.0
    # `cookbook check` takes the judge as `env.preference_model` does.
    assert cookbook_main(["check", f"trained:{judge_dir}"]) == 0
    assert "preference model trained: passed" in capsys.readouterr().out
    # 3. RL against it, with the hidden rule watching.
    rl_dir = tmp_path / "rl"
    assert (
        cookbook_main(
            [
                "rl",
                "--env",
                "pairwise",
                f"env.preference_model=trained:{judge_dir}",
                "env.monitor=vowels",
                "env.comparisons_per_completion=2",
                "group_size=4",
                "groups_per_batch=4",
                "max_steps=2",
                "warm_start.steps=10",
                "warm_start.batch_size=16",
                "evals=pairwise-win-rate",
                f"log_dir={rl_dir}",
            ]
        )
        == 0
    )
    capsys.readouterr()
    records = _metrics(rl_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert r["rollout/trajectories"] == 16
        assert r["env/judge_failure_rate"] == 0.0
        assert 0.0 <= r["env/order_agreement"] <= 1.0
        assert 0.0 <= r["env/monitor_score"] <= 1.0
        assert r["env/comparisons"] == 2.0
    final = records[-1]
    # The eval compares with the run's start (the end of its warm start) by the default rule.
    assert 0.0 <= final["eval/pairwise-win-rate/win_rate"] <= 1.0
    assert final["eval/pairwise-win-rate/reference_format_ok"] >= 0.0


def test_mistakes_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = cookbook_main(["rl", "--env", "pairwise", "env.preference_model=vowel", "max_steps=1"])
    err = capsys.readouterr().err
    assert status == 2
    assert "did you mean 'vowels'" in err and "Traceback" not in err
    status = cookbook_main(
        ["rl", "--env", "pairwise", "env.preference_model=trained:/no/such/run", "max_steps=1"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "no trained judge at '/no/such/run'" in err and "Traceback" not in err
