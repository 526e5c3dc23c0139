"""`tictactoe-exhaustive`: the reachable positions, scoring against minimax, the exact outcome
probabilities (checked against games refereed by textarena), and the evaluator end to end."""

from __future__ import annotations

import asyncio
import importlib.util
import random

import pytest
from cookbook_tictactoe.exhaustive import (
    EMPTY,
    TicTacToeExhaustiveEval,
    evaluate_table,
    exact_outcomes,
    is_terminal,
    move_values,
    mover_mark,
    mover_seat,
    policy_table,
    reachable_positions,
    table_games,
)
from cookbook_tictactoe.tictactoe import best_cells
from ttt_helpers import ScriptedSamplingClient, optimal, tiny_ctx

from cookbook.errors import UserError


def minimax(cells: str) -> int:
    """The first optimal cell (the arena's solver)."""
    return best_cells(cells, mover_mark(cells))[0]


def lowest_free(cells: str) -> int:
    return cells.index(EMPTY)


def test_reachable_positions_are_the_known_4520() -> None:
    positions = reachable_positions()
    # 5,478 legal positions, 958 of them terminal; the opener moves in 2,423 of the rest.
    assert len(positions) == len(set(positions)) == 4520
    assert sum(mover_seat(c) == 0 for c in positions) == 2423
    assert not any(is_terminal(c) for c in positions)
    assert positions[0] == EMPTY * 9


def test_minimax_play_is_optimal_everywhere_and_matches_the_known_limits() -> None:
    metrics = evaluate_table(policy_table(minimax))
    for seat in ("first", "second"):
        assert metrics[f"{seat}/optimal_rate"] == 1.0
        assert metrics[f"{seat}/blunder_rate"] == 0.0
        assert metrics[f"exact/vs_optimal/{seat}/draw_rate"] == pytest.approx(1.0)
        assert metrics[f"exact/vs_random/{seat}/loss_rate"] == pytest.approx(0.0)
    # Perfect play against a random opener: the first seat wins 99.5% of games.
    assert metrics["exact/vs_random/first/win_rate"] == pytest.approx(0.995, abs=1e-3)


def test_a_missed_win_is_a_blunder_and_an_illegal_reply_too() -> None:
    table: dict[str, int | None] = policy_table(minimax)
    # O to move can win at 2; taking 8 instead lets X complete the middle row.
    table["OO.XX...."] = 8
    table["O...X...."] = 4  # occupied: illegal
    metrics = evaluate_table(table)
    won_or_drawn = sum(mover_seat(c) == 0 and max(_values(c)) >= 0 for c in table)
    assert metrics["first/blunder_rate"] == pytest.approx(2 / won_or_drawn)
    assert metrics["first/optimal_rate"] == pytest.approx(1 - 2 / 2423)
    assert metrics["first/illegal_rate"] == pytest.approx(1 / 2423)
    assert metrics["second/optimal_rate"] == 1.0


def _values(cells: str) -> list[int]:
    return list(move_values(cells).values())


def test_in_a_lost_position_every_legal_move_is_optimal() -> None:
    lost = next(c for c in reachable_positions() if max(_values(c)) == -1)
    table = policy_table(minimax)
    table[lost] = next(i for i, c in enumerate(lost) if c == EMPTY)
    scored = evaluate_table(table)
    label = "first" if mover_seat(lost) == 0 else "second"
    assert scored[f"{label}/optimal_rate"] == 1.0


@pytest.mark.parametrize("opponent", ["random", "optimal"])
def test_exact_probabilities_agree_with_refereed_games(opponent: str) -> None:
    rng = random.Random(3)
    table = policy_table(lambda c: rng.choice([i for i, x in enumerate(c) if x == EMPTY]))
    replies = {c: f"[{m}]" for c, m in table.items()}
    by_seat = asyncio.run(table_games(replies, opponent, 300, seed=1))
    for seat in (0, 1):
        win, draw, loss, illegal = exact_outcomes(table, seat, opponent)
        assert win + draw + loss + illegal == pytest.approx(1.0)
        games = by_seat[seat]
        assert len(games) == 150
        # 150 games: a rate's standard error is at most 0.041
        assert games.count("win") / 150 == pytest.approx(win, abs=0.13)
        assert games.count("loss") / 150 == pytest.approx(loss, abs=0.13)


def test_evaluator_scores_a_scripted_optimal_model() -> None:
    evaluator = TicTacToeExhaustiveEval(num_games=40)(tiny_ctx())
    client = ScriptedSamplingClient(optimal)
    metrics = asyncio.run(evaluator(client))
    assert len(client.prompts) == 4520  # one query per position, none for the games
    assert metrics["optimal_rate"] == 1.0
    for seat in ("first", "second"):
        assert metrics[f"games/vs_optimal/{seat}/draw_rate"] == 1.0
        assert metrics[f"games/vs_random/{seat}/loss_rate"] == 0.0
        assert metrics[f"games/vs_random/{seat}/games"] == 20


def test_unreadable_replies_are_illegal_moves() -> None:
    metrics = evaluate_table(dict.fromkeys(reachable_positions()))
    assert metrics["first/illegal_rate"] == metrics["second/blunder_rate"] == 1.0
    assert metrics["exact/vs_random/second/illegal_rate"] == pytest.approx(1.0)
    replies = dict.fromkeys(reachable_positions(), "x")
    by_seat = asyncio.run(table_games(replies, "optimal", 4, seed=0))
    assert by_seat == {0: ["illegal", "illegal"], 1: ["illegal", "illegal"]}


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"eval\.num_games"):
        TicTacToeExhaustiveEval(num_games=-1)
    with pytest.raises(UserError, match=r"eval\.prompt_style"):
        TicTacToeExhaustiveEval(prompt_style="fancy")


@pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.service") is None,
    reason="the local backend is not installed",
)
def test_untrained_tiny_model_is_scored_on_every_position() -> None:
    import torch

    from cookbook.backends import make_service_client

    client = make_service_client("local", device="cpu").create_sampling_client(base_model="tiny")
    evaluator = TicTacToeExhaustiveEval(num_games=2, max_tokens=2)(tiny_ctx())
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model's small ops lose time in a thread pool
    try:
        metrics = asyncio.run(evaluator(client))
    finally:
        torch.set_num_threads(before)
    assert metrics["first/positions"] == 2423 and metrics["second/positions"] == 2097
    for key in ("optimal_rate", "first/illegal_rate", "exact/vs_random/first/win_rate"):
        assert 0.0 <= metrics[key] <= 1.0
