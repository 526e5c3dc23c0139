"""`cookbook.rl.search.SearchReplay`, `ProbeMeans` and `root_data`: which searched roots are kept
for training (`search.replay`), how probe returns rank ties, and the datums of drawn targets."""

from __future__ import annotations

import math

from cookbook.rl.search import (
    KeptRoot,
    ProbeMeans,
    RevisitStore,
    RootResult,
    SearchReplay,
    root_data,
)


def _root(prompt: int, returns: list[float], seed: int = 0) -> RootResult:
    return RootResult([prompt, 100], [[1, 0], [2, 0], [3, 0]], returns, seed)


def test_keeps_the_newest_root_per_prompt_up_to_its_size() -> None:
    replay = SearchReplay(3)
    replay.add([_root(1, [1, 0, 0]), _root(2, [0, 1, 0]), _root(3, [0, 0, 1])])
    replay.add([_root(1, [0, 1, 0]), _root(4, [1, 0, 0])])  # 1 searched again: newest now
    kept = {tuple(r.ob_tokens): r for r in replay.draw(10, 0)}
    assert sorted(p for p, _ in kept) == [1, 3, 4]  # 2 was the oldest
    assert kept[(1, 100)].returns == [0, 1, 0]
    # A root with no target any more drops its outdated one; a constant root is never kept.
    replay.add([_root(3, [0, 0, 0]), _root(5, [0, 0, 0])])
    assert len(replay) == 2 and sorted(r.ob_tokens[0] for r in replay.draw(10, 0)) == [1, 4]


def test_draws_are_seeded_and_without_replacement() -> None:
    replay = SearchReplay(100)
    replay.add([_root(p, [1, 0, 0]) for p in range(50)])
    first = [r.ob_tokens[0] for r in replay.draw(20, 7)]
    assert first == [r.ob_tokens[0] for r in replay.draw(20, 7)]
    assert len(set(first)) == 20
    assert first != [r.ob_tokens[0] for r in replay.draw(20, 8)]


def test_root_data_draws_a_fresh_tied_target_per_replay() -> None:
    tied = _root(1, [1, 1, 0], seed=3)
    drawn = set()
    for draw in range(20):
        (datum,) = root_data([tied], one_target=True, draw=draw)
        target = datum.loss_fn_inputs["target_tokens"].tolist()
        weights = datum.loss_fn_inputs["weights"].tolist()
        assert weights == [0.0, 1.0, 1.0]  # the prompt's last token is not trained
        drawn.add(target[1])
    assert drawn == {1, 2}  # both best candidates, never the third
    both = root_data([tied])
    assert [d.loss_fn_inputs["weights"].tolist() for d in both] == [[0.0, 0.5, 0.5]] * 2


def test_early_returns_break_ties_and_only_an_all_equal_root_has_no_target() -> None:
    # Every line loses in the end; the second loses later: it is the target.
    late = RootResult([1, 100], [[1, 0], [2, 0], [3, 0]], [-1, -1, -1], 0, [-1, 0, -1])
    assert late.best() == [1] and late.targets() == [([2, 0], 1.0)]
    # The return ranks first; the early return only orders the candidates it ties.
    ranked = RootResult([1, 100], [[1, 0], [2, 0], [3, 0]], [1, 1, 0], 0, [0, 1, 1])
    assert ranked.best() == [1]
    # Without early returns the same returns carry no signal; with equal ones neither.
    assert RootResult([1, 100], [[1, 0], [2, 0]], [-1, -1]).targets() == []
    assert RootResult([1, 100], [[1, 0], [2, 0]], [-1, -1], 0, [0, 0]).targets() == []


