"""Search targets (expert iteration): an optional env capability and the loop mode built on it.

An env that can branch implements `SearchableEnv` besides `Env`: at a decision point it lists
its candidate actions (as the tokens the policy would sample) and `fork`s an independent copy of
itself. With `Config.search` set, each RL step then does, for every env of the step's batch
(a *root*, at its first decision point, or with `walk_turns` where the policy's own turns
from there lead):

1. every candidate action is played in a fork of the root env;
2. each branch goes on for `horizon` policy turns in all (the candidate included; 0: to the
   end), the policy's later turns sampled at `temperature` (0: greedy) with the current weights,
   the env's own opponent moving as usual; a cut branch's return is the reward it got so far;
3. the candidates with the highest return are the root's targets (`early_tie_break`: of
   those, the ones with the highest return after their own turn; `probe_opponent`: of those,
   the ones that did best against a weaker opponent over the root's visits): `cross_entropy` on the
   action tokens of the root prompt + target, nothing on the prompt. The policy's own choice
   at the root when it is one of them (`own_choice`), else one of them drawn at random, weight
   1 (`one_target`, the default), or all of them, weight 1 / (their number). A root whose
   candidates all rank the same carries no signal and is left out.

With `symmetries`, an env that also shows a position under its game's symmetries
(`SymmetricEnv`: a board turned or mirrored, with the candidates mapped) has each target
trained in one of those views, drawn per update: one search then teaches every equivalent
position.

Nothing in this is a teacher beyond the env itself: the targets come from the env's rewards and
the policy's own play, so whatever opponent the env seats (a solver, random play, a frozen
checkpoint) plays its usual part. Signed per-candidate advantages were tried in a prototype and
leak probability mass into malformed actions (lowering one candidate's tokens raises every
other continuation, the unparseable ones too); cross-entropy on the best candidates does not.

Roots come from the env's own batches (`get_batch(step)`), so a resumed run searches the same
roots, and the horizon is a function of the step: resume needs nothing beyond the checkpoint
(what `replay`, `revisit` and `probe_opponent` keep in memory starts empty again).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

import chz

from cookbook.errors import UserError
from cookbook.rl.types import Action, Env, Observation, StepResult, StopCondition

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.rl.rollouts import TokenPolicy
    from cookbook.rl.types import EnvGroupBuilder, RLDataset

_T = TypeVar("_T")


@runtime_checkable
class SearchableEnv(Protocol):
    """What an `Env` adds to be searched (`Config.search`). Both methods are called only at a
    decision point: after `initial_observation`, or after a `step` that did not end the episode.
    """

    def candidate_actions(self) -> Sequence[Action]:
        """The actions worth trying here, as the tokens the policy would sample for each (its
        end-of-turn token included), in a fixed order. Illegal actions may be listed: stepping
        one must give what the env gives any illegal action (tic-tac-toe lists all nine cells,
        an occupied one loses the game)."""
        ...

    def fork(self) -> Env:
        """An independent copy at the same decision point (itself a `SearchableEnv`): stepping
        either leaves the other unchanged. Random streams are copied too, so the copies meet
        the same chance and opponent choices until their moves differ."""
        ...


@runtime_checkable
class ProbeableEnv(Protocol):
    """What a `SearchableEnv` adds for `SearchConfig.probe_opponent`."""

    def fork_against(self, opponent: str) -> Env:
        """A `fork` in which `opponent` (a name the env knows) answers the policy from now on;
        a `UserError` naming the choices for a name it does not know."""
        ...


@runtime_checkable
class SymmetricEnv(Protocol):
    """What a `SearchableEnv` adds for `SearchConfig.symmetries`."""

    def symmetric_views(
        self, candidates: Sequence[Action]
    ) -> Sequence[tuple[Observation, Sequence[Action]]]:
        """This decision point under each of the game's symmetries other than the identity (a
        board rotated or mirrored): the observation the policy would see there and
        `candidates` (this env's `candidate_actions`) mapped to it, in the same order. Empty
        when its game has none; a `UserError` when the env cannot show them (a prompt style it
        cannot transform)."""
        ...


@chz.chz
class SearchConfig:
    """`search.*` options of `cookbook rl`: train on one-ply search targets instead of sampled
    rollouts. The roots per step are the envs of the step's batch (groups_per_batch x
    group_size); loss_fn and the sampling temperature of plain RL do not apply."""

    horizon: int = 1
    """Policy turns per branch, the candidate included; the rest of the episode is cut (its
    return is the reward so far). 1: the candidate and the env's answer to it ("win now if you
    can, never allow an immediate loss"); 0: play every branch to the end."""
    deep_horizon: int = 0
    """The horizon from step `deepen_at_step` on (0: to the end): deeper targets (forks, long
    draws) once the short ones are learned; deeper returns are noisier while the policy is
    weak."""
    deepen_at_step: int = 0
    """The step from which `deep_horizon` replaces `horizon` (0: never)."""
    temperature: float = 0.0
    """Sampling temperature of the policy's own turns after the candidate (0: greedy)."""
    max_turns: int = 100
    """Longest branch, in policy turns (a branch still going is cut there)."""
    one_target: bool = True
    """Train on one of a root's best candidates, drawn at random (seeded by the run's seed, the
    step and the root), weight 1, instead of all of them weighted 1 / (their number): the same
    expected update from fewer datums. Ties are the rule while targets are short (at horizon 1
    every legal move that neither wins nor loses at once ties), so an update costs a quarter as
    much (tic-tac-toe: 52 datums a step instead of about 200)."""

    early_tie_break: bool = True
    """Rank candidates of equal return by their return after their own turn (the env's answer
    included): a sooner win first and, where every line loses, the loss that comes later. A
    position the policy's continuation cannot hold yet still teaches its immediate defence (the
    block), instead of no target at all. Free: the same branches, read earlier."""
    own_choice: bool = False
    """Of the best candidates, train the one the policy plays at the root now (one more policy
    turn per root, at `temperature`), when it is one of them: a target then changes only where
    the policy's move is strictly worse (policy iteration's rule), not between equal moves. The
    share of roots where the policy's move is best shows as `search/own_best_frac`. Off by
    default: on tic-tac-toe it learned faster per step but lost more games to random play
    (`plugins/tictactoe/README.md`)."""

    probe_opponent: str | None = None
    """An opponent whose mistakes the policy should learn to use (tic-tac-toe: `random`), for
    the ties left: each candidate still tied also plays one game against it in a fork
    (`ProbeableEnv.fork_against`), the policy continuing greedily to the end, and of the best
    candidates the ones with the highest mean probe return over the root's last
    `probe_visits` visits (within `probe_margin`) are the targets. Against the best opponent
    many moves hold the value (a draw); against a weak one some win far more often (tic-tac-toe's second seat: 78% of
    games won against random play with ties broken at random, 88% with them broken by the mean
    over the weak opponent's replies). Costs a second branch per tied candidate, played to the
    end, after the first ones; the means live for the run (a resumed run starts with none)."""
    probe_visits: int = 32
    """Visits of a root the probe means run over: a plain mean up to this many, then an
    exponential mean of that weight (the policy's continuation changes as it learns)."""
    probe_margin: float = 0.1
    """Candidates whose probe mean is within this of the best one's stay tied: a mean of a few
    games is noisy, and a target that flips between near-equal moves on every visit is learned
    worse than a tie drawn at random."""

    revisit: float = 0.0
    """The share of each step's groups replaced by roots searched before where the policy's
    own move (asked at `temperature`, one policy turn per root) was not a best candidate, one
    root per replaced group, drawn from the newest `revisit_size` such roots; a root whose move
    has become best is dropped. Hard positions come back until they are learned, instead of
    waiting for a random batch to hold them again. The kept roots live for the run (a resumed
    run starts with none)."""
    revisit_size: int = 512
    """Roots kept for `revisit` (the newest, one per prompt)."""

    walk_turns: int = 0
    """Roots from the policy's own games: before a new root is searched, the policy plays a
    number of its own turns drawn from 0 to this (at `temperature`, with the current weights)
    in its env against the env's own opponent, after the env's own opening, and the position
    it reaches is the root (the one before, where a turn ended the episode). The positions a
    strong opponent leads this policy into then come up as roots far more often than in random
    openings, where one mistake costs a whole line of games. 0: roots where the env starts."""

    symmetries: bool = False
    """Train each root's target under one of the game's symmetries drawn at random (the
    identity included; the env's `SymmetricEnv.symmetric_views`): tic-tac-toe's 8 rotations
    and mirror images of a board share one value, so one search teaches 8 positions, and an
    update drawn from the same kept roots holds more distinct prompts. The search itself and
    the kept roots stay in the env's own view."""

    replay: int = 0
    """Roots whose targets are kept for training (0: train on this step's roots only). Each
    step adds its roots (a prompt searched again replaces its older search) and drops the
    oldest, then trains on `train_roots` of the kept ones drawn at random: bigger updates
    than one step's roots give, for no more searching (as AlphaZero's replay buffer). A kept
    target is at most `replay` / (roots per step) steps old (tic-tac-toe's settings: 32); a
    resumed run starts with none kept."""
    train_roots: int = 256
    """Roots per update, drawn from the kept ones (with `replay`)."""

    def horizon_at(self, step: int) -> int:
        """The horizon of `step` (0: to the end of the episode)."""
        if self.deepen_at_step > 0 and step >= self.deepen_at_step:
            return self.deep_horizon
        return self.horizon

    def problems(self) -> list[tuple[bool, str]]:
        """(ok, message) pairs for `validate_config`."""
        return [
            (self.horizon >= 0, "search.horizon must be >= 0 (0: to the end of the episode)"),
            (self.deep_horizon >= 0, "search.deep_horizon must be >= 0 (0: to the end)"),
            (self.deepen_at_step >= 0, "search.deepen_at_step must be >= 0 (0: never)"),
            (self.temperature >= 0, "search.temperature must be >= 0 (0: greedy)"),
            (self.max_turns >= 1, "search.max_turns must be at least 1"),
            (self.replay >= 0, "search.replay must be >= 0 (0: train on each step's roots)"),
            (self.train_roots >= 1, "search.train_roots must be at least 1"),
            (self.probe_visits >= 1, "search.probe_visits must be at least 1"),
            (self.probe_margin >= 0, "search.probe_margin must be >= 0"),
            (0 <= self.revisit < 1, "search.revisit must be >= 0 and < 1 (a share of the groups)"),
            (self.revisit_size >= 1, "search.revisit_size must be at least 1"),
            (self.walk_turns >= 0, "search.walk_turns must be >= 0 (0: no walk)"),
            (
                self.probe_opponent is None or bool(self.probe_opponent.strip()),
                "search.probe_opponent must name an opponent (e.g. random), or be left unset",
            ),
        ]


