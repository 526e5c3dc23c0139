"""Contract checks for an env, a dataset or an eval: does it do what the runners rely on?

    from cookbook.testing import assert_env_contract, check_env

    def test_my_env_keeps_the_contract():
        assert_env_contract("coin")                  # a registered name ...
        assert_env_contract(CoinEnvBuilder)          # ... or the builder class (or an instance)

    report = check_env("coin", overrides=["sides=3"])   # the report, without raising
    print(report.format())

Each check is a named item of the report. Env checks build the env for the tiny model, roll out a
few groups with a seeded scripted policy (no model: `ScriptedPolicy`) through the RL runner's own
rollout code, and replay them from a fresh build to prove determinism. An env may declare the
range of its per-episode total reward as `reward_range`, a `(low, high)` attribute or method of
its builder; without one only finiteness is checked.

Checks never raise for what the plugin does wrong: every error becomes a failed item saying
where it happened. Looking up an unknown name raises `UserError` (the user's mistake).
Importing this module is light (no torch, tinker or plugins); the checks import what they run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import pickle
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import chz

from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.rl.rollouts import do_group_rollout, mix_seed
from cookbook.rl.types import (
    Env,
    EnvGroupBuilder,
    Metrics,
    RLDataset,
    RLDatasetBuilder,
    Trajectory,
    TrajectoryGroup,
)
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook.testing.imports import HEAVY_MODULES, hook_modules, probe_imports
from cookbook.testing.policy import ScriptedPolicy
from cookbook.testing.report import CheckFailed, Checklist, ContractReport, describe_error

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext
    from cookbook.registry.specs import Kind

_T = TypeVar("_T")
_B = TypeVar("_B")
_P = ParamSpec("_P")

SMALL_EVAL_SETTINGS: dict[str, int] = {
    "num_games": 2,
    "num_problems": 4,
    "max_problems": 4,
    "max_examples": 4,
    "num_episodes": 2,
    "num_tasks": 4,
}
"""Size fields an eval check lowers (when the builder has them and the user did not set them),
so an eval runs in seconds on an untrained tiny model."""

EnvTarget = str | type[RLDatasetBuilder] | RLDatasetBuilder
"""A registered env name (`tictactoe`, `dist:name`), a builder class, or a configured builder."""
DatasetTarget = str | type[SupervisedDatasetBuilder] | SupervisedDatasetBuilder
"""A registered dataset name, a builder class, or a configured builder."""
EvalTarget = str | type[EvaluatorBuilder] | EvaluatorBuilder
"""A registered eval name, a builder class, or a configured builder."""


def tiny_context(seed: int = 0, group_size: int = 4, groups_per_batch: int = 4) -> BuildContext:
    """A `BuildContext` for the built-in tiny model (byte tokenizer, tiny chat format), with
    small batches: what the checks build with unless given another context."""
    from cookbook.build_context import BuildContext
    from cookbook.tokenizers import ByteTokenizer

    return BuildContext.for_model(
        "tiny", ByteTokenizer(), seed=seed, group_size=group_size, groups_per_batch=groups_per_batch
    )


# --------------------------------------------------------------------------- env


def check_env(
    target: EnvTarget,
    overrides: Sequence[str] = (),
    *,
    ctx: BuildContext | None = None,
    seed: int = 0,
    num_groups: int = 3,
    max_turns: int = 100,
    step_timeout_s: float = 30.0,
    reward_range: tuple[float, float] | None = None,
    check_imports: bool = True,
) -> ContractReport:
    """Check an env against the RL contract and return the report.

    `overrides` are the env's `KEY=VALUE` options (for a name or a class). The first
    `num_groups` groups of training batch 0, and the first group of the test batch when there
    is one, are rolled out with a scripted policy seeded by `seed`; an episode longer than
    `max_turns` turns, or an env call slower than `step_timeout_s`, fails the rollouts.
    `reward_range` overrides the builder's own declaration. `check_imports=False` skips the
    import-cost check (a builder defined in a module that is not the plugin's)."""
    label, loader, modules = _resolve("env", target, overrides)
    report = ContractReport("env", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _EnvState()
    policy = ScriptedPolicy(ctx.tokenizer)

    def config() -> str:
        state.builder, detail = _configure(loader, RLDatasetBuilder, overrides, "env", label, {})
        return detail

    _import_check(checks, modules, check_imports)
    _load_tinker()
    checks.run("config", config)
    checks.run("builds", lambda: _build_env(state, ctx), needs=["config"])
    checks.run("batches", lambda: _env_batches(state, num_groups), needs=["builds"])
    checks.run("picklable", lambda: _pickle_groups(state), needs=["batches"])
    checks.run(
        "rollouts",
        lambda: _rollouts(state, policy, seed, max_turns, step_timeout_s),
        needs=["batches"],
    )
    checks.run("group rewards", lambda: _group_rewards(state), needs=["rollouts"])
    checks.run("rewards", lambda: _rewards(state, reward_range), needs=["group rewards"])
    checks.run("observations", lambda: _observations(policy, ctx), needs=["rollouts"])
    checks.run("metrics", lambda: _metrics(state), needs=["group rewards"])
    checks.run(
        "determinism",
        lambda: _env_determinism(
            state, ctx, seed, max_turns, step_timeout_s, checks.ok("picklable")
        ),
        needs=["group rewards"],
    )
    return report


@dataclass
class _GroupRun:
    """One group rolled out: how far it got."""

    label: str
    trajectories_G: list[Trajectory] | None = None
    """Set once every env finished its episode."""
    rewarded: bool = False
    """Whether `compute_group_rewards` returned."""
    raw_rewards: object = None
    """What `compute_group_rewards` returned, unchecked."""
    group: TrajectoryGroup | None = None
    """The finished group (None when something failed)."""
    error: BaseException | None = None


@dataclass
class _EnvState:
    builder: RLDatasetBuilder | None = None
    train: RLDataset | None = None
    test: RLDataset | None = None
    batches: list[tuple[str, Sequence[EnvGroupBuilder]]] = field(default_factory=list)
    """`(split, batch 0)` for train and test."""
    rolled: list[str] = field(default_factory=list)
    """Labels of the groups rolled out (`train group 0`, ...)."""
    runs: list[_GroupRun] = field(default_factory=list)


class _RecordingGroupBuilder(EnvGroupBuilder):
    """Wraps a group builder to keep what the runner's rollout code would discard on failure:
    the finished trajectories and the raw `compute_group_rewards` answer."""

    def __init__(self, inner: EnvGroupBuilder, run: _GroupRun) -> None:
        self.inner = inner
        self.run = run

    async def make_envs(self) -> Sequence[Env]:
        return await self.inner.make_envs()

    async def compute_group_rewards(
        self, trajectories_G: list[Trajectory], envs_G: Sequence[Env]
    ) -> list[tuple[float, Metrics]]:
        self.run.trajectories_G = trajectories_G
        raw = await self.inner.compute_group_rewards(trajectories_G, envs_G)
        self.run.rewarded = True
        self.run.raw_rewards = raw
        return raw

    def logging_tags(self) -> list[str]:
        return self.inner.logging_tags()


def _build_env(state: _EnvState, ctx: BuildContext) -> str:
    assert state.builder is not None
    train, test = _rl_pair(state.builder(ctx))
    state.train, state.test = train, test
    tested = _batches(len(test)) if test is not None else "none"
    return f"train: {_batches(len(train))}; test: {tested} (tiny model, seed {ctx.seed})"


def _env_batches(state: _EnvState, num_groups: int) -> str:
    parts: list[str] = []
    for split, dataset in (("train", state.train), ("test", state.test)):
        if dataset is None:
            continue
        batch: list[EnvGroupBuilder] = []
        for i, item in enumerate(_first_batch(dataset, split)):
            if not isinstance(item, EnvGroupBuilder):
                raise CheckFailed(
                    f"{split} batch 0 item {i} is a {type(item).__name__}, not an EnvGroupBuilder"
                )
            batch.append(item)
        state.batches.append((split, batch))
        take = num_groups if split == "train" else 1
        state.rolled += [f"{split} group {p}" for p in range(min(take, len(batch)))]
        parts.append(f"{split} batch 0: {len(batch)} groups")
    return "; ".join(parts)


def _groups_to_roll(
    state: _EnvState, batches: Sequence[tuple[str, Sequence[EnvGroupBuilder]]]
) -> list[tuple[str, EnvGroupBuilder]]:
    by_label = {f"{split} group {p}": b for split, batch in batches for p, b in enumerate(batch)}
    return [(label, by_label[label]) for label in state.rolled]


def _pickle_groups(state: _EnvState) -> str:
    sizes: list[int] = []
    for split, batch in state.batches:
        for p, builder in enumerate(batch):
            copy, size = _pickle_round_trip(builder, f"{split} group {p}")
            if type(copy) is not type(builder):
                raise CheckFailed(
                    f"{split} group {p} unpickles as {type(copy).__name__}, "
                    f"not {type(builder).__name__}"
                )
            sizes.append(size)
    return f"{len(sizes)} group builders round-trip through pickle (largest {max(sizes)} bytes)"


def _pickle_round_trip(obj: _T, what: str) -> tuple[_T, int]:
    try:
        data = pickle.dumps(obj)
    except Exception as e:
        raise CheckFailed(
            f"{what} ({type(obj).__name__}) cannot be pickled: {describe_error(e, where=False)}; "
            "keep group builders plain data (open resources in make_envs)"
        ) from e
    try:
        return pickle.loads(data), len(data)
    except Exception as e:
        raise CheckFailed(
            f"{what} ({type(obj).__name__}) cannot be unpickled: {describe_error(e)}"
        ) from e


async def _roll_groups(
    groups: Sequence[tuple[str, EnvGroupBuilder]],
    policy: ScriptedPolicy,
    seed: int,
    max_turns: int,
    step_timeout_s: float,
) -> list[_GroupRun]:
    """Roll out every group at once through the runner's `do_group_rollout`."""

    async def one(index: int, label: str, builder: EnvGroupBuilder) -> _GroupRun:
        run = _GroupRun(label)
        recorder = _RecordingGroupBuilder(builder, run)
        try:
            run.group = await do_group_rollout(
                recorder, policy, mix_seed(seed, index), step_timeout_s, max_turns
            )
        except Exception as e:  # the checks report it; other groups go on
            run.error = e
        return run

    return list(await asyncio.gather(*(one(i, lb, b) for i, (lb, b) in enumerate(groups))))


def _rollouts(
    state: _EnvState, policy: ScriptedPolicy, seed: int, max_turns: int, step_timeout_s: float
) -> str:
    groups = _groups_to_roll(state, state.batches)
    state.runs = _run_async(_roll_groups(groups, policy, seed, max_turns, step_timeout_s))
    unfinished = [run for run in state.runs if run.trajectories_G is None]
    if unfinished:
        first = unfinished[0]
        more = f" (and {len(unfinished) - 1} more groups)" if len(unfinished) > 1 else ""
        reason = describe_error(first.error) if first.error is not None else "no trajectories"
        raise CheckFailed(f"{first.label}: {reason}{more}")
    lengths = [len(t.transitions) for run in state.runs for t in run.trajectories_G or []]
    return (
        f"{len(state.runs)} groups, {len(lengths)} episodes, {sum(lengths)} turns (longest "
        f"{max(lengths, default=0)}) with a scripted random policy, seed {seed}"
    )


def _group_rewards(state: _EnvState) -> str:
    for run in state.runs:
        trajectories_G = run.trajectories_G or []
        if not run.rewarded:
            assert run.error is not None
            raise CheckFailed(
                f"{run.label}: compute_group_rewards raised {describe_error(run.error)}"
            )
        raw = run.raw_rewards
        if not isinstance(raw, list | tuple):
            raise CheckFailed(
                f"{run.label}: compute_group_rewards returned {type(raw).__name__}; it must "
                "return a list of (reward, metrics), one per trajectory"
            )
        if len(raw) != len(trajectories_G):
            raise CheckFailed(
                f"{run.label}: compute_group_rewards returned {len(raw)} entries for "
                f"{len(trajectories_G)} trajectories; return one (reward, metrics) per trajectory"
            )
        for i, item in enumerate(raw):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise CheckFailed(
                    f"{run.label}: compute_group_rewards entry {i} is {_short_repr(item)}, "
                    "not a (reward, metrics) pair"
                )
            if not _is_number(item[0]) or not isinstance(item[1], Mapping):
                raise CheckFailed(
                    f"{run.label}: compute_group_rewards entry {i} is ({type(item[0]).__name__}, "
                    f"{type(item[1]).__name__}); expected (float, dict of metrics)"
                )
        if run.group is None and run.error is not None:
            raise CheckFailed(f"{run.label}: {describe_error(run.error)}")
    return "one (reward, metrics) per trajectory in every group"


def _declared_range(
    builder: RLDatasetBuilder | None, given: tuple[float, float] | None
) -> tuple[float, float] | None:
    """The bounds to check: `given`, else the builder's `reward_range` attribute or method."""
    declared: object = given
    source = "reward_range argument"
    if declared is None:
        declared = getattr(builder, "reward_range", None)
        source = f"{type(builder).__name__}.reward_range"
        if callable(declared):
            declared = declared()
    if declared is None:
        return None
    if not (
        isinstance(declared, tuple | list)
        and len(declared) == 2
        and all(_is_number(v) and math.isfinite(v) for v in declared)
        and declared[0] <= declared[1]
    ):
        raise CheckFailed(f"{source} is {_short_repr(declared)}; declare it as (low, high) floats")
    return float(declared[0]), float(declared[1])


def _rewards(state: _EnvState, given: tuple[float, float] | None) -> str:
    bounds = _declared_range(state.builder, given)
    totals: list[float] = []
    for run in state.runs:
        assert run.group is not None
        for g, trajectory in enumerate(run.group.trajectories_G):
            for t, transition in enumerate(trajectory.transitions):
                if not _is_number(transition.reward) or not math.isfinite(transition.reward):
                    raise CheckFailed(
                        f"{run.label} env {g} turn {t}: step reward is {transition.reward!r}; "
                        "rewards must be finite floats"
                    )
        for g, total in enumerate(run.group.get_total_rewards()):
            if not math.isfinite(total):
                raise CheckFailed(f"{run.label} env {g}: total reward is {total}")
            if bounds is not None and not bounds[0] - 1e-9 <= total <= bounds[1] + 1e-9:
                raise CheckFailed(
                    f"{run.label} env {g}: total reward {total:g} is outside the declared "
                    f"reward_range [{bounds[0]:g}, {bounds[1]:g}]"
                )
            totals.append(total)
    seen = f"totals {min(totals):g} to {max(totals):g} over {len(totals)} episodes"
    if bounds is None:
        return f"{seen}, finite (declare reward_range on the builder to check its bounds)"
    return f"{seen}, within the declared [{bounds[0]:g}, {bounds[1]:g}]"


def _observations(policy: ScriptedPolicy, ctx: BuildContext) -> str:
    vocab = ctx.tokenizer.vocab_size
    lengths: list[int] = []
    for i, turn in enumerate(policy.seen):
        if turn.ob_error is not None:
            raise CheckFailed(f"observation {i} is not a token ModelInput: {turn.ob_error}")
        if not turn.ob_tokens:
            raise CheckFailed(f"observation {i} is empty; every turn needs a prompt to act on")
        bad = [t for t in turn.ob_tokens if not 0 <= t < vocab]
        if bad:
            raise CheckFailed(
                f"observation {i} has token ids outside the vocabulary (0-{vocab - 1}): {bad[:5]}"
            )
        if not ctx.tokenizer.decode(turn.ob_tokens):
            raise CheckFailed(f"observation {i} decodes to empty text")
        _check_stop(turn.stop, vocab, i)
        lengths.append(len(turn.ob_tokens))
    if not lengths:
        raise CheckFailed("the policy saw no observation")
    first = policy.seen[0]
    text = ctx.tokenizer.decode(first.ob_tokens)
    return (
        f"{len(lengths)} observations of {min(lengths)}-{max(lengths)} tokens; stop "
        f"{_short_repr(first.stop)}; first: {_short_repr(text, 60)}"
    )


def _check_stop(stop: object, vocab: int, i: int) -> None:
    fix = "use ctx.renderer.get_stop_sequences()"
    if not isinstance(stop, list) or not stop:
        raise CheckFailed(
            f"observation {i} came with stop condition {_short_repr(stop)}; give a non-empty list "
            f"of stop token ids or strings ({fix})"
        )
    if all(isinstance(s, int) and not isinstance(s, bool) for s in stop):
        bad = [s for s in stop if not 0 <= s < vocab]
        if bad:
            raise CheckFailed(f"observation {i}: stop token ids {bad} are outside the vocabulary")
        return
    if not all(isinstance(s, str) and s for s in stop):
        raise CheckFailed(
            f"observation {i}: stop condition {_short_repr(stop)} mixes types or has empty "
            f"strings; use all token ids or all non-empty strings ({fix})"
        )


def _metrics(state: _EnvState) -> str:
    step_keys: set[str] = set()
    group_keys: set[str] = set()
    for run in state.runs:
        assert run.group is not None
        for g, trajectory in enumerate(run.group.trajectories_G):
            for t, transition in enumerate(trajectory.transitions):
                where = f"{run.label} env {g} turn {t}"
                step_keys |= _check_metrics(transition.metrics, f"{where} step metrics")
                for key, value in transition.logs.items():
                    if not (isinstance(key, str) and isinstance(value, str)):
                        raise CheckFailed(
                            f"{where}: logs must map str to str, got {_short_repr(key)}: "
                            f"{type(value).__name__}"
                        )
        for g, metrics in enumerate(run.group.metrics_G):
            group_keys |= _check_metrics(metrics, f"{run.label} env {g} group metrics")
    return f"step: {_names(step_keys)}; group: {_names(group_keys)} (all finite numbers)"


def _check_metrics(metrics: Mapping[str, float], where: str) -> set[str]:
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise CheckFailed(f"{where}: metric key {_short_repr(key)} is not a string")
        if not _is_number(value) or not math.isfinite(value):
            raise CheckFailed(
                f"{where}: {key} = {_short_repr(value)}; metrics must be finite floats (the "
                "runner averages them)"
            )
    return set(metrics)


def _env_determinism(
    state: _EnvState,
    ctx: BuildContext,
    seed: int,
    max_turns: int,
    step_timeout_s: float,
    via_pickle: bool,
) -> str:
    assert state.builder is not None
    train, test = _rl_pair(state.builder(ctx))
    batches: list[tuple[str, Sequence[EnvGroupBuilder]]] = []
    for split, dataset in (("train", train), ("test", test)):
        if dataset is None:
            continue
        batch = list(dataset.get_batch(0))
        if via_pickle:  # replaying a stored batch is what the copies are for
            batch = [_pickle_round_trip(b, f"{split} group {p}")[0] for p, b in enumerate(batch)]
        batches.append((split, batch))
    known = {f"{split} group {p}" for split, batch in batches for p in range(len(batch))}
    lost = [label for label in state.rolled if label not in known]
    if lost:
        raise CheckFailed(f"a second build with seed {ctx.seed} has no {lost[0]}")
    groups = _groups_to_roll(state, batches)
    replay = _run_async(
        _roll_groups(groups, ScriptedPolicy(ctx.tokenizer), seed, max_turns, step_timeout_s)
    )
    for first, second in zip(state.runs, replay, strict=True):
        difference = _first_difference(first, second)
        if difference is not None:
            raise CheckFailed(
                f"{first.label}: {difference} between two builds with seed {ctx.seed} and the "
                "same policy; derive every random choice from ctx.seed and the batch index"
            )
    how = "pickled copies of a second build" if via_pickle else "a second build"
    return f"{how} replayed the {len(replay)} groups token for token, same rewards"


def _first_difference(a: _GroupRun, b: _GroupRun) -> str | None:
    if b.group is None:
        return f"the replay failed ({describe_error(b.error) if b.error else 'no result'})"
    assert a.group is not None
    if len(a.group.trajectories_G) != len(b.group.trajectories_G):
        return f"{len(a.group.trajectories_G)} vs {len(b.group.trajectories_G)} envs"
    for g, (ta, tb) in enumerate(zip(a.group.trajectories_G, b.group.trajectories_G, strict=True)):
        if len(ta.transitions) != len(tb.transitions):
            return f"env {g} lasted {len(ta.transitions)} vs {len(tb.transitions)} turns"
        for t, (xa, xb) in enumerate(zip(ta.transitions, tb.transitions, strict=True)):
            if _tokens(xa.ob) != _tokens(xb.ob):
                return f"env {g} turn {t}: the observation differs"
            if not _same_number(xa.reward, xb.reward):
                return f"env {g} turn {t}: step reward {xa.reward!r} vs {xb.reward!r}"
            if xa.episode_done != xb.episode_done:
                return f"env {g} turn {t}: episode_done differs"
    finals = zip(a.group.final_rewards_G, b.group.final_rewards_G, strict=True)
    if not all(_same_number(x, y) for x, y in finals):
        return f"group rewards {a.group.final_rewards_G} vs {b.group.final_rewards_G}"
    return None


def _tokens(ob: tinker_types.ModelInput) -> object:
    try:
        return ob.to_ints()
    except Exception:  # not token chunks only: compare what can be compared
        return repr(ob)


# --------------------------------------------------------------------------- dataset


def check_dataset(
    target: DatasetTarget,
    overrides: Sequence[str] = (),
    *,
    ctx: BuildContext | None = None,
    seed: int = 0,
    check_imports: bool = True,
) -> ContractReport:
    """Check a supervised dataset against the contract and return the report: it builds for the
    tiny model, has batches, batch 0 holds well-formed `cross_entropy` datums (target tokens and
    weights aligned with the input, shifted by one, some weight, ids inside the vocabulary), and
    a second build with the same seed gives the same batches (also after `set_epoch(1)`)."""
    label, loader, modules = _resolve("dataset", target, overrides)
    report = ContractReport("dataset", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _DatasetState()

    def config() -> str:
        state.builder, detail = _configure(
            loader, SupervisedDatasetBuilder, overrides, "dataset", label, {}
        )
        return detail

    _import_check(checks, modules, check_imports)
    _load_tinker()
    checks.run("config", config)
    checks.run("builds", lambda: _build_dataset(state, ctx), needs=["config"])
    checks.run("batches", lambda: _dataset_batches(state), needs=["builds"])
    checks.run("datums", lambda: _datums(state), needs=["batches"])
    checks.run("token ids", lambda: _token_ids(state, ctx), needs=["datums"])
    checks.run("determinism", lambda: _dataset_determinism(state, ctx), needs=["datums"])
    return report


@dataclass
class _DatasetState:
    builder: SupervisedDatasetBuilder | None = None
    train: SupervisedDataset | None = None
    test: SupervisedDataset | None = None
    batches: list[tuple[str, list[tinker_types.Datum]]] = field(default_factory=list)
    arrays: list[tuple[str, list[_DatumArrays]]] = field(default_factory=list)


@dataclass(frozen=True)
class _DatumArrays:
    """A datum as plain lists."""

    input_T: list[int]
    targets_T: list[int]
    weights_T: list[float]


def _build_dataset(state: _DatasetState, ctx: BuildContext) -> str:
    assert state.builder is not None
    train, test = _sft_pair(state.builder(ctx))
    state.train, state.test = train, test
    tested = _batches(len(test)) if test is not None else "none"
    return f"train: {_batches(len(train))}; test: {tested} (tiny model, seed {ctx.seed})"


def _dataset_batches(state: _DatasetState) -> str:
    from tinker import types as tinker_types

    parts: list[str] = []
    for split, dataset in (("train", state.train), ("test", state.test)):
        if dataset is None:
            continue
        batch: list[tinker_types.Datum] = []
        for i, item in enumerate(_first_batch(dataset, split)):
            if not isinstance(item, tinker_types.Datum):
                raise CheckFailed(
                    f"{split} batch 0 item {i} is a {type(item).__name__}, not a tinker Datum"
                )
            batch.append(item)
        state.batches.append((split, batch))
        parts.append(f"{split} batch 0: {len(batch)} datums")
    return "; ".join(parts)


def _datums(state: _DatasetState) -> str:
    lengths: list[int] = []
    trained = 0
    for split, batch in state.batches:
        arrays = [_datum_arrays(d, f"{split} datum {i}") for i, d in enumerate(batch)]
        state.arrays.append((split, arrays))
        if not any(w != 0 for a in arrays for w in a.weights_T):
            raise CheckFailed(
                f"every weight of {split} batch 0 is zero: nothing would be trained (weight 1.0 "
                "on the tokens to learn, e.g. the assistant's reply)"
            )
        lengths += [len(a.input_T) for a in arrays]
        trained += sum(1 for a in arrays for w in a.weights_T if w != 0)
    return (
        f"{len(lengths)} datums of {min(lengths)}-{max(lengths)} tokens, {trained} weighted "
        "targets; targets are the input shifted by one"
    )


def _datum_arrays(datum: tinker_types.Datum, where: str) -> _DatumArrays:
    try:
        input_T = list(datum.model_input.to_ints())
    except Exception as e:
        raise CheckFailed(f"{where}: model_input is not plain tokens ({describe_error(e)})") from e
    inputs = datum.loss_fn_inputs
    missing = [k for k in ("target_tokens", "weights") if k not in inputs]
    if missing:
        raise CheckFailed(
            f"{where}: loss_fn_inputs lacks {', '.join(missing)} (cross_entropy needs "
            "target_tokens and weights)"
        )
    targets = inputs["target_tokens"].to_numpy().reshape(-1).tolist()
    weights = inputs["weights"].to_numpy().reshape(-1).tolist()
    n = len(input_T)
    if n == 0:
        raise CheckFailed(f"{where}: model_input is empty")
    if len(targets) != n or len(weights) != n:
        raise CheckFailed(
            f"{where}: model_input has {n} tokens but target_tokens {len(targets)} and weights "
            f"{len(weights)}; all three must have one entry per input position"
        )
    if not all(float(t).is_integer() for t in targets):
        raise CheckFailed(f"{where}: target_tokens are not integers")
    targets_T = [int(t) for t in targets]
    weights_T = [float(w) for w in weights]
    if not all(math.isfinite(w) for w in weights_T):
        raise CheckFailed(f"{where}: weights are not all finite")
    if input_T[1:] != targets_T[:-1]:
        at = next(i for i, (a, b) in enumerate(zip(input_T[1:], targets_T, strict=False)) if a != b)
        raise CheckFailed(
            f"{where}: target {at} is {targets_T[at]} but input {at + 1} is {input_T[at + 1]}; "
            "position i must predict token i+1 (input = tokens[:-1], targets = tokens[1:])"
        )
    return _DatumArrays(input_T, targets_T, weights_T)


def _token_ids(state: _DatasetState, ctx: BuildContext) -> str:
    vocab = ctx.tokenizer.vocab_size
    for split, arrays in state.arrays:
        for i, a in enumerate(arrays):
            bad = [t for t in (*a.input_T, *a.targets_T) if not 0 <= t < vocab]
            if bad:
                raise CheckFailed(
                    f"{split} datum {i} has token ids outside the vocabulary (0-{vocab - 1}): "
                    f"{bad[:5]}; encode with ctx.tokenizer / ctx.renderer"
                )
    return f"every id inside the tokenizer's vocabulary (0-{vocab - 1})"


def _dataset_determinism(state: _DatasetState, ctx: BuildContext) -> str:
    assert state.builder is not None and state.train is not None
    train, test = _sft_pair(state.builder(ctx))
    again = {"train": train, "test": test}
    for split, arrays in state.arrays:
        other = again[split]
        if other is None:
            raise CheckFailed(f"a second build with seed {ctx.seed} has no {split} set")
        second = [_datum_arrays(d, f"{split} datum {i}") for i, d in enumerate(other.get_batch(0))]
        if second != arrays:
            raise CheckFailed(
                f"{split} batch 0 differs between two builds with seed {ctx.seed}; derive every "
                "random choice from ctx.seed"
            )
    state.train.set_epoch(1)
    train.set_epoch(1)
    epoch_a = [_datum_arrays(d, "train datum") for d in state.train.get_batch(0)]
    epoch_b = [_datum_arrays(d, "train datum") for d in train.get_batch(0)]
    if epoch_a != epoch_b:
        raise CheckFailed(
            f"after set_epoch(1), train batch 0 differs between two builds with seed {ctx.seed}; "
            "shuffle with a generator seeded from the dataset seed and the epoch"
        )
    return "a second build gives the same batch 0, also after set_epoch(1)"


# --------------------------------------------------------------------------- eval


def check_eval(
    target: EvalTarget,
    overrides: Sequence[str] = (),
    *,
    ctx: BuildContext | None = None,
    sampling_client: SamplingClient | None = None,
    seed: int = 0,
    small: bool = True,
    time_limit_s: float = 120.0,
    check_imports: bool = True,
) -> ContractReport:
    """Check an eval against the contract and return the report: it builds, runs against an
    untrained tiny model (or `sampling_client`, with the matching `ctx`) within
    `time_limit_s`, and returns a non-empty dict of finite floats.

    With `small`, the size fields of `SMALL_EVAL_SETTINGS` the builder has (`num_games`,
    `num_problems`, ...) are lowered unless `overrides` set them."""
    label, loader, modules = _resolve("eval", target, overrides)
    report = ContractReport("eval", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _EvalState()
    shrink = SMALL_EVAL_SETTINGS if small else {}

    def config() -> str:
        state.builder, detail = _configure(
            loader, EvaluatorBuilder, overrides, "eval", label, shrink
        )
        return detail

    def build() -> str:
        assert state.builder is not None
        evaluator = state.builder(ctx)
        if not isinstance(evaluator, Evaluator):
            raise CheckFailed(
                f"{type(state.builder).__name__}(ctx) returned {type(evaluator).__name__}, not an "
                "Evaluator"
            )
        state.evaluator = evaluator
        return f"{type(evaluator).__name__}"

    _import_check(checks, modules, check_imports)
    _load_tinker()
    checks.run("config", config)
    checks.run("builds", build, needs=["config"])
    checks.run(
        "runs", lambda: _run_eval(state, sampling_client, seed, time_limit_s), needs=["builds"]
    )
    checks.run("metrics", lambda: _eval_metrics(state), needs=["runs"])
    return report


@dataclass
class _EvalState:
    builder: EvaluatorBuilder | None = None
    evaluator: Evaluator | None = None
    metrics: object = None


def _run_eval(
    state: _EvalState, client: SamplingClient | None, seed: int, time_limit_s: float
) -> str:
    import time

    assert state.evaluator is not None
    evaluator = state.evaluator
    if client is None:
        from cookbook.backends import make_service_client

        client = make_service_client("local").create_sampling_client(base_model="tiny")
        against = "an untrained tiny model"
    else:
        against = "the given sampling client"

    async def run() -> dict[str, float]:
        async with asyncio.timeout(time_limit_s):
            return await evaluator(client)

    t0 = time.perf_counter()
    try:
        state.metrics = _run_async(run())
    except TimeoutError as e:
        raise CheckFailed(
            f"did not finish within {time_limit_s:g} s against {against}; lower its size "
            "(eval.KEY=VALUE) or raise the time limit"
        ) from e
    return f"against {against} in {time.perf_counter() - t0:.1f} s"


def _eval_metrics(state: _EvalState) -> str:
    metrics = state.metrics
    if not isinstance(metrics, Mapping):
        raise CheckFailed(f"the evaluator returned {type(metrics).__name__}, not a dict of metrics")
    if not metrics:
        raise CheckFailed("the evaluator returned no metrics")
    shown = _check_metrics(metrics, "eval metrics")
    values = ", ".join(f"{k}={float(metrics[k]):.3g}" for k in sorted(shown)[:6])
    more = f", ... ({len(shown)} in all)" if len(shown) > 6 else ""
    return values + more


# --------------------------------------------------------------------------- shared


def _resolve(
    kind: Kind, target: object, overrides: Sequence[str]
) -> tuple[str, Callable[[], object], list[tuple[str, str]]]:
    """`(label, loader, modules to probe)`; the loader returns the builder class or instance.
    An unknown name raises `UserError` (nothing to check)."""
    if isinstance(target, str):
        from cookbook.registry.catalog import load_catalog

        spec = load_catalog().get(kind, target)
        hooks = hook_modules(spec.distribution) if spec.distribution else []
        modules = [("hook module", m) for m in hooks]
        modules.append(("builder module", spec.builder.partition(":")[0]))
        return spec.name, spec.load, modules
    if isinstance(target, type):
        return target.__qualname__, lambda: target, [("builder module", target.__module__)]
    if overrides:
        raise ValueError(
            "overrides apply to a name or a builder class, not to a configured builder"
        )
    cls = type(target)
    return cls.__qualname__, lambda: target, [("builder module", cls.__module__)]


def _configure(
    loader: Callable[[], object],
    base: type[_B],
    overrides: Sequence[str],
    kind: str,
    label: str,
    small: Mapping[str, int],
) -> tuple[_B, str]:
    """The configured builder and the detail line of the `config` check."""
    from cookbook.configs import make_config

    loaded = loader()
    if isinstance(loaded, type):
        name = f"{loaded.__module__}:{loaded.__qualname__}"
        if not issubclass(loaded, base):
            raise CheckFailed(f"{name} is not a {base.__name__} subclass")
        if not chz.is_chz(loaded):
            raise CheckFailed(f"{name} is not a chz class; decorate it with @chz.chz")
        instance = make_config(loaded, overrides, label=f"{kind} {label}")
        shrunk = _small_settings(instance, small, overrides)
        if shrunk:
            instance = make_config(loaded, overrides, defaults=shrunk, label=f"{kind} {label}")
    else:
        if not isinstance(loaded, base):
            raise CheckFailed(f"{type(loaded).__name__} is not a {base.__name__}")
        instance = loaded
        shrunk = _small_settings(instance, small, overrides)
        if shrunk:
            instance = chz.replace(instance, **{k: int(v) for k, v in shrunk.items()})
    assert isinstance(instance, base)
    _round_trip_config(instance)
    detail = f"{type(instance).__name__}, round-trips through config.json"
    if overrides:
        detail += f"; set: {' '.join(overrides)}"
    if shrunk:
        detail += "; small: " + " ".join(f"{k}={v}" for k, v in shrunk.items())
    return instance, detail


def _small_settings(
    instance: object, small: Mapping[str, int], overrides: Sequence[str]
) -> dict[str, str]:
    """The size fields to lower: present, an int (or None: no limit) above the small value, and
    not set by the user."""
    if not small or not chz.is_chz(instance):
        return {}
    user_keys = {arg.partition("=")[0].strip() for arg in overrides}
    fields = chz.chz_fields(instance)
    out: dict[str, str] = {}
    for name, value in small.items():
        if name not in fields or name in user_keys:
            continue
        current = getattr(instance, name)
        if current is None or (
            _is_number(current) and isinstance(current, int) and current > value
        ):
            out[name] = str(value)
    return out


def _round_trip_config(instance: object) -> None:
    """A run stores its config as JSON and rebuilds it to resume: the builder must survive."""
    from cookbook.runs.config_io import config_from_json, config_to_json

    try:
        data = config_to_json(instance)
        text = json.dumps(data)
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"the config cannot be written to config.json: {e}") from e
    try:
        back = config_from_json(json.loads(text))
    except Exception as e:
        raise CheckFailed(
            f"the config cannot be read back from config.json: {describe_error(e)}"
        ) from e
    if config_to_json(back) != data:
        raise CheckFailed("the config changes when written to config.json and read back")


def _import_check(checks: Checklist, modules: list[tuple[str, str]], enabled: bool) -> None:
    name = "import cost"
    if not enabled:
        checks.skip(name, "turned off (check_imports=False)")
        return
    testish = [m for _, m in modules if _is_test_module(m)]
    if testish:
        checks.skip(name, f"builder defined in {testish[0]}, not in a plugin module")
        return
    checks.run(name, lambda: _import_cost(modules))


def _is_test_module(module: str) -> bool:
    base = module.rpartition(".")[2]
    return (
        module == "__main__"
        or base.startswith("test_")
        or base.endswith("_test")
        or base == "conftest"
    )


def _import_cost(modules: list[tuple[str, str]]) -> str:
    probes = probe_imports(modules)
    for probe in probes:
        if probe.error is not None:
            raise CheckFailed(f"importing {probe.role} {probe.module} failed: {probe.error}")
        if probe.heavy:
            lib, where = next(iter(probe.heavy.items()))
            raise CheckFailed(
                f"{probe.role} {probe.module} imports {lib} at module level ({_tail(where)}); "
                "import it inside the function that needs it (or under TYPE_CHECKING)"
            )
    timings = ", ".join(f"{p.module} {p.time_s * 1000:.0f} ms" for p in probes)
    return f"{timings}; no {'/'.join(HEAVY_MODULES)}"


def _pair(result: object, what: str) -> tuple[object, object]:
    """A builder's `(train, test | None)`, or a failure saying what came back instead."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(
            f"the builder returned {_short_repr(result)}; __call__(ctx) must return "
            f"(train, test | None) {what}s"
        )
    train, test = result
    if train is None:
        raise CheckFailed(f"the train set is None; it must be an {what}")
    return train, test


def _rl_pair(result: object) -> tuple[RLDataset, RLDataset | None]:
    train, test = _pair(result, "RLDataset")
    if not isinstance(train, RLDataset):
        raise CheckFailed(f"the train set is a {type(train).__name__}, not an RLDataset")
    if test is not None and not isinstance(test, RLDataset):
        raise CheckFailed(f"the test set is a {type(test).__name__}, not an RLDataset or None")
    return train, test


def _sft_pair(result: object) -> tuple[SupervisedDataset, SupervisedDataset | None]:
    train, test = _pair(result, "SupervisedDataset")
    if not isinstance(train, SupervisedDataset):
        raise CheckFailed(f"the train set is a {type(train).__name__}, not a SupervisedDataset")
    if test is not None and not isinstance(test, SupervisedDataset):
        raise CheckFailed(
            f"the test set is a {type(test).__name__}, not a SupervisedDataset or None"
        )
    return train, test


def _first_batch(dataset: RLDataset | SupervisedDataset, split: str) -> list[object]:
    size = len(dataset)
    if size <= 0:
        raise CheckFailed(f"the {split} set has {size} batches; it needs at least one")
    batch = dataset.get_batch(0)
    if not isinstance(batch, Sequence) or not batch:
        raise CheckFailed(
            f"{split} get_batch(0) returned {_short_repr(batch)}; expected a non-empty list"
        )
    return list(batch)


def _load_tinker() -> None:
    """Import tinker (and torch with it) up front, so the seconds it takes are not billed to
    whichever check happens to touch a `ModelInput` first."""
    import tinker.types  # noqa: F401


def _run_async(coro: Coroutine[object, object, _T]) -> _T:
    """Run `coro` to the end, also when called from inside a running event loop (an async test):
    then on a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _same_number(a: float, b: float) -> bool:
    """Equal, NaN included (a NaN reward is the rewards check's finding, not a nondeterminism)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _batches(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def _names(keys: set[str]) -> str:
    if not keys:
        return "none"
    ordered = sorted(keys)
    return ", ".join(ordered[:6]) + (f", ... ({len(ordered)})" if len(ordered) > 6 else "")


def _short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(path_and_line: str) -> str:
    parts = path_and_line.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


# --------------------------------------------------------------------------- pytest helpers


def _asserting(check: Callable[_P, ContractReport], name: str) -> Callable[_P, ContractReport]:
    """`check`, raising `AssertionError` with the whole report when a check failed."""

    def run(*args: _P.args, **kwargs: _P.kwargs) -> ContractReport:
        report = check(*args, **kwargs)
        report.raise_for_failures()
        return report

    run.__name__ = run.__qualname__ = name
    run.__doc__ = (
        f"`{check.__name__}` with the same arguments, for pytest: raises `AssertionError` listing "
        "the failed checks and the whole report; returns the report when every check passed."
    )
    return run


assert_env_contract = _asserting(check_env, "assert_env_contract")
"""`check_env`, raising `AssertionError` with the report when a check fails."""
assert_dataset_contract = _asserting(check_dataset, "assert_dataset_contract")
"""`check_dataset`, raising `AssertionError` with the report when a check fails."""
assert_eval_contract = _asserting(check_eval, "assert_eval_contract")
"""`check_eval`, raising `AssertionError` with the report when a check fails."""
