"""Contract checks for an env: it builds for the tiny model, its batches hold picklable group
builders, a few groups roll out with a seeded scripted policy (no model: `ScriptedPolicy`) through
the RL runner's own rollout code, rewards, observations and metrics are well formed, and a second
build replays the same episodes.

An env may declare the range of its per-episode total reward as `reward_range`, a `(low, high)`
attribute or method of its builder; without one only finiteness is checked.

Group size. The runner asks for `group_size` envs per group (`ctx.group_size`) and centres
rewards within a group, so a training group holds exactly that many envs. In a game whose seats
are all the policy (self-play), the seats of one game are envs of the same group: a group of G
envs is G/S games of S seats (G must be a multiple of S; refuse other sizes with a `UserError`).
An env that instead makes `group_size` games of S seats per group (S x group_size envs) declares
`seats_per_game = S` (an attribute or method of its builder). The check builds the training set
at two group sizes and counts the envs of its groups.
"""

from __future__ import annotations

import asyncio
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

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
from cookbook.testing.context import tiny_context
from cookbook.testing.policy import ScriptedPolicy
from cookbook.testing.report import CheckFailed, Checklist, ContractReport, describe_error
from cookbook.testing.shared import (
    asserting,
    batches_text,
    builder_pair,
    check_metrics,
    configure,
    first_batch,
    import_check,
    is_number,
    load_tinker,
    names_text,
    resolve_target,
    run_async,
    short_repr,
)

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext

_T = TypeVar("_T")

EnvTarget = str | type[RLDatasetBuilder] | RLDatasetBuilder
"""A registered env name (`tictactoe`, `dist:name`), a builder class, or a configured builder."""


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
    label, loader, modules = resolve_target("env", target, overrides)
    report = ContractReport("env", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _EnvState()
    policy = ScriptedPolicy(ctx.tokenizer)

    def config() -> str:
        state.builder, detail = configure(loader, RLDatasetBuilder, overrides, "env", label)
        return detail

    import_check(checks, modules, check_imports)
    load_tinker()
    checks.run("config", config)
    checks.run("builds", lambda: _build_env(state, ctx), needs=["config"])
    checks.run("batches", lambda: _env_batches(state, num_groups), needs=["builds"])
    checks.run("picklable", lambda: _pickle_groups(state), needs=["batches"])
    checks.run(
        "rollouts",
        lambda: _rollouts(state, policy, seed, max_turns, step_timeout_s),
        needs=["batches"],
    )
    checks.run("group size", lambda: _group_size(state, ctx), needs=["rollouts"])
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
    tested = batches_text(len(test)) if test is not None else "none"
    return f"train: {batches_text(len(train))}; test: {tested} (tiny model, seed {ctx.seed})"


def _env_batches(state: _EnvState, num_groups: int) -> str:
    parts: list[str] = []
    for split, dataset in (("train", state.train), ("test", state.test)):
        if dataset is None:
            continue
        batch: list[EnvGroupBuilder] = []
        for i, item in enumerate(first_batch(dataset, split)):
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
    state.runs = run_async(_roll_groups(groups, policy, seed, max_turns, step_timeout_s))
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


def _declared_seats(builder: RLDatasetBuilder | None) -> int | None:
    """The builder's `seats_per_game` (attribute or method), checked; None when undeclared."""
    declared = getattr(builder, "seats_per_game", None)
    if callable(declared):
        declared = declared()
    if declared is None:
        return None
    if not (isinstance(declared, int) and not isinstance(declared, bool) and declared >= 1):
        raise CheckFailed(
            f"{type(builder).__name__}.seats_per_game is {short_repr(declared)}; declare it as "
            "a positive int (the seats of one game)"
        )
    return declared


def _sizes_allowed(group_size: int, seats: int | None) -> list[int]:
    return [group_size] if seats in (None, 1) else [group_size, seats * group_size]


def _group_size(state: _EnvState, ctx: BuildContext) -> str:
    seats = _declared_seats(state.builder)
    rule = (
        "a group holds group_size envs (a game of S seats puts group_size/S games in a group); "
        "an env that makes group_size games of S seats per group declares seats_per_game = S on "
        "its builder"
    )
    allowed = _sizes_allowed(ctx.group_size, seats)
    seen: set[int] = set()
    for run in state.runs:
        if not run.label.startswith("train") or run.trajectories_G is None:
            continue
        size = len(run.trajectories_G)
        seen.add(size)
        if size not in allowed:
            raise CheckFailed(
                f"{run.label} has {size} envs, but the runner asked for group_size="
                f"{ctx.group_size}; {rule}"
            )
    # A size written into the env instead of read from ctx.group_size shows at another size.
    other = ctx.group_size * 2
    assert state.builder is not None
    train, _ = _rl_pair(state.builder(replace(ctx, group_size=other)))
    builder = first_batch(train, "train")[0]
    if not isinstance(builder, EnvGroupBuilder):
        raise CheckFailed(
            f"train batch 0 item 0 is a {type(builder).__name__} at group_size={other}"
        )
    size = len(run_async(builder.make_envs()))
    if size not in _sizes_allowed(other, seats):
        raise CheckFailed(
            f"built with group_size={other}, train group 0 has {size} envs (is a size written "
            f"into the env instead of read from ctx.group_size?); {rule}"
        )
    declared = f"; seats_per_game = {seats}" if seats is not None else ""
    held = "/".join(str(n) for n in sorted(seen))
    return (
        f"train groups hold {held} envs at group_size={ctx.group_size}, {size} at "
        f"group_size={other}{declared}"
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
                    f"{run.label}: compute_group_rewards entry {i} is {short_repr(item)}, "
                    "not a (reward, metrics) pair"
                )
            if not is_number(item[0]) or not isinstance(item[1], Mapping):
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
        and all(is_number(v) and math.isfinite(v) for v in declared)
        and declared[0] <= declared[1]
    ):
        raise CheckFailed(f"{source} is {short_repr(declared)}; declare it as (low, high) floats")
    return float(declared[0]), float(declared[1])


