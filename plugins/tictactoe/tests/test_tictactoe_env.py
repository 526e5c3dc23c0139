"""The `tictactoe` env against fixed opponents: outcomes, rewards, metrics, seats, illegal moves,
option errors and reproducibility."""

from __future__ import annotations

import asyncio
import importlib.util
import pickle
import random
from pathlib import Path

import chz
import pytest
from cookbook_textarena.envs import TwoPlayerGroupBuilder
from cookbook_tictactoe.tictactoe import TicTacToeEnvBuilder
from ttt_helpers import (
    first_free,
    optimal,
    play_env,
    play_group,
    random_free,
    reply_tokens,
    tiny_ctx,
    user_text,
)

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.rl.types import EnvGroupBuilder


def first_group(
    builder: TicTacToeEnvBuilder, ctx: BuildContext | None = None
) -> TwoPlayerGroupBuilder:
    train, test = builder(ctx or tiny_ctx())
    assert test is None
    group = train.get_batch(0)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    return group


def test_opening_prompt_is_the_compact_board_for_the_tiny_model() -> None:
    async def run() -> str:
        env = (await first_group(TicTacToeEnvBuilder()).make_envs())[0]
        ob, stop = await env.initial_observation()
        assert stop == [tiny_ctx().tokenizer.eos_token_id]
        return user_text(ob.to_ints())

    assert asyncio.run(run()) == "012345678"


def test_text_prompt_style_for_chat_models() -> None:
    async def run() -> str:
        group = first_group(TicTacToeEnvBuilder(prompt_style="text"))
        ob, _ = await (await group.make_envs())[0].initial_observation()
        return user_text(ob.to_ints())

    text = asyncio.run(run())
    assert "Tic Tac Toe" in text and "'[4]'" in text


def test_games_against_random_end_with_consistent_rewards_and_metrics() -> None:
    group = first_group(TicTacToeEnvBuilder(), tiny_ctx(group_size=8))
    rngs = [random.Random(i) for i in range(8)]
    steps_G, group_G = asyncio.run(play_group(group, [random_free(r) for r in rngs]))
    reward_of = {"win": 1.0, "draw": 0.0, "loss": -1.0}
    for steps, (group_reward, metrics) in zip(steps_G, group_G, strict=True):
        assert all(not s.episode_done and s.reward == 0.0 for s in steps[:-1])
        final = steps[-1]
        outcome = final.logs["outcome"]
        assert final.reward == reward_of[outcome]
        assert group_reward == 0.0
        assert metrics[outcome] == 1.0
        assert metrics["win"] + metrics["draw"] + metrics["loss"] + metrics["illegal_move"] == 1.0
        assert metrics["moved_first"] == 1.0
        # the policy moves first: it made ceil(length / 2) of the moves
        assert len(steps) == (int(metrics["game_length"]) + 1) // 2


def test_optimal_opponent_never_loses_and_the_optimal_policy_never_loses_either() -> None:
    group = first_group(TicTacToeEnvBuilder(opponent="optimal"), tiny_ctx(group_size=6))
    steps_G, group_G = asyncio.run(play_group(group, [optimal] * 6))
    assert all(metrics["draw"] == 1.0 for _, metrics in group_G)
    steps_G, group_G = asyncio.run(play_group(group, [first_free] * 6))
    assert all(metrics["loss"] == 1.0 for _, metrics in group_G)
    assert all(s[-1].reward == -1.0 for s in steps_G)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("centre", "no move"),
        ("9", "between 0 and 8"),
        ("é", "non-ASCII"),
    ],
)
def test_illegal_reply_ends_the_game_with_the_penalty(reply: str, reason: str) -> None:
    group = first_group(TicTacToeEnvBuilder(illegal_penalty=-2.5), tiny_ctx(group_size=1))
    steps_G, group_G = asyncio.run(play_group(group, [lambda board: reply]))
    (steps,), ((_, metrics),) = steps_G, group_G
    assert len(steps) == 1 and steps[0].episode_done
    assert steps[0].reward == -2.5
    assert reason in steps[0].logs["illegal_move"]
    assert metrics["illegal_move"] == 1.0 and metrics["game_length"] == 0.0


def test_occupied_cell_and_raw_bytes_are_illegal_not_errors() -> None:
    async def run() -> list[str]:
        reasons = []
        for action in (reply_tokens("4"), [0xFF, 0xFE], [], reply_tokens("4", end=False)):
            env = (await first_group(TicTacToeEnvBuilder(opponent="optimal")).make_envs())[0]
            await env.initial_observation()
            result = await env.step(action)
            while not result.episode_done:
                result = await env.step(reply_tokens("4"))  # the centre is taken by now
            reasons.append(result.logs.get("illegal_move", ""))
        return reasons

    occupied, raw, empty, unterminated = asyncio.run(run())
    assert "occupied" in occupied
    assert "non-ASCII" in raw
    assert "empty" in empty
    assert "occupied" in unterminated  # "4" without the end token is still a move


