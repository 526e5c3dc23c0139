"""Every contract check can fail: small real envs, datasets and evals defined here, each broken
in one way on purpose, must fail exactly the check that covers that fault (and a well-behaved
one must pass every check)."""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import chz
import numpy as np
import pytest

from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.rl.types import (
    Action,
    Env,
    EnvGroupBuilder,
    Metrics,
    Observation,
    RLDataset,
    RLDatasetBuilder,
    StepResult,
    StopCondition,
    Trajectory,
)
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook.testing import (
    ContractReport,
    assert_env_contract,
    check_dataset,
    check_env,
    check_eval,
)

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer


def failed(report: ContractReport) -> set[str]:
    return {r.name for r in report.failures}


# --------------------------------------------------------------------------- a toy env


@dataclass
class GuessEnv(Env):
    """Guess the hidden digit in up to two turns: reward 1 for a hit, 0 otherwise."""

    target: int
    renderer: Renderer
    fault: str
    turns: int = 0

    def _prompt(self) -> Observation:
        from tinker import types as tinker_types

        if self.fault == "empty_observation":
            return tinker_types.ModelInput.empty()
        text = f"guess a digit ({self.turns} tries so far)"
        return self.renderer.build_generation_prompt([Message(role="user", content=text)])

    def _stop(self) -> StopCondition:
        return [] if self.fault == "bad_stop" else self.renderer.get_stop_sequences()

    async def initial_observation(self) -> tuple[Observation, StopCondition]:
        return self._prompt(), self._stop()

    async def step(self, action: Action) -> StepResult:
        if self.fault == "raises":
            raise ValueError("boom")
        self.turns += 1
        reply, _ = self.renderer.parse_response(action)
        hit = reply["content"].strip() == str(self.target)
        done = (hit or self.turns >= 2) and self.fault != "endless"
        reward = 1.0 if hit and done else 0.0
        if done and self.fault == "nondeterministic":
            reward = random.random()  # not derived from any seed
        if done and self.fault == "nan_reward":
            reward = math.nan
        if done and self.fault == "out_of_range":
            reward = 5.0
        return StepResult(
            reward=reward,
            episode_done=done,
            next_observation=self._prompt(),
            next_stop_condition=self._stop(),
            metrics={"hit": float(hit)},
            logs={"reply": reply["content"]},
        )


@dataclass(frozen=True)
class GuessGroup(EnvGroupBuilder):
    targets: tuple[int, ...]
    renderer: Renderer
    fault: str
    lock: object = None
    """A `threading.Lock` for the `unpicklable` fault."""

    async def make_envs(self) -> Sequence[Env]:
        return [GuessEnv(t, self.renderer, self.fault) for t in self.targets]

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        out: list[tuple[float, Metrics]] = [
            (0.0, {"turns": float(len(t.transitions))}) for t in trajectories_G
        ]
        if self.fault == "short_group_rewards":
            return out[:-1]
        if self.fault == "bad_metric":
            return [(0.0, {"turns": "many"}) for _ in trajectories_G]  # type: ignore[dict-item]  # the fault under test
        return out


class GuessDataset(RLDataset):
    def __init__(self, ctx: BuildContext, fault: str, num_batches: int) -> None:
        self.ctx = ctx
        self.fault = fault
        self.num_batches = num_batches

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        rng = random.Random(self.ctx.seed * 1_000_003 + index)
        lock = threading.Lock() if self.fault == "unpicklable" else None
        size = {
            "fixed_group_size": 4,  # right at the check's group_size=4, wrong at any other
            "half_groups": self.ctx.group_size // 2,
            "two_seat_games": 2 * self.ctx.group_size,  # group_size games of 2 seats
        }.get(self.fault, self.ctx.group_size)
        return [
            GuessGroup(
                tuple(rng.randrange(10) for _ in range(size)),
                self.ctx.renderer,
                self.fault,
                lock,
            )
            for _ in range(self.ctx.groups_per_batch)
        ]

    def __len__(self) -> int:
        return self.num_batches


@chz.chz
class GuessEnvBuilder(RLDatasetBuilder):
    """Guess a digit; `fault` breaks one part of the contract."""

    fault: str = "none"
    num_batches: int = 10

    reward_range = (0.0, 1.0)

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        if self.fault == "bad_return":
            return GuessDataset(ctx, self.fault, self.num_batches)  # type: ignore[return-value]  # the fault under test
        train = GuessDataset(ctx, self.fault, self.num_batches)
        test = GuessDataset(ctx, self.fault, 1)
        return train, test