@dataclass
class RootResult:
    """One root: its prompt, its candidates and what each returned."""

    ob_tokens: list[int]
    candidates: list[Action]
    returns: list[float]
    seed: int = 0
    """The root's seed: which best candidate `targets(one=True)` draws."""
    early_returns: list[float] | None = None
    """Each candidate's return after its own turn, which breaks ties of `returns` (None: no
    tie-break)."""
    own: int | None = None
    """The candidate the policy played at the root, the target whenever it is one of the best
    (None: not asked; -1: the policy's tokens were no candidate's)."""
    probe_returns: list[float] | None = None
    """Each candidate's mean return against the probe opponent over the root's visits, which
    breaks the ties left (None: no probe; -inf: a candidate never probed, as only those tied
    on the earlier keys are)."""
    probe_margin: float = 0.0
    """Probe returns within this of the best are equal."""
    views: list[tuple[list[int], list[Action]]] = field(default_factory=list, repr=False)
    """With `symmetries`: the root's prompt and candidates under each of the env's other
    symmetries (`SymmetricEnv.symmetric_views`), candidates in the same order."""
    missed: KeptRoot | None = field(default=None, repr=False)
    """With `revisit`: the root, kept (a fork at its decision point), when the policy's own move
    was not a best candidate; `RevisitStore.update` takes it."""

    def best(self) -> list[int]:
        """The indices of the best candidates: the highest return, ties broken by the highest
        early return, then by the highest probe return; empty when every candidate ranks the
        same (no signal)."""
        tops = _tops(range(len(self.returns)), self.returns)
        if self.early_returns is not None:
            tops = _tops(tops, self.early_returns)
        if self.probe_returns is not None:
            tops = _tops(tops, self.probe_returns, self.probe_margin)
        return [] if len(tops) == len(self.returns) else tops

    def probe_decided(self) -> bool:
        """Whether the probe returns narrowed the best candidates (a tie they broke)."""
        if self.probe_returns is None:
            return False
        without = RootResult(self.ob_tokens, self.candidates, self.returns, 0, self.early_returns)
        return len(without.best() or self.returns) > len(self.best() or self.returns)

    def targets(self, one: bool = False, draw: int | None = None) -> list[tuple[Action, float]]:
        """The best candidates with their weights (1 / their number), or with `one` a single
        one of them (drawn with the root's seed, or `draw`) weighing 1; only the policy's own
        choice when it is one of them; none when every candidate ranks the same."""
        return [(self.candidates[i], w) for i, w in self.target_indices(one, draw)]

    def target_indices(self, one: bool = False, draw: int | None = None) -> list[tuple[int, float]]:
        """`targets` as (candidate index, weight) pairs."""
        tops = self.best()
        if self.own in tops:
            return [(self.own, 1.0)]
        if one and tops:
            return [(random.Random(self.seed if draw is None else draw).choice(tops), 1.0)]
        return [(i, 1.0 / len(tops)) for i in tops]

    def view(self, draw: int) -> tuple[list[int], list[Action]]:
        """The prompt and candidates of one of the root's views drawn with `draw` (the env's
        own view, or one of `views`)."""
        k = random.Random(draw).randrange(len(self.views) + 1)
        return (self.ob_tokens, self.candidates) if k == 0 else self.views[k - 1]


