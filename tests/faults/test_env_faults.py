"""Env code that blocks or lies costs its group, never the run: a `time.sleep` or a socket read
in `step` is given up after `env_step_timeout_s` (the loop goes on), outputs the runner cannot
use lose their group with the env and the cause named, and `cookbook check` reports both instead
of hanging or failing inside itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_envs import (
    BLOCKING_FAULTS,
    OUTPUT_FAULTS,
    FaultyBuilder,
    FaultyDataset,
    release_blocked_sockets,
)

from cookbook.backends.protocol import SamplingClient
from cookbook.errors import UserError
from cookbook.rl.rollouts import SamplingPolicy, TokenPolicy, do_batch_rollout
from cookbook.runs.metrics import MetricsLog
from cookbook.testing import check_env
from cookbook.testing.context import tiny_context
from cookbook.testing.policy import ScriptedPolicy


@pytest.fixture(autouse=True)
def _unblock_sockets() -> Iterator[None]:
    yield
    release_blocked_sockets()


@pytest.fixture(scope="module")
def tiny_sampler() -> SamplingClient:
    from cookbook.backends import make_service_client

    trainer = make_service_client("local", "cpu").create_lora_training_client("tiny", seed=0)
    return trainer.save_weights_and_get_sampling_client()


def _batch(fault: str, policy: TokenPolicy, timeout_s: float = 30.0) -> object:
    ctx = tiny_context(group_size=2, groups_per_batch=4)
    builders = FaultyDataset(FaultyBuilder(fault=fault, bad_groups=1), ctx).get_batch(0)
    return asyncio.run(
        do_batch_rollout(builders, policy, seed=0, sampler_step=0, step_timeout_s=timeout_s)
    )


@pytest.mark.parametrize("fault", BLOCKING_FAULTS)
def test_env_code_that_blocks_the_thread_loses_only_its_group(fault: str) -> None:
    """The blocking group is given up once its call's time is over (the sleep lasts 5 s, the
    socket forever); before, the cooperative timeout could not fire and the loop stalled."""
    policy = ScriptedPolicy(tiny_context().tokenizer)
    batch = _batch(fault, policy, timeout_s=0.5)
    assert (batch.timeouts, batch.errors, len(batch.groups_P)) == (1, 0, 3)  # type: ignore[attr-defined]
    (message,) = batch.error_messages  # type: ignore[attr-defined]
    assert (
        "group 0 (FaultyGroup): EnvTimeoutError: step blocked its thread for more than 0.5 s"
        in message
    )


def test_an_rl_run_goes_on_past_a_blocking_env(tmp_path: Path) -> None:
    from cookbook.rl.train import Config, main

    config = Config(
        env=FaultyBuilder(fault="sleep", bad_groups=1),
        log_dir=str(tmp_path / "run"),
        group_size=2,
        groups_per_batch=4,
        max_tokens=2,
        max_steps=1,
        env_step_timeout_s=0.5,
        eval_every=0,
        save_every=0,
        show_progress=False,
    )
    main(config)
    (record,) = MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    assert (record["rollout/timeouts"], record["rollout/trajectories"]) == (1, 6)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("reward_str", "FaultyGroup env 0 turn 0: step reward is '1.0' (str)"),
        ("reward_none", "step reward is None (NoneType); rewards must be finite numbers"),
        ("reward_nan", "step reward is nan (float)"),
        ("metric_str", "step metric 'turns' = 'many'; metrics map names to numbers"),
        ("observation_str", "the observation is a str, not a tinker ModelInput"),
        ("no_envs", "FaultyGroup.make_envs returned no envs"),
    ],
)
def test_outputs_the_runner_cannot_use_lose_their_group(
    tiny_sampler: SamplingClient, fault: str, says: str
) -> None:
    assert fault in (*OUTPUT_FAULTS, "no_envs")
    batch = _batch(fault, SamplingPolicy(tiny_sampler, max_tokens=2, temperature=1.0))
    assert (batch.errors, len(batch.groups_P)) == (1, 3)  # type: ignore[attr-defined]
    (message,) = batch.error_messages  # type: ignore[attr-defined]
    assert message.startswith("group 0 (FaultyGroup): EnvContractError: ") and says in message


def test_an_rl_run_of_an_env_with_bad_rewards_stops_with_one_line(tmp_path: Path) -> None:
    """The issue's repro (a None reward) used to be a TypeError traceback."""
    from cookbook.rl.train import Config, main

    config = Config(
        env=FaultyBuilder(fault="reward_none", bad_groups=4),
        log_dir=str(tmp_path / "run"),
        group_size=2,
        groups_per_batch=4,
        max_tokens=2,
        max_steps=1,
        show_progress=False,
    )
    with pytest.raises(UserError) as info:
        main(config, label="faulty")
    message = str(info.value)
    assert message.startswith("faulty: stopping, step 0: 4 of 4 groups lost (4 errors")
    assert "reward is None" in message and "\n" not in message


def test_check_times_out_on_a_blocking_env_instead_of_hanging() -> None:
    report = check_env(FaultyBuilder(fault="sleep"), step_timeout_s=0.5, check_imports=False)
    assert report.result("rollouts").failed
    assert "blocked its thread for more than 0.5 s" in report.result("rollouts").detail
    assert {r.name for r in report.failures} == {"rollouts"}


def test_check_names_the_cause_of_an_empty_group() -> None:
    report = check_env(FaultyBuilder(fault="no_envs"), check_imports=False)
    assert {r.name for r in report.failures} == {"rollouts"}
    assert "make_envs returned no envs" in report.result("rollouts").detail