@chz.chz
class TwoSeatGuessBuilder(GuessEnvBuilder):
    """Declares that its groups are group_size games of 2 seats each."""

    seats_per_game = 2


@chz.chz
class UnserialisableEnvBuilder(GuessEnvBuilder):
    """A config holding a function: config.json cannot store it."""

    shaping: Callable[[float], float] = abs


def test_a_well_behaved_env_passes_every_check() -> None:
    report = assert_env_contract(GuessEnvBuilder)
    statuses = {r.name: r.status for r in report.results}
    assert statuses.pop("import cost") == "skipped"  # defined in a test module
    assert set(statuses.values()) == {"passed"}, report.format()
    assert "within the declared [0, 1]" in report.result("rewards").detail
    assert "pickled copies" in report.result("determinism").detail


@pytest.mark.parametrize(
    ("fault", "broken", "says"),
    [
        ("nondeterministic", {"determinism"}, "step reward"),
        ("unpicklable", {"picklable"}, "cannot be pickled"),
        ("out_of_range", {"rewards"}, "outside the declared reward_range [0, 1]"),
        ("nan_reward", {"rewards"}, "finite"),
        ("short_group_rewards", {"group rewards"}, "3 entries for 4 trajectories"),
        ("bad_metric", {"metrics"}, "turns = 'many'"),
        ("empty_observation", {"observations"}, "is empty"),
        ("bad_stop", {"observations"}, "stop condition []"),
        ("endless", {"rollouts"}, "did not end within 5 turns"),
        ("raises", {"rollouts"}, "ValueError: boom (at testing/test_contract_failures.py"),
        ("bad_return", {"builds"}, "must return (train, test | None)"),
        ("half_groups", {"group size"}, "train group 0 has 2 envs, but the runner asked for"),
        ("fixed_group_size", {"group size"}, "built with group_size=8, train group 0 has 4"),
        ("two_seat_games", {"group size"}, "declares seats_per_game = S on its builder"),
    ],
)
def test_each_env_fault_fails_its_own_check(fault: str, broken: set[str], says: str) -> None:
    report = check_env(GuessEnvBuilder, [f"fault={fault}"], max_turns=5)
    assert not report.passed
    assert failed(report) == broken, report.format()
    details = " | ".join(r.detail for r in report.failures)
    assert says in details, report.format()
    with pytest.raises(AssertionError, match="env GuessEnvBuilder breaks the contract"):
        report.raise_for_failures()


def test_groups_of_several_seated_games_pass_when_declared() -> None:
    report = check_env(TwoSeatGuessBuilder, ["fault=two_seat_games"])
    assert report.result("group size").status == "passed", report.format()
    assert "8 envs at group_size=4, 16 at group_size=8; seats_per_game = 2" in (
        report.result("group size").detail
    )
    report = check_env(TwoSeatGuessBuilder)  # group_size envs (G/2 games) is fine too
    assert report.result("group size").status == "passed"


def test_checks_after_a_failure_are_skipped_not_failed() -> None:
    report = check_env(GuessEnvBuilder, ["fault=short_group_rewards"])
    for name in ("rewards", "metrics", "determinism"):
        assert report.result(name).status == "skipped"
        assert "needs group rewards" in report.result(name).detail
    assert report.result("observations").status == "passed"


def test_an_unpicklable_group_is_still_replayed_for_determinism() -> None:
    report = check_env(GuessEnvBuilder, ["fault=unpicklable"])
    assert report.result("determinism").status == "passed"
    assert report.result("determinism").detail.startswith("a second build replayed")


def test_a_bad_declared_range_and_an_empty_dataset_fail() -> None:
    report = check_env(GuessEnvBuilder, reward_range=(1.0, 0.0))
    assert failed(report) == {"rewards"}
    assert "declare it as (low, high)" in report.result("rewards").detail
    report = check_env(GuessEnvBuilder, ["num_batches=0"])
    assert failed(report) == {"batches"}
    assert "the train set has 0 batches" in report.result("batches").detail


def test_config_problems_fail_the_config_check() -> None:
    report = check_env(UnserialisableEnvBuilder)
    assert failed(report) == {"config"}
    assert "cannot be written to config.json" in report.result("config").detail
    assert report.result("builds").status == "skipped"
    report = check_env(GuessEnvBuilder, ["faultt=none"])
    assert "unknown key 'faultt' (did you mean 'fault'?)" in report.result("config").detail
    report = check_env(SumsDatasetBuilder)  # type: ignore[arg-type]  # the wrong kind on purpose
    assert "is not a RLDatasetBuilder subclass" in report.result("config").detail