def _tops(indices: Iterable[int], values: Sequence[float], margin: float = 0.0) -> list[int]:
    """Those of `indices` whose value is the highest among them (within `margin`, or
    `RETURN_TIE`)."""
    indices = list(indices)
    best = max(values[i] for i in indices)
    return [i for i in indices if best - values[i] < max(margin, RETURN_TIE)]


RETURN_TIE = 1e-9
"""Returns closer than this are equal."""


@dataclass
class SearchBatch:
    """What one step's search found."""

    roots: list[RootResult] = field(default_factory=list)
    lost: int = 0
    """Roots lost to an env error."""
    errors: list[str] = field(default_factory=list)
    """One line per lost root."""
    num_roots: int = 0
    """Roots in the batch, lost ones included."""
    policy_turns: int = 0
    """Turns the policy played in continuations."""
    horizon: int = 0
    sampler_step: int = 0
    """The step whose weights played the policy's turns."""
    time_s: float = 0.0
    revisit: bool = False
    """Whether `revisit` is on (each root asked the policy's own move)."""
    revisited: int = 0
    """Roots searched again (`revisit`)."""
    walked_turns: int = 0
    """Turns the policy played to reach new roots (`walk_turns`)."""

    def metrics(self) -> dict[str, float]:
        """`search/...`: the share of roots with a signal and with a unique best candidate, the
        share of those where the policy's own choice is best, the mean best and mean return, the
        horizon, the policy's continuation turns, lost roots."""
        n = len(self.roots)
        out = {
            "search/roots": float(self.num_roots),
            "search/lost_roots": float(self.lost),
            "search/horizon": float(self.horizon),
            "search/policy_turns": float(self.policy_turns),
            "time/search": self.time_s,
        }
        if self.revisit:
            out["search/revisited_roots"] = float(self.revisited)
        if self.walked_turns and self.num_roots:
            out["search/walked_turns_mean"] = self.walked_turns / self.num_roots
        if n:
            tops = [r.best() for r in self.roots]
            out["search/candidates_mean"] = sum(len(r.candidates) for r in self.roots) / n
            out["search/signal_frac"] = sum(1 for t in tops if t) / n
            out["search/unique_best_frac"] = sum(1 for t in tops if len(t) == 1) / n
            asked = [
                r.own in t for r, t in zip(self.roots, tops, strict=True) if t and r.own is not None
            ]
            if asked:
                out["search/own_best_frac"] = sum(asked) / len(asked)
            with_target = sum(1 for t in tops if t)
            if self.revisit and with_target:
                missed = sum(1 for r in self.roots if r.missed is not None)
                out["search/missed_frac"] = missed / with_target
            if any(r.probe_returns is not None for r in self.roots):
                out["search/probe_decided_frac"] = sum(r.probe_decided() for r in self.roots) / n
                probed = [max(r.probe_returns) for r in self.roots if r.probe_returns]
                out["search/probe_return_mean"] = sum(probed) / len(probed) if probed else 0.0
            out["search/best_return_mean"] = sum(max(r.returns) for r in self.roots) / n
            out["search/return_mean"] = sum(sum(r.returns) / len(r.returns) for r in self.roots) / n
        return out

    def data(self, one_target: bool = False) -> list[tinker_types.Datum]:
        """The `cross_entropy` datums of this step's roots (`root_data`)."""
        return root_data(self.roots, one_target)


