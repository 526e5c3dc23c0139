"""What some games need beyond tic-tac-toe and plain Nim (`variant_games.py`): chance events
replayed exactly from per-game seeds, a score as the reward, weighted optimal moves, and games
found by their textarena id."""

from __future__ import annotations

import asyncio
import random

import pytest
from cookbook_textarena.catalog import base_id, family_of, load_game
from cookbook_textarena.demos import demonstrations
from cookbook_textarena.envs import TwoPlayerGroupBuilder
from cookbook_textarena.game import GameSession, Outcome, score_metric
from cookbook_textarena.players import OptimalPlayer
from cookbook_textarena.seeding import ChanceStream
from cookbook_textarena.testing import ScriptedSamplingClient, play_group
from nim_game import Nim
from variant_games import (
    DealtNim,
    DealtNimEnvBuilder,
    RegisteredNim,
    ScoredNim,
    ScoredNimEnvBuilder,
    ScoredNimVsRandomEval,
)

from cookbook.errors import UserError
from cookbook.testing import assert_env_contract, tiny_context

FAMILIES = {"Nim": "variant_games:RegisteredNim"}


def piles(prompt: str) -> list[int]:
    return [int(n) for n in prompt.split()]


def take_all_of_first(prompt: str) -> str:
    sizes = piles(prompt)
    pile = next(i for i, n in enumerate(sizes) if n)
    return f"{pile} {sizes[pile]}"


def test_a_chance_stream_resumes_and_leaves_the_global_generator_alone() -> None:
    random.seed(123)
    expected = [random.random() for _ in range(2)]
    random.seed(123)
    stream = ChanceStream(7)
    with stream.active():
        first = [random.random() for _ in range(2)]
    outside = random.random()
    with stream.active():
        second = random.random()
    assert [outside, random.random()] == expected  # the global stream went on untouched
    reference = random.Random(7)
    assert [*first, second] == [reference.random() for _ in range(3)]  # one stream, resumed


def test_a_game_of_chance_deals_from_its_session_seed() -> None:
    def dealt(seed: int) -> str:
        return GameSession(DealtNim(), chance_seed=seed).prompt(0, "compact")

    assert dealt(1) == dealt(1)
    assert len({dealt(seed) for seed in range(20)}) > 5  # the seed decides the deal
    random.seed(0)
    before = random.getstate()
    GameSession(DealtNim(), chance_seed=3)
    assert random.getstate() == before  # textarena's deal did not touch the global stream


def test_games_without_chance_ignore_the_seed() -> None:
    assert GameSession(Nim(), chance_seed=1).prompt(0, "compact") == "1 2 3"


def test_env_groups_and_demonstrations_of_a_chance_game_replay() -> None:
    group = DealtNimEnvBuilder()(tiny_context(group_size=4))[0].get_batch(0)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    boards = [
        [
            steps[0].logs["board"]
            for steps in asyncio.run(play_group(group, [take_all_of_first] * 4))[0]
        ]
        for _ in range(2)
    ]
    assert boards[0] == boards[1]
    first = demonstrations(DealtNim(), "compact", num_games=6, seed=0, optimal_fraction=0.0)
    assert first == demonstrations(DealtNim(), "compact", num_games=6, seed=0, optimal_fraction=0)
    assert len({d.prompt for d in first}) > 3
    assert_env_contract(DealtNimEnvBuilder, check_imports=False)


def test_a_scored_game_is_rewarded_by_its_score() -> None:
    session = GameSession(ScoredNim())
    for reply in ("0 1", "1 2", "2 3"):
        session.play(reply)
    assert session.outcome(0) == Outcome.WIN
    assert session.score(0) == pytest.approx(1 / 3) and session.score(1) == pytest.approx(-1 / 3)

    group = ScoredNimEnvBuilder()(tiny_context(group_size=2))[0].get_batch(0)[0]
    steps_G, group_G = asyncio.run(play_group(group, [take_all_of_first] * 2))
    for steps, (_, metrics) in zip(steps_G, group_G, strict=True):
        assert steps[-1].reward == metrics["score"]
        assert abs(metrics["score"]) == pytest.approx(1 / metrics["game_length"])


def test_an_illegal_move_ends_a_scored_game_with_the_illegal_penalty() -> None:
    session = GameSession(ScoredNim())
    session.play("9 9")
    assert session.score(0) is None and session.outcome(0) == Outcome.ILLEGAL
    assert score_metric(Outcome.ILLEGAL, None) == -1.0
    assert score_metric(Outcome.OPPONENT_ILLEGAL, None) == 1.0
    group = ScoredNimEnvBuilder(illegal_penalty=-0.5)(tiny_context(group_size=2))[0].get_batch(0)[0]
    steps_G, group_G = asyncio.run(play_group(group, [lambda _: "nonsense"] * 2))
    assert [s[-1].reward for s in steps_G] == [-0.5, -0.5]
    assert [m["score"] for _, m in group_G] == [-1.0, -1.0]


def test_the_eval_of_a_scored_game_reports_its_mean_score() -> None:
    evaluator = ScoredNimVsRandomEval(num_games=6)(tiny_context())
    metrics = asyncio.run(evaluator(ScriptedSamplingClient(take_all_of_first)))
    assert -1.0 <= metrics["mean_score"] <= 1.0
    assert metrics["win_rate"] > 0 or metrics["mean_score"] < 0


def test_repeated_optimal_actions_weight_the_choice() -> None:
    class Weighted(Nim):
        def optimal_actions(self, env: object) -> list[str]:
            return ["[0 1]", "[1 1]", "[1 1]", "[1 1]"]

    async def picks() -> list[str]:
        rng = random.Random(0)
        session = GameSession(Weighted())
        return [await OptimalPlayer().reply(session, rng) for _ in range(2000)]

    share = asyncio.run(picks()).count("[1 1]") / 2000
    assert 0.7 < share < 0.8  # 3 in 4


def test_ids_lose_their_wrapper_suffix_and_name_their_family() -> None:
    assert base_id("Nim-v0-train") == base_id("Nim-v0-raw") == "Nim-v0"
    assert base_id("Nim-v0-large") == "Nim-v0-large"
    assert family_of("KuhnPoker-v0-short") == "KuhnPoker"


def test_games_load_by_id_with_the_variant_of_the_id() -> None:
    game = load_game("Nim-v0-train", FAMILIES)
    assert isinstance(game, RegisteredNim) and game.env_id == "Nim-v0"
    assert game == RegisteredNim("Nim-v0") and game != RegisteredNim("Nim-v0-medium")
    assert GameSession(game).prompt(0, "compact") == "3 4 5"  # textarena's Nim-v0 piles
    medium = load_game("Nim-v0-medium", FAMILIES)
    assert GameSession(medium).prompt(0, "compact") == "4 2 3 7"
    assert isinstance(load_game("nim_game:Nim", FAMILIES), Nim)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Chess-v0", r"no game module for textarena game 'Chess-v0'; games with one: Nim"),
        ("Nim-v7", r"textarena has no game 'Nim-v7' \(did you mean 'Nim-v0'"),
        ("Nmi-v0", r"did you mean 'Nim'"),
        ("no_such_module:Game", r"cannot import 'no_such_module'"),
        ("nim_game:piles_of", r"nim_game:piles_of is not a TwoPlayerGame subclass"),
    ],
)
def test_a_game_name_that_is_no_game_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_game(name, FAMILIES)