def test_the_policys_own_choice_is_the_target_whenever_it_is_among_the_best() -> None:
    candidates = [[1, 0], [2, 0], [3, 0]]
    for draw in range(10):
        own = RootResult([1, 100], candidates, [1, 1, 0], draw, own=1)
        assert own.targets(one=True) == [([2, 0], 1.0)] and own.targets() == [([2, 0], 1.0)]
    # Not among the best (or no candidate's tokens, -1): the best are drawn as without it.
    worse = RootResult([1, 100], candidates, [1, 0, 0], 0, own=2)
    assert worse.targets(one=True) == [([1, 0], 1.0)]
    unknown = RootResult([1, 100], candidates, [1, 1, 0], 0, own=-1)
    assert {tuple(unknown.targets(one=True, draw=d)[0][0]) for d in range(20)} == {(1, 0), (2, 0)}
    # No signal stays no signal, even for the policy's choice.
    assert RootResult([1, 100], candidates, [0, 0, 0], 0, own=0).targets() == []


def test_probe_returns_break_the_ties_left_after_the_early_returns() -> None:
    root = RootResult([1], [[1], [2], [3], [4]], [0, 0, 0, -1], 0, [0, 0, -1, -1])
    assert root.best() == [0, 1] and not root.probe_decided()
    root.probe_returns = [0.2, 0.6, 0.9, 1.0]  # 2 and 3 rank lower before the probe counts
    assert root.best() == [1] and root.probe_decided()
    root.probe_returns = [0.6, 0.6, 0.0, 0.0]
    assert root.best() == [0, 1] and not root.probe_decided()
    # A root that ties everywhere but in its probe returns gets a target from them.
    flat = RootResult([2], [[1], [2]], [0, 0], 0, [0, 0], probe_returns=[0.5, 0.25])
    assert flat.best() == [0] and flat.probe_decided()
    assert flat.targets(one=True) == [([1], 1.0)]
    # Means within the margin of the best stay tied.
    flat.probe_margin = 0.3
    assert flat.best() == [] and not flat.probe_decided()
    flat.probe_margin = 0.2
    assert flat.best() == [0]


def test_probe_means_average_a_roots_visits_then_weigh_the_newest_most() -> None:
    means = ProbeMeans(visits=2, max_roots=2)
    root = RootResult([7], [[1], [2]], [0, 0])
    assert means.update(root, [1.0, -1.0]) == [1.0, -1.0]
    assert means.update(root, [0.0, 0.0]) == [0.5, -0.5]  # the mean of two visits
    assert means.update(root, [0.0, 1.0]) == [0.25, 0.25]  # then halfway to each new one
    other = RootResult([8], [[1], [2]], [0, 0])
    assert means.update(other, [1.0, 1.0]) == [1.0, 1.0]  # per prompt
    # Only the newest `max_roots` prompts keep their means.
    means.update(RootResult([9], [[1], [2]], [0, 0]), [0.0, 0.0])
    assert len(means) == 2
    assert means.update(root, [-1.0, -1.0]) == [-1.0, -1.0]  # forgotten: a first visit again
    # A candidate left out of a visit (NaN: it was not tied) keeps its mean; one never probed
    # ranks below every probed one.
    fresh = RootResult([10], [[1], [2]], [0, 0])
    assert means.update(fresh, [0.5, math.nan]) == [0.5, -math.inf]
    assert means.update(fresh, [math.nan, 1.0]) == [0.5, 1.0]


def test_revisit_store_keeps_the_newest_missed_roots_one_per_prompt() -> None:
    store = RevisitStore(2)
    roots = [_root(p, [1, 0, 0]) for p in range(4)]
    for p, root in enumerate(roots):
        root.missed = KeptRoot(env=None, ob=p, stop=[])  # type: ignore[arg-type]
    store.update(roots[:3])
    assert len(store) == 2 and sorted(k.ob for k in store.draw(5, 0)) == [1, 2]  # type: ignore[type-var]
    assert all(r.missed is None for r in roots[:3])  # the store holds them now
    store.update([_root(2, [1, 0, 0])])  # searched again, its move now best: dropped
    assert [k.ob for k in store.draw(5, 0)] == [1]
    assert len(store.draw(1, 3)) == 1 and store.draw(0, 3) == []