def root_data(
    roots: Sequence[RootResult], one_target: bool = False, draw: int | None = None
) -> list[tinker_types.Datum]:
    """The `cross_entropy` datums of `roots`: root prompt + target action, weighted on the
    action (`one_target`: one best candidate per root, drawn with the root's seed, or mixed
    with `draw` when given; `RootResult.targets`), in one of the root's views drawn the same
    way when it has several (`SearchConfig.symmetries`)."""
    from cookbook.rl.rollouts import mix_seed
    from cookbook.supervised.datums import datum_from_tokens

    data = []
    for root in roots:
        seed = None if draw is None else mix_seed(root.seed, draw)
        ob_tokens, candidates = root.view(mix_seed(root.seed, -1 if draw is None else draw, -1))
        for i, weight in root.target_indices(one_target, seed):
            tokens = ob_tokens + list(candidates[i])
            weights = [0.0] * len(ob_tokens) + [weight] * len(candidates[i])
            data.append(datum_from_tokens(tokens, weights))
    return data


class _NewestPerPrompt(Generic[_T]):
    """The newest `size` values kept, one per prompt (a prompt kept again becomes the newest)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[tuple[int, ...], _T] = {}  # oldest first

    def _put(self, key: tuple[int, ...], value: _T | None) -> None:
        """Keep `value` for `key` as the newest (None: drop the key)."""
        self._kept.pop(key, None)
        if value is not None:
            self._kept[key] = value

    def _trim(self) -> None:
        for key in list(itertools.islice(self._kept, max(len(self._kept) - self.size, 0))):
            del self._kept[key]

    def draw(self, n: int, seed: int) -> list[_T]:
        """`n` kept values drawn at random without replacement (all of them when fewer)."""
        kept = list(self._kept.values())
        return kept if n >= len(kept) else random.Random(seed).sample(kept, n)

    def __len__(self) -> int:
        """Values kept."""
        return len(self._kept)


class SearchReplay(_NewestPerPrompt[RootResult]):
    """The kept roots of `SearchConfig.replay`: the newest `size` roots with a target, one per
    prompt (a prompt searched again replaces its older search)."""

    def add(self, roots: Sequence[RootResult]) -> None:
        """Keep `roots` (those with a target), dropping the oldest past `size`; a root whose
        new search has no target is dropped too (its old target is outdated)."""
        for root in roots:
            self._put(tuple(root.ob_tokens), root if root.targets() else None)
        self._trim()


@dataclass
class KeptRoot:
    """A root kept for `SearchConfig.revisit`: a fork at its decision point (never stepped:
    branches fork it again) and the observation it showed."""

    env: Env
    ob: Observation
    stop: StopCondition


class RevisitStore(_NewestPerPrompt[KeptRoot]):
    """The roots of `SearchConfig.revisit`: the newest `size` whose policy move was not a best
    candidate, one per prompt."""

    def update(self, roots: Sequence[RootResult]) -> None:
        """Keep the missed ones of `roots` (as the newest) and drop the others' prompts."""
        for root in roots:
            self._put(tuple(root.ob_tokens), root.missed)
            root.missed = None  # the store holds it, not the replayed result
        self._trim()


