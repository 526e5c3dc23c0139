"""The `tictactoe-vs-random` and `tictactoe-vs-optimal` evals."""

from __future__ import annotations

import asyncio
import importlib.util
import random

import pytest
from cookbook_tictactoe.tictactoe import TicTacToeVsOptimalEval, TicTacToeVsRandomEval
from ttt_helpers import ScriptedSamplingClient, first_free, optimal, random_free, tiny_ctx

from cookbook.errors import UserError

OUTCOME_RATES = ("win_rate", "draw_rate", "loss_rate", "illegal_rate")


def test_optimal_policy_draws_optimal_and_never_loses_to_random() -> None:
    vs_optimal = TicTacToeVsOptimalEval(num_games=10)(tiny_ctx())
    metrics = asyncio.run(vs_optimal(ScriptedSamplingClient(optimal)))
    assert metrics["draw_rate"] == 1.0 and metrics["games"] == 10

    vs_random = TicTacToeVsRandomEval(num_games=40)(tiny_ctx())
    metrics = asyncio.run(vs_random(ScriptedSamplingClient(optimal)))
    assert metrics["loss_rate"] == 0.0 and metrics["illegal_rate"] == 0.0
    assert metrics["win_rate"] >= 0.75
    assert metrics["first_seat_win_rate"] >= metrics["second_seat_win_rate"]


def test_rates_cover_both_seats_and_sum_to_one() -> None:
    client = ScriptedSamplingClient(random_free(random.Random(0)))
    metrics = asyncio.run(TicTacToeVsRandomEval(num_games=20)(tiny_ctx())(client))
    assert sum(metrics[k] for k in OUTCOME_RATES) == pytest.approx(1.0)
    assert 5 <= metrics["mean_game_length"] <= 9
    # half the games the model opened on the empty board, half it answered an opening
    assert client.prompts.count("012345678") == 10


def test_illegal_replies_are_counted() -> None:
    client = ScriptedSamplingClient(lambda board: "x")
    metrics = asyncio.run(TicTacToeVsOptimalEval(num_games=6)(tiny_ctx())(client))
    assert metrics["illegal_rate"] == 1.0 and metrics["mean_game_length"] == 0.5


def test_the_same_seeded_games_every_time() -> None:
    def run(seed: int) -> dict[str, float]:
        evaluator = TicTacToeVsRandomEval(num_games=12, seed=seed)(tiny_ctx())
        return asyncio.run(evaluator(ScriptedSamplingClient(first_free)))

    assert run(1) == run(1)


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"eval\.num_games"):
        TicTacToeVsRandomEval(num_games=0)


@pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.service") is None,
    reason="the local backend (cookbook.backends.local.service) has not landed yet",
)
def test_untrained_tiny_model_plays_a_handful_of_games() -> None:
    from cookbook.backends import make_service_client

    client = make_service_client("local", device="cpu").create_sampling_client(base_model="tiny")
    metrics = asyncio.run(TicTacToeVsRandomEval(num_games=4, max_tokens=4)(tiny_ctx())(client))
    assert sum(metrics[k] for k in OUTCOME_RATES) == pytest.approx(1.0)
    assert metrics["games"] == 4