def test_import_cost_names_the_heavy_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder module importing torch at module level fails, naming the line."""
    (tmp_path / "heavy_guess_env.py").write_text(
        "import torch  # slows `cookbook list` down\n"
        "import chz\n"
        "from cookbook.rl.types import RLDatasetBuilder\n\n\n"
        "@chz.chz\n"
        "class HeavyEnvBuilder(RLDatasetBuilder):\n"
        "    size: int = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        report = check_env(importlib.import_module("heavy_guess_env").HeavyEnvBuilder)
    finally:
        sys.modules.pop("heavy_guess_env", None)
    assert report.result("import cost").status == "failed"
    assert "builder module heavy_guess_env imports torch at module level" in (
        report.result("import cost").detail
    )
    assert "heavy_guess_env.py:1" in report.result("import cost").detail
    assert report.result("builds").status == "failed"  # and it has no __call__ either


# --------------------------------------------------------------------------- a toy dataset


class SumsDataset(SupervisedDataset):
    """Batches of `a+b=` -> `c` conversations; `fault` breaks the datums."""

    def __init__(self, ctx: BuildContext, fault: str, salt: str) -> None:
        self.ctx = ctx
        self.fault = fault
        self.salt = salt
        self.order = list(range(16))

    def _datum(self, i: int) -> tinker_types.Datum:
        from tinker import types as tinker_types

        a, b = divmod(i * 7 + 3, 10)
        messages = [
            Message(role="user", content=f"{a}+{b}={self.salt}"),
            Message(role="assistant", content=str(a + b)),
        ]
        tokens, weights = self.ctx.renderer.build_supervised_example(
            messages, TrainOnWhat.LAST_ASSISTANT_MESSAGE
        )
        inputs, targets, target_weights = tokens[:-1], tokens[1:], weights[1:]
        if self.fault == "misaligned":
            target_weights = target_weights[:-1]
        if self.fault == "unshifted":
            targets = inputs
        if self.fault == "zero_weights":
            target_weights = [0.0] * len(target_weights)
        if self.fault == "out_of_vocab":
            targets = [*targets[:-1], 5000]
        return tinker_types.Datum(
            model_input=tinker_types.ModelInput.from_ints(inputs),
            loss_fn_inputs={
                "target_tokens": tinker_types.TensorData.from_numpy(np.asarray(targets)),
                "weights": tinker_types.TensorData.from_numpy(
                    np.asarray(target_weights, dtype=np.float32)
                ),
            },
        )

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        size = self.ctx.groups_per_batch
        return [self._datum(i) for i in self.order[index * size : (index + 1) * size]]

    def __len__(self) -> int:
        return len(self.order) // self.ctx.groups_per_batch

    def set_epoch(self, seed: int = 0) -> None:
        random.Random(self.ctx.seed * 31 + seed).shuffle(self.order)


@chz.chz
class SumsDatasetBuilder(SupervisedDatasetBuilder):
    """One-digit sums; `fault` breaks one part of the contract."""

    fault: str = "none"

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        # os.urandom: a salt no seed controls, as an unseeded shuffle or sample would be
        salt = os.urandom(6).hex() if self.fault == "nondeterministic" else ""
        return SumsDataset(ctx, self.fault, salt), SumsDataset(ctx, self.fault, salt)


def test_a_well_behaved_dataset_passes_every_check() -> None:
    report = check_dataset(SumsDatasetBuilder)
    assert report.passed, report.format()
    assert "targets are the input shifted by one" in report.result("datums").detail


@pytest.mark.parametrize(
    ("fault", "broken", "says"),
    [
        ("misaligned", {"datums"}, "target_tokens 8 and weights 7"),
        ("unshifted", {"datums"}, "position i must predict token i+1"),
        ("zero_weights", {"datums"}, "every weight of train batch 0 is zero"),
        ("out_of_vocab", {"token ids"}, "[5000]"),
        ("nondeterministic", {"determinism"}, "differs between two builds"),
    ],
)
def test_each_dataset_fault_fails_its_own_check(fault: str, broken: set[str], says: str) -> None:
    report = check_dataset(SumsDatasetBuilder, [f"fault={fault}"])
    assert failed(report) == broken, report.format()
    assert says in " | ".join(r.detail for r in report.failures), report.format()


# --------------------------------------------------------------------------- a toy eval


@dataclass
class ReplyLengthEvaluator(Evaluator):
    """Samples one short reply per game from the real client; `fault` spoils the metrics."""

    renderer: Renderer
    num_games: int
    fault: str

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        from tinker import types as tinker_types

        if self.fault == "slow":
            await asyncio.sleep(60)
        prompt = self.renderer.build_generation_prompt([Message(role="user", content="hi")])
        params = tinker_types.SamplingParams(max_tokens=3, temperature=1.0, seed=0)
        response = await sampling_client.sample(prompt, self.num_games, params)
        lengths = [len(s.tokens) for s in response.sequences]
        if self.fault == "empty":
            return {}
        if self.fault == "nan":
            return {"mean_length": math.nan}
        return {"games": float(len(lengths)), "mean_length": sum(lengths) / len(lengths)}


@chz.chz
class ReplyLengthEvalBuilder(EvaluatorBuilder):
    """Mean reply length; `fault` breaks one part of the contract."""

    num_games: int = 100
    fault: str = "none"

    def __call__(self, ctx: BuildContext) -> Evaluator:
        if self.fault == "not_an_evaluator":
            return {"games": 1.0}  # type: ignore[return-value]  # the fault under test
        return ReplyLengthEvaluator(ctx.renderer, self.num_games, self.fault)


@chz.chz
class SamplesEvalBuilder(ReplyLengthEvalBuilder):
    """Its size is `samples`, a field no default guesses: it says what small is itself."""

    samples: int = 100
    """Replies to sample."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        return ReplyLengthEvaluator(ctx.renderer, self.samples, self.fault)

    def small(self) -> SamplesEvalBuilder:
        if self.fault == "small_raises":
            raise RuntimeError("no small version")
        return chz.replace(self, samples=3)


