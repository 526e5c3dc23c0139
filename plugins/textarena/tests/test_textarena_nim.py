"""The two-player layer on a second game (Nim, `nim_game.py`): sessions, opponents, seats,
self-play, demonstrations and evals work for any `TwoPlayerGame`, and the game's env, dataset and
eval keep cookbook's contracts."""

from __future__ import annotations

import asyncio
import random

import pytest
from cookbook_textarena.demos import demonstrations
from cookbook_textarena.envs import TwoPlayerGroupBuilder
from cookbook_textarena.evaluate import play_game
from cookbook_textarena.game import GameSession, Outcome
from cookbook_textarena.players import OptimalPlayer, Player, RandomPlayer
from cookbook_textarena.testing import ScriptedSamplingClient, TextPolicy, play_group
from nim_game import (
    Nim,
    NimDemosBuilder,
    NimEnvBuilder,
    NimVsOptimalEval,
    NoSolverNim,
    NoSolverNimEnvBuilder,
)

from cookbook.errors import UserError
from cookbook.testing import (
    assert_dataset_contract,
    assert_env_contract,
    assert_eval_contract,
    tiny_context,
)


def piles(prompt: str) -> list[int]:
    return [int(n) for n in prompt.split()]


def take_all_of_first(prompt: str) -> str:
    """Empty the first non-empty pile (a legal, mostly losing, move)."""
    sizes = piles(prompt)
    pile = next(i for i, n in enumerate(sizes) if n)
    return f"{pile} {sizes[pile]}"


def random_move(rng: random.Random) -> TextPolicy:
    def policy(prompt: str) -> str:
        moves = [(p, q) for p, n in enumerate(piles(prompt)) for q in range(1, n + 1)]
        p, q = rng.choice(moves)
        return f"{p} {q}"

    return policy


def first_group(builder: NimEnvBuilder, group_size: int = 4) -> TwoPlayerGroupBuilder:
    train, test = builder(tiny_context(group_size=group_size))
    assert test is None
    group = train.get_batch(0)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    return group


def test_textarena_referees_and_the_session_scores() -> None:
    session = GameSession(Nim())
    assert session.prompt(0, "compact") == "1 2 3"
    assert "Welcome to Nim" in session.prompt(0, "text")  # textarena's own observation
    for reply in ("0 1", "[1 2]", "2 3"):
        assert session.play(reply).legal
    assert session.done and session.num_moves == 3
    assert (session.outcome(0), session.outcome(1)) == (Outcome.WIN, Outcome.LOSS)

    session = GameSession(Nim())
    result = session.play("[0 5]")  # parsed, but textarena rejects it
    assert not result.legal and "only 1 left" in result.reason
    assert session.done and session.outcome(0) == Outcome.ILLEGAL
    with pytest.raises(RuntimeError, match="game is over"):
        session.play("1 1")


def test_the_second_seat_wins_with_optimal_play_whatever_the_first_does() -> None:
    async def games() -> list[Outcome]:
        outcomes = []
        for seed in range(20):
            opener: Player = RandomPlayer()
            session = await play_game(Nim(), (opener, OptimalPlayer()), random.Random(seed))
            outcomes.append(session.outcome(1))
        return outcomes

    assert set(asyncio.run(games())) == {Outcome.WIN}


def test_policy_against_optimal_and_random_in_either_seat() -> None:
    # piles 1 2 3 are lost for the player to move: opening against perfect play always loses
    group = first_group(NimEnvBuilder(opponent="optimal", seat="first"))
    steps_G, group_G = asyncio.run(play_group(group, [take_all_of_first] * 4))
    assert all(metrics["loss"] == 1.0 and metrics["moved_first"] == 1.0 for _, metrics in group_G)
    assert all(steps[-1].reward == -1.0 for steps in steps_G)

    group = first_group(NimEnvBuilder(seat="second"), group_size=8)
    rngs = [random.Random(i) for i in range(8)]
    steps_G, group_G = asyncio.run(play_group(group, [random_move(r) for r in rngs]))
    for steps, (_, metrics) in zip(steps_G, group_G, strict=True):
        outcome = steps[-1].logs["outcome"]
        assert metrics[outcome] == 1.0 and metrics["win"] + metrics["loss"] == 1.0
        assert metrics["moved_first"] == 0.0
        assert len(steps) == int(metrics["game_length"]) // 2  # the opponent opened
    outcomes = {steps[-1].logs["outcome"] for steps in steps_G}
    assert outcomes == {"win", "loss"}  # random against random: both happen in 8 games


def test_self_play_seats_share_each_game() -> None:
    group = first_group(NimEnvBuilder(self_play=True), group_size=4)
    policies = [random_move(random.Random(i)) for i in range(4)]
    steps_G, group_G = asyncio.run(play_group(group, policies))
    for game in range(2):
        first, second = steps_G[2 * game], steps_G[2 * game + 1]
        assert first[-1].logs["board"] == second[-1].logs["board"] == "0/0/0"
        assert sorted((first[-1].reward, second[-1].reward)) == [-1.0, 1.0]
        assert len(first) + len(second) == group_G[2 * game][1]["game_length"]


def test_demonstrations_are_legal_and_parse_back() -> None:
    game = Nim()
    demos = demonstrations(game, "compact", num_games=10, seed=0, optimal_fraction=0.5)
    assert demos and all(game.parse_reply(d.reply).action is not None for d in demos)
    assert demos[0].prompt == "1 2 3"
    assert demos == demonstrations(game, "compact", num_games=10, seed=0, optimal_fraction=0.5)


def test_eval_against_optimal_counts_both_seats() -> None:
    evaluator = NimVsOptimalEval(num_games=8)(tiny_context())
    metrics = asyncio.run(evaluator(ScriptedSamplingClient(take_all_of_first)))
    assert metrics["games"] == 8 and metrics["loss_rate"] == 1.0  # optimal wins either seat
    assert metrics["first_seat_win_rate"] == metrics["second_seat_win_rate"] == 0.0


def test_a_game_without_a_solver_refuses_the_optimal_opponent_up_front() -> None:
    assert Nim().has_optimal_policy and not NoSolverNim().has_optimal_policy
    with pytest.raises(UserError, match=r"env\.opponent=optimal needs an optimal policy.*nim"):
        NoSolverNimEnvBuilder(opponent="optimal")(tiny_context())
    NoSolverNimEnvBuilder(opponent="random")(tiny_context())  # the rest still works


def test_nim_env_dataset_and_eval_keep_the_contract() -> None:
    assert_env_contract(NimEnvBuilder, check_imports=False)
    assert_env_contract(NimEnvBuilder, ["self_play=true", "prompt_style=text"], check_imports=False)
    assert_dataset_contract(NimDemosBuilder, ["num_games=20"], check_imports=False)
    assert_eval_contract(NimVsOptimalEval, check_imports=False)


def test_a_game_without_symmetries_is_refused_by_search_symmetries_before_training() -> None:
    # Nim lists none (`TwoPlayerGame.symmetric_prompts`): the run stops before its warm start.
    from cookbook.rl.search import check_searchable

    train, _test = NimEnvBuilder(opponent="random")(tiny_context())
    asyncio.run(check_searchable(train, "nim"))  # searchable
    with pytest.raises(UserError, match=r"shows no symmetric view.*drop search\.symmetries"):
        asyncio.run(check_searchable(train, "nim", symmetries=True))