def test_seats_first_second_and_alternate() -> None:
    def seats(seat: str) -> list[int]:
        train, _ = TicTacToeEnvBuilder(seat=seat)(tiny_ctx(groups_per_batch=4))
        groups = [g for i in range(2) for g in train.get_batch(i)]
        assert all(isinstance(g, TwoPlayerGroupBuilder) for g in groups)
        return [g.seat for g in groups if isinstance(g, TwoPlayerGroupBuilder)]

    assert seats("first") == [0] * 8
    assert seats("second") == [1] * 8
    assert seats("alternate") == [0, 1] * 4

    async def second_seat_opening() -> str:
        group = first_group(TicTacToeEnvBuilder(seat="second"))
        ob, _ = await (await group.make_envs())[0].initial_observation()
        return user_text(ob.to_ints())

    board = asyncio.run(second_seat_opening())
    assert board.count("O") == 1 and "X" not in board  # the opponent opened


def test_each_game_of_a_group_has_its_own_opponent_randomness() -> None:
    group = first_group(TicTacToeEnvBuilder(), tiny_ctx(group_size=8))
    steps_G, _ = asyncio.run(play_group(group, [first_free] * 8))
    boards = {steps[-1].logs["board"] for steps in steps_G}
    assert len(boards) >= 4  # a deterministic policy still meets different games


def _transcripts(seed: int, perturb: bool) -> list[list[str]]:
    """Every final board of two batches, run concurrently with the event loop interleaving
    the groups differently and the global `random` disturbed when `perturb` is set."""
    train, _ = TicTacToeEnvBuilder(opponent="optimal", seat="alternate")(
        tiny_ctx(seed=seed, group_size=4, groups_per_batch=3)
    )
    groups = [g for i in range(2) for g in train.get_batch(i)]

    async def one(index: int, group: EnvGroupBuilder) -> list[str]:
        if perturb:
            for _ in range(len(groups) - index):
                await asyncio.sleep(0)
            random.seed(index)
        steps_G, _ = await play_group(group, [random_free(random.Random(7 + i)) for i in range(4)])
        return [steps[-1].logs["board"] for steps in steps_G]

    async def run() -> list[list[str]]:
        return list(await asyncio.gather(*(one(i, g) for i, g in enumerate(groups))))

    return asyncio.run(run())


def test_runs_are_reproducible_under_concurrency() -> None:
    assert _transcripts(seed=3, perturb=False) == _transcripts(seed=3, perturb=True)
    assert _transcripts(seed=3, perturb=False) != _transcripts(seed=4, perturb=False)


def test_group_builders_pickle() -> None:
    group = first_group(TicTacToeEnvBuilder(opponent="optimal"))
    clone = pickle.loads(pickle.dumps(group))
    assert clone.game_seeds == group.game_seeds and clone.opponent == "optimal"


def test_unknown_options_are_one_line_user_errors() -> None:
    with pytest.raises(UserError) as error:
        chz.Blueprint(TicTacToeEnvBuilder).apply({"opponent": "minimax"}).make()
    assert str(error.value) == (
        "unknown env.opponent 'minimax'; choose one of: random, optimal, checkpoint, self, pool "
        "(or weights, such as random:1,optimal:1)"
    )
    with pytest.raises(UserError, match=r"env\.seat"):
        TicTacToeEnvBuilder(seat="middle")
    with pytest.raises(UserError, match=r"env\.prompt_style"):
        TicTacToeEnvBuilder(prompt_style="verbose")
    with pytest.raises(UserError, match="opponent_checkpoint=PATH"):
        TicTacToeEnvBuilder(opponent="checkpoint")(tiny_ctx())
    with pytest.raises(UserError, match="no checkpoint at"):
        TicTacToeEnvBuilder(opponent="checkpoint", opponent_checkpoint="/nonexistent/ckpt")(
            tiny_ctx()
        )
    with pytest.raises(UserError, match="even group_size"):
        TicTacToeEnvBuilder(self_play=True)(tiny_ctx(group_size=3))


def test_a_single_env_runs_without_the_group_helpers() -> None:
    async def run() -> float:
        env = (await first_group(TicTacToeEnvBuilder()).make_envs())[0]
        return (await play_env(env, optimal))[-1].reward

    assert asyncio.run(run()) in (1.0, 0.0)  # optimal play never loses


@pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.service") is None,
    reason="the local backend (cookbook.backends.local.service) has not landed yet",
)
def test_frozen_checkpoint_opponent(tmp_path: Path) -> None:
    from cookbook.backends import make_service_client

    trainer = make_service_client("local", device="cpu").create_lora_training_client("tiny")
    path = trainer.save_weights_for_sampler(str(tmp_path / "opponent")).result().path
    builder = TicTacToeEnvBuilder(opponent="checkpoint", opponent_checkpoint=path, seat="second")
    group = first_group(builder, tiny_ctx(group_size=3))
    steps_G, group_G = asyncio.run(play_group(group, [first_free] * 3))
    # the untrained opponent's unusable replies are replaced by random legal moves: no forfeits
    for steps, (_, metrics) in zip(steps_G, group_G, strict=True):
        assert "opponent_illegal_move" not in steps[-1].logs
        assert metrics["illegal_move"] == 0.0
        assert metrics["win"] + metrics["draw"] + metrics["loss"] == 1.0
        assert 0 <= metrics["opponent_fallbacks"] <= 5  # it opens, so it moves at most 5 times
    assert sum(metrics["opponent_fallbacks"] for _, metrics in group_G) > 0  # untrained