class ProbeMeans(_NewestPerPrompt[dict[tuple[int, ...], tuple[float, int]]]):
    """The running mean probe return of each candidate of each root prompt seen
    (`SearchConfig.probe_opponent`), over its last `visits` visits; the `max_roots` prompts
    seen last are kept."""

    def __init__(self, visits: int, max_roots: int = 1 << 17) -> None:
        super().__init__(max_roots)
        self.visits = visits

    def update(self, root: RootResult, samples: Sequence[float]) -> list[float]:
        """Fold one visit's probe returns (one per candidate of `root`, NaN for one not probed)
        into the means, and return the candidates' means (-inf for one never probed)."""
        key = tuple(root.ob_tokens)
        seen = self._kept.get(key, {})
        self._put(key, seen)  # the newest now
        out = []
        for action, sample in zip(root.candidates, samples, strict=True):
            mean, n = seen.get(tuple(action), (-math.inf, 0))
            if not math.isnan(sample):
                n += 1
                mean = sample if n == 1 else mean + (sample - mean) / min(n, self.visits)
                seen[tuple(action)] = (mean, n)
            out.append(mean)
        self._trim()
        return out


def _lacks(env: Env, protocol: str, label: str, needs: str, fix: str) -> UserError:
    """The one-line error for an env that lacks `protocol`, `fix` saying how to go on."""
    return UserError(
        f"{needs} (cookbook.rl.search.{protocol}); {label}'s {type(env).__name__} cannot{fix}"
    )


