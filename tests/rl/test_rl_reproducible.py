"""What a seeded RL run repeats: with `deterministic=true` two runs, one of them stopped and
resumed, log the same numbers bit for bit (multi-turn episodes, a KL reference, evals); the evals
run once before RL, into the step-0 line, and a resumed run keeps that result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import chz
import pytest

from cookbook.runs.metrics import MetricsLog, MetricValue

if TYPE_CHECKING:
    from cookbook.rl.train import Config

Record = dict[str, MetricValue]


def _config(log_dir: Path, **changes: object) -> Config:
    from cookbook_rl_fixture.envs import LettersBuilder
    from cookbook_rl_fixture.evals import EchoEvalBuilder

    from cookbook.rl.train import Config

    config = Config(
        env=LettersBuilder(turns=2),
        log_dir=str(log_dir),
        group_size=4,
        groups_per_batch=2,
        max_tokens=3,
        max_steps=3,
        kl_penalty_coef=0.1,
        eval_every=2,
        save_every=2,
        evals={"echo": EchoEvalBuilder(num_prompts=2)},
        deterministic=True,
        show_progress=False,
    )
    return chz.replace(config, **changes)


def _numbers(log_dir: Path) -> list[Record]:
    """The metric lines less the timings (wall time is never repeatable) and the share of the run
    done (a run of 2 steps resumed to 4 was at 1/2 after its first step)."""
    return [
        {k: v for k, v in record.items() if not k.startswith(("time/", "progress/"))}
        for record in MetricsLog(log_dir / "metrics.jsonl").read()
    ]


def test_deterministic_runs_repeat_exactly_and_resume_exactly(
    rl_plugin: Path, tmp_path: Path
) -> None:
    """Run a goes straight to step 3; run b stops after 2 steps (a checkpoint) and is resumed.
    b's first two lines repeat a's from scratch, its last one after a resume."""
    from cookbook.rl.train import main

    main(_config(tmp_path / "a"))
    first = _numbers(tmp_path / "a")
    assert [r["step"] for r in first] == [0, 1, 2]
    assert all(r["optim/skipped"] == 0.0 for r in first)  # every step really trained
    main(_config(tmp_path / "b", max_steps=2))
    main(_config(tmp_path / "b"))
    assert _numbers(tmp_path / "b") == first


def test_evals_run_before_rl_into_the_step_0_line_once(rl_plugin: Path, tmp_path: Path) -> None:
    from cookbook.rl.summary import summary_text
    from cookbook.rl.train import main

    config = _config(tmp_path, deterministic=False, kl_penalty_coef=0.0, max_steps=2)
    main(chz.replace(config, max_steps=1, eval_every=1))
    (line,) = _numbers(tmp_path)
    before = {k for k in line if k.startswith("eval_before_rl/")}
    assert before == {
        "eval_before_rl/echo/ascii_fraction",
        "eval_before_rl/echo/mean_tokens",
        "eval_before_rl/echo/mean_logprob",
        "eval_before_rl/test/reward/mean",
        *(k.replace("eval/", "eval_before_rl/", 1) for k in line if k.startswith("eval/test/")),
    }
    # Step 0 also evaluated after its update (eval_every=1): both results, apart.
    assert "eval/echo/mean_tokens" in line and "eval/test/reward/mean" in line

    main(config)  # resumed at step 1: the evals before RL do not run again
    lines = _numbers(tmp_path)
    assert [r["step"] for r in lines] == [0, 1]
    assert lines[0] == line and not any(k.startswith("eval_before_rl/") for k in lines[1])
    text = summary_text(tmp_path, "letters", 1, 1.0, stopped_by_time=False)
    assert any(
        row.split()[:5] == ["eval", "echo", "before", "RL", "step"] for row in text.split("\n")
    )

    off = chz.replace(config, log_dir=str(tmp_path / "off"), eval_before_rl=False)
    main(off)
    assert not any(k.startswith("eval_before_rl/") for r in _numbers(tmp_path / "off") for k in r)


def test_the_serial_client_has_one_request_in_flight(rl_plugin: Path) -> None:
    from tinker import types as tinker_types

    from cookbook.backends import make_service_client
    from cookbook.rl.serial_sampling import Gate, SerialSamplingClient

    inner = make_service_client("local").create_sampling_client(base_model="tiny")
    gate = Gate()
    client = SerialSamplingClient(inner, gate)
    prompt = tinker_types.ModelInput.from_ints([1, 2, 3])

    async def many() -> list[list[int]]:
        params = [tinker_types.SamplingParams(max_tokens=3, seed=i) for i in range(6)]
        responses = await asyncio.gather(*(client.sample(prompt, 1, p) for p in params))
        await asyncio.gather(*(client.compute_logprobs(prompt) for _ in range(3)))
        return [list(r.sequences[0].tokens) for r in responses]

    tokens = asyncio.run(many())
    assert gate.most_in_flight == 1 and gate.in_flight == 0
    alone = inner.sample(prompt, 1, tinker_types.SamplingParams(max_tokens=3, seed=4)).result()
    assert tokens[4] == list(alone.sequences[0].tokens)
    assert client.sample(prompt, 1, tinker_types.SamplingParams(max_tokens=2, seed=4)).result()

    async def refused() -> None:  # the backend refuses it; the slot is freed for the next one
        await client.sample(prompt, 0, tinker_types.SamplingParams(max_tokens=1))

    with pytest.raises(ValueError):
        asyncio.run(refused())
    assert gate.in_flight == 0
