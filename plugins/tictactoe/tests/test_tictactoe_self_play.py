"""Self-play: the envs of a group are the two seats of the same games and move in turn."""

from __future__ import annotations

import asyncio
import random

from cookbook_textarena.envs import TwoPlayerGroupBuilder
from cookbook_tictactoe.tictactoe import TicTacToeEnvBuilder
from ttt_helpers import (
    TextPolicy,
    first_free,
    optimal,
    play_group,
    random_free,
    reply_tokens,
    tiny_ctx,
    user_text,
)


def self_play_group(group_size: int = 8, penalty: float = -1.0) -> TwoPlayerGroupBuilder:
    train, _ = TicTacToeEnvBuilder(self_play=True, illegal_penalty=penalty)(
        tiny_ctx(group_size=group_size)
    )
    group = train.get_batch(0)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    return group


def test_both_seats_see_one_game_and_get_opposite_rewards() -> None:
    policies = [random_free(random.Random(i)) for i in range(8)]
    steps_G, group_G = asyncio.run(play_group(self_play_group(), policies))
    assert len(steps_G) == 8  # 4 games, seats side by side
    for game in range(4):
        first, second = steps_G[2 * game], steps_G[2 * game + 1]
        assert first[-1].logs["board"] == second[-1].logs["board"]
        rewards = (first[-1].reward, second[-1].reward)
        assert rewards in {(1.0, -1.0), (-1.0, 1.0), (0.0, 0.0)}
        m_first, m_second = group_G[2 * game][1], group_G[2 * game + 1][1]
        assert m_first["game_length"] == m_second["game_length"]
        assert m_first["moved_first"] == 1.0 and m_second["moved_first"] == 0.0
        assert m_first["win"] == m_second["loss"] and m_first["draw"] == m_second["draw"]
        # turns alternate: the first seat moved once more than the second, or as often
        assert len(first) - len(second) in (0, 1)
        assert len(first) + len(second) == m_first["game_length"]


def test_seats_take_turns_on_the_same_board() -> None:
    seen: list[tuple[str, str]] = []

    def recorder(name: str) -> TextPolicy:
        def policy(board: str) -> str:
            seen.append((name, board))
            return first_free(board)

        return policy

    steps_G, _ = asyncio.run(play_group(self_play_group(2), [recorder("a"), recorder("b")]))
    names = [name for name, _ in seen]
    assert names == ["a", "b"] * (len(names) // 2) + ["a"] * (len(names) % 2)
    # b's first view has a's opening move, as an opponent mark
    assert seen[1][1] == "O12345678"
    # first-free play: a takes 0, 2, 4, 6 and wins on the diagonal 2-4-6
    assert steps_G[0][-1].reward == 1.0 and steps_G[1][-1].reward == -1.0


def test_optimal_self_play_draws() -> None:
    _, group_G = asyncio.run(play_group(self_play_group(4), [optimal] * 4))
    assert all(metrics["draw"] == 1.0 for _, metrics in group_G)


def test_illegal_move_in_self_play() -> None:
    def blunder_later(board: str) -> str:
        return "4" if board.count("X") + board.count("O") >= 2 else first_free(board)

    steps_G, group_G = asyncio.run(
        play_group(self_play_group(2, penalty=-3.0), [blunder_later, first_free])
    )
    # a: 0, b: 1, a: "4"?? board has 2 marks -> a plays the centre (legal); b: 2;
    # a: "4" again on an occupied cell -> illegal
    assert steps_G[0][-1].reward == -3.0 and "occupied" in steps_G[0][-1].logs["illegal_move"]
    assert steps_G[1][-1].reward == 0.0
    assert group_G[0][1]["illegal_move"] == 1.0
    assert group_G[1][1]["opponent_illegal"] == 1.0
    assert "occupied" in steps_G[1][-1].logs["opponent_illegal_move"]


def test_forfeit_on_the_opening_move_releases_the_second_seat() -> None:
    steps_G, group_G = asyncio.run(play_group(self_play_group(2), [lambda b: "nine", first_free]))
    assert steps_G[0][-1].reward == -1.0
    assert len(steps_G[1]) == 1 and steps_G[1][0].episode_done and steps_G[1][0].reward == 0.0
    assert group_G[1][1]["opponent_illegal"] == 1.0


def test_second_seat_waits_for_the_opening() -> None:
    async def run() -> str:
        envs = await self_play_group(2).make_envs()
        second = asyncio.ensure_future(envs[1].initial_observation())
        await asyncio.sleep(0)
        assert not second.done()  # it is not the second seat's turn yet
        await envs[0].initial_observation()
        # the first seat's step returns only once the second seat has answered: run it aside
        first_step = asyncio.ensure_future(envs[0].step(reply_tokens("8")))
        ob, _ = await second
        assert not first_step.done()
        first_step.cancel()
        return user_text(ob.to_ints())

    assert asyncio.run(run()) == "01234567O"