def _rewards(state: _EnvState, given: tuple[float, float] | None) -> str:
    bounds = _declared_range(state.builder, given)
    totals: list[float] = []
    for run in state.runs:
        assert run.group is not None
        for g, trajectory in enumerate(run.group.trajectories_G):
            for t, transition in enumerate(trajectory.transitions):
                if not is_number(transition.reward) or not math.isfinite(transition.reward):
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
        f"{short_repr(first.stop)}; first: {short_repr(text, 60)}"
    )


def _check_stop(stop: object, vocab: int, i: int) -> None:
    fix = "use ctx.renderer.get_stop_sequences()"
    if not isinstance(stop, list) or not stop:
        raise CheckFailed(
            f"observation {i} came with stop condition {short_repr(stop)}; give a non-empty list "
            f"of stop token ids or strings ({fix})"
        )
    if all(isinstance(s, int) and not isinstance(s, bool) for s in stop):
        bad = [s for s in stop if not 0 <= s < vocab]
        if bad:
            raise CheckFailed(f"observation {i}: stop token ids {bad} are outside the vocabulary")
        return
    if not all(isinstance(s, str) and s for s in stop):
        raise CheckFailed(
            f"observation {i}: stop condition {short_repr(stop)} mixes types or has empty "
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
                step_keys |= check_metrics(transition.metrics, f"{where} step metrics")
                for key, value in transition.logs.items():
                    if not (isinstance(key, str) and isinstance(value, str)):
                        raise CheckFailed(
                            f"{where}: logs must map str to str, got {short_repr(key)}: "
                            f"{type(value).__name__}"
                        )
        for g, metrics in enumerate(run.group.metrics_G):
            group_keys |= check_metrics(metrics, f"{run.label} env {g} group metrics")
    return f"step: {names_text(step_keys)}; group: {names_text(group_keys)} (all finite numbers)"


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
    replay = run_async(
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


def _rl_pair(result: object) -> tuple[RLDataset, RLDataset | None]:
    train, test = builder_pair(result, "RLDataset")
    if not isinstance(train, RLDataset):
        raise CheckFailed(f"the train set is a {type(train).__name__}, not an RLDataset")
    if test is not None and not isinstance(test, RLDataset):
        raise CheckFailed(f"the test set is a {type(test).__name__}, not an RLDataset or None")
    return train, test


def _same_number(a: float, b: float) -> bool:
    """Equal, NaN included (a NaN reward is the rewards check's finding, not a nondeterminism)."""
    return a == b or (math.isnan(a) and math.isnan(b))


assert_env_contract = asserting(check_env, "assert_env_contract")
"""`check_env`, raising `AssertionError` with the report when a check fails."""