def as_probeable(env: Env, label: str) -> ProbeableEnv:
    """`env` as a `ProbeableEnv`, or a `UserError` saying which env cannot be probed."""
    if isinstance(env, ProbeableEnv):
        return env
    needs = "search.probe_opponent needs an env that can fork itself against another opponent"
    raise _lacks(env, "ProbeableEnv", label, needs, "; drop search.probe_opponent=...")


def as_searchable(env: Env, label: str) -> SearchableEnv:
    """`env` as a `SearchableEnv`, or a `UserError` saying which env cannot be searched."""
    if isinstance(env, SearchableEnv):
        return env
    needs = "search needs an env that can list candidate actions and fork itself"
    fix = " (two-player games can, except in self-play); drop search=... to train it with plain RL"
    raise _lacks(env, "SearchableEnv", label, needs, fix)


def as_symmetric(env: Env, label: str) -> SymmetricEnv:
    """`env` as a `SymmetricEnv`, or a `UserError` saying which env has no symmetries."""
    if isinstance(env, SymmetricEnv):
        return env
    needs = "search.symmetries needs an env that can show a position under the game's symmetries"
    raise _lacks(env, "SymmetricEnv", label, needs, "; drop search.symmetries=true")


async def check_searchable(
    train_ds: RLDataset, label: str, probe_opponent: str | None = None, symmetries: bool = False
) -> None:
    """A `UserError` now, before any training, when the envs of the first batch cannot be
    searched, probed against `probe_opponent`, or shown under symmetries (they are made; with
    `symmetries` the first one is observed, and must show some)."""
    envs = [env for builder in train_ds.get_batch(0) for env in await builder.make_envs()]
    for env in envs:
        as_searchable(env, label)
        if probe_opponent is not None:
            as_probeable(env, label).fork_against(probe_opponent)
        if symmetries:
            as_symmetric(env, label)
    if symmetries and envs:
        env = envs[0]
        await env.initial_observation()
        if not as_symmetric(env, label).symmetric_views(
            as_searchable(env, label).candidate_actions()
        ):
            raise UserError(
                f"search.symmetries: {label}'s {type(env).__name__} shows no symmetric view of"
                " its first position (its game lists no symmetries); drop search.symmetries=true"
            )