@pytest.fixture(scope="module")
def tiny_sampler() -> Iterator[SamplingClient]:
    from cookbook.backends import make_service_client

    yield make_service_client("local").create_sampling_client(base_model="tiny")


def test_an_eval_runs_small_unless_told_otherwise(tiny_sampler: SamplingClient) -> None:
    report = check_eval(ReplyLengthEvalBuilder, sampling_client=tiny_sampler)
    assert report.passed, report.format()
    assert "small: num_games=2" in report.result("config").detail
    assert "games=2" in report.result("metrics").detail  # it really ran 2, not 100
    report = check_eval(ReplyLengthEvalBuilder, ["num_games=3"], sampling_client=tiny_sampler)
    assert "games=3" in report.result("metrics").detail


def test_an_eval_that_says_what_small_is(tiny_sampler: SamplingClient) -> None:
    report = check_eval(SamplesEvalBuilder, sampling_client=tiny_sampler)
    assert report.passed, report.format()
    # Its own small(), not the guess from field names (num_games is not its size).
    assert "small: samples=3 num_games=2" not in report.result("config").detail
    assert "small: samples=3" in report.result("config").detail
    assert "games=3" in report.result("metrics").detail
    report = check_eval(SamplesEvalBuilder, ["samples=5"], sampling_client=tiny_sampler)
    assert "games=5" in report.result("metrics").detail  # the user's setting wins
    report = check_eval(SamplesEvalBuilder(samples=7), sampling_client=tiny_sampler)
    assert "small: samples=3" in report.result("config").detail  # a configured builder too
    report = check_eval(SamplesEvalBuilder, ["fault=small_raises"], sampling_client=tiny_sampler)
    assert failed(report) == {"config"}
    assert "SamplesEvalBuilder.small() raised RuntimeError: no small version" in (
        report.result("config").detail
    )


@pytest.mark.parametrize(
    ("fault", "broken", "says"),
    [
        ("nan", {"metrics"}, "mean_length = nan"),
        ("empty", {"metrics"}, "returned no metrics"),
        ("not_an_evaluator", {"builds"}, "returned dict, not an Evaluator"),
        ("slow", {"runs"}, "did not finish within 0.2 s"),
    ],
)
def test_each_eval_fault_fails_its_own_check(
    tiny_sampler: SamplingClient, fault: str, broken: set[str], says: str
) -> None:
    report = check_eval(
        ReplyLengthEvalBuilder,
        [f"fault={fault}"],
        sampling_client=tiny_sampler,
        time_limit_s=0.2 if fault == "slow" else 120.0,
    )
    assert failed(report) == broken, report.format()
    assert says in " | ".join(r.detail for r in report.failures), report.format()