async def search_batch(
    train_ds: RLDataset,
    step: int,
    policy: TokenPolicy,
    horizon: int,
    max_turns: int,
    seed: int,
    label: str,
    step_timeout_s: float | None = None,
    sampler_step: int = 0,
    early_tie_break: bool = False,
    own_choice: bool = False,
    probe_opponent: str | None = None,
    probe_means: ProbeMeans | None = None,
    probe_margin: float = 0.0,
    revisit_roots: Sequence[KeptRoot] | None = None,
    walk_turns: int = 0,
    symmetries: bool = False,
) -> SearchBatch:
    """Search every root of batch `step` (see the module docstring). An env that raises or
    returns a non-finite reward loses its root (a group builder that raises, or a group whose
    env call runs past `step_timeout_s`: one root), counted; an env that cannot be searched is a
    `UserError`. Each group runs as plain rollouts' do (`rollouts.run_watched`): with a timeout
    on a thread of its own, so env code that blocks costs its group, never the run. With
    `probe_opponent`, each candidate still tied on the other keys then plays a probe game (to
    the end) whose returns are folded into `probe_means` (a fresh one when not given) in the
    order of the roots; means within `probe_margin` of the best rank equal. `revisit_roots` (not None: `revisit` is on)
    replace the batch's last groups, one root each; every root then asks the policy's own move
    and carries itself in `missed` when that move was not a best candidate. With `walk_turns`
    the policy first plays up to that many turns of each new root's env (`SearchConfig`); with
    `symmetries` each root keeps its env's other views (`RootResult.views`)."""
    from cookbook.rl.rollouts import EnvWatch, env_call, mix_seed, run_watched

    t0 = time.perf_counter()
    out = SearchBatch(horizon=horizon, sampler_step=sampler_step)
    turns = [0]
    walked = [0]

    means = probe_means if probe_means is not None else ProbeMeans(1)

    async def branch(
        env: Env, action: Action, root_seed: int, watch: EnvWatch, horizon: int = horizon
    ) -> tuple[float, float]:
        """The return of `action` played in `env` (a fork) and the branch continued, and the
        return after the candidate's own turn."""

        result = await env_call(_stepper(env, action), step_timeout_s, "step", watch)
        total = early = result.reward
        ob, stop = result.next_observation, result.next_stop_condition
        turn = 1
        while not result.episode_done and (horizon == 0 or turn < horizon) and turn < max_turns:
            # The same seed in every branch of a root: the branches differ by their positions.
            sampled = await policy(ob, stop, mix_seed(root_seed, turn))
            turns[0] += 1
            result = await env_call(_stepper(env, sampled.tokens), step_timeout_s, "step", watch)
            total += result.reward
            ob, stop = result.next_observation, result.next_stop_condition
            turn += 1
        if not math.isfinite(total):
            raise ValueError(f"{type(env).__name__} returned a non-finite reward ({total})")
        return float(total), float(early)

    async def own(ob: Observation, stop: StopCondition, root_seed: int) -> list[int]:
        """The policy's own choice at the root (its turn 0; branches play turns 1 on)."""
        return list((await policy(ob, stop, mix_seed(root_seed, 0))).tokens)

    async def walk(
        env: Env, ob: Observation, stop: StopCondition, root_seed: int, watch: EnvWatch
    ) -> tuple[Env, Observation, StopCondition]:
        """The env after the policy's own turns (a number drawn from 0 to `walk_turns`), or a
        fork taken before the turn that ended its episode."""
        for turn in range(mix_seed(root_seed, -1) % (walk_turns + 1)):
            before = as_searchable(env, label).fork()
            sampled = await policy(ob, stop, mix_seed(root_seed, -2 - turn))
            walked[0] += 1
            result = await env_call(_stepper(env, sampled.tokens), step_timeout_s, "step", watch)
            if result.episode_done:
                return before, ob, stop
            ob, stop = result.next_observation, result.next_stop_condition
        return env, ob, stop

    revisiting = revisit_roots is not None

    async def root(
        env: Env, root_seed: int, watch: EnvWatch, kept: KeptRoot | None = None
    ) -> RootResult:
        if kept is None:
            ob, stop = await env_call(
                env.initial_observation, step_timeout_s, "initial_observation", watch
            )
            if walk_turns:
                env, ob, stop = await walk(env, ob, stop, root_seed, watch)
        else:
            ob, stop = kept.ob, kept.stop
        searchable = as_searchable(env, label)
        candidates = [list(c) for c in searchable.candidate_actions()]
        if not candidates:
            raise RuntimeError(f"{type(env).__name__}.candidate_actions() returned none")
        forks = [searchable.fork() for _ in candidates]
        branches = asyncio.gather(
            *(branch(f, c, root_seed, watch) for f, c in zip(forks, candidates, strict=True))
        )

        chosen: list[int] | None = None
        if own_choice or revisiting:
            chosen, returns = await asyncio.gather(own(ob, stop, root_seed), branches)
        else:
            returns = await branches
        mine = (
            None if chosen is None else (candidates.index(chosen) if chosen in candidates else -1)
        )
        result = RootResult(
            _ints(ob),
            candidates,
            [total for total, _ in returns],
            root_seed,
            [early for _, early in returns] if early_tie_break else None,
            mine if own_choice else None,
        )
        if symmetries:
            result.views = [
                (_ints(view_ob), [list(c) for c in view_candidates])
                for view_ob, view_candidates in as_symmetric(env, label).symmetric_views(candidates)
            ]
        tops = result.best()
        if revisiting and tops and mine not in tops:
            result.missed = kept or KeptRoot(searchable.fork(), ob, stop)
        if probe_opponent is not None:
            # Only the candidates still tied can be ranked by a probe: the rest are not probed.
            tied = result.best() or range(len(candidates))
            if len(tied) > 1:
                probeable = as_probeable(env, label)
                probed = await asyncio.gather(
                    *(
                        branch(
                            probeable.fork_against(probe_opponent),
                            candidates[i],
                            root_seed,
                            watch,
                            0,
                        )
                        for i in tied
                    )
                )
                # this visit's probe returns (NaN: not probed); replaced by the means below
                result.probe_returns = [math.nan] * len(candidates)
                for i, (total, _) in zip(tied, probed, strict=True):
                    result.probe_returns[i] = total
        return result

    async def guarded(awaitable: Awaitable[_T]) -> _T | Exception:
        try:
            return await awaitable
        except UserError:
            raise
        except Exception as e:  # env code is foreign: a failure costs its root(s) only
            return e

    async def group_in(
        p: int, builder: EnvGroupBuilder, watch: EnvWatch
    ) -> list[RootResult | Exception]:
        envs = await guarded(env_call(builder.make_envs, step_timeout_s, "make_envs", watch))
        if isinstance(envs, Exception):
            return [envs]
        for env in envs:
            as_searchable(env, label)
        return await asyncio.gather(
            *(guarded(root(env, mix_seed(seed, step, p, i), watch)) for i, env in enumerate(envs))
        )

    async def group(p: int, builder: EnvGroupBuilder) -> list[RootResult | Exception]:
        outcome = await guarded(
            run_watched(lambda watch: group_in(p, builder, watch), step_timeout_s)
        )
        return [outcome] if isinstance(outcome, Exception) else outcome

    async def revisited(p: int, kept: KeptRoot) -> list[RootResult | Exception]:
        async def run(watch: EnvWatch) -> list[RootResult | Exception]:
            return [await guarded(root(kept.env, mix_seed(seed, step, p, 0), watch, kept))]

        outcome = await guarded(run_watched(run, step_timeout_s))
        return [outcome] if isinstance(outcome, Exception) else outcome

    builders = list(train_ds.get_batch(step % len(train_ds)))
    again = list(revisit_roots or [])[: len(builders)]
    fresh = builders[: len(builders) - len(again)]
    groups = await asyncio.gather(
        *(group(p, b) for p, b in enumerate(fresh)),
        *(revisited(len(fresh) + k, kept) for k, kept in enumerate(again)),
    )
    out.revisit, out.revisited = revisiting, len(again)
    for outcome in (o for g in groups for o in g):
        out.num_roots += 1
        if isinstance(outcome, Exception):
            out.lost += 1
            out.errors.append(f"root {out.num_roots - 1}: {type(outcome).__name__}: {outcome}")
        else:
            if outcome.probe_returns is not None:
                outcome.probe_returns = means.update(outcome, outcome.probe_returns)
                outcome.probe_margin = probe_margin
            out.roots.append(outcome)
    out.policy_turns = turns[0]
    out.walked_turns = walked[0]
    out.time_s = time.perf_counter() - t0
    return out


def _stepper(env: Env, action: Action) -> Callable[[], Awaitable[StepResult]]:
    """`env.step(action)` as the call `env_call` makes."""
    return lambda: env.step(action)


def _ints(ob: Observation) -> list[int]:
    tokens: list[int] = ob.to_ints()
    return tokens
