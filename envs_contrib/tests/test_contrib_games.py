"""The textarena games by id: Connect Four, Nim and Kuhn poker through the two-player layer, with
textarena as the referee (prompts, parsing, legal and optimal moves, scores, hidden cards,
seeded deals), and their envs, datasets and evals."""

from __future__ import annotations

import asyncio
import itertools
import random
import re

import pytest
from contrib_helpers import tiny_ctx
from cookbook_envs_contrib.games import FAMILIES
from cookbook_envs_contrib.games.connect_four import ConnectFour, parse_column
from cookbook_envs_contrib.games.kuhn_poker import KuhnPoker, make_kuhn_env
from cookbook_envs_contrib.games.nim import Nim, nim_sum, winning_moves
from cookbook_envs_contrib.textarena_envs import (
    ConnectFourEnvBuilder,
    KuhnPokerEnvBuilder,
    KuhnPokerVsOptimalEval,
    NimEnvBuilder,
    NimVsOptimalEval,
    TextarenaDemosBuilder,
    TextarenaEnvBuilder,
)
from cookbook_textarena.catalog import load_game
from cookbook_textarena.demos import demonstrations
from cookbook_textarena.envs import TwoPlayerGroupBuilder
from cookbook_textarena.evaluate import play_game
from cookbook_textarena.game import GameSession, Outcome, PromptStyle
from cookbook_textarena.players import OptimalPlayer, RandomPlayer
from cookbook_textarena.testing import ScriptedSamplingClient, play_group

from cookbook.errors import UserError
from cookbook.testing import assert_dataset_contract, assert_env_contract, assert_eval_contract

# --- Connect Four ----------------------------------------------------------------------------


def test_connect_four_prompt_shows_the_open_columns_from_the_movers_side() -> None:
    session = GameSession(ConnectFour("ConnectFour-v0"))
    assert session.prompt(0, "compact") == "/".join(["0123456", *["......."] * 5])
    for column in "3343":
        assert session.play(column).legal
    # player 0 (X) played 3, 4; player 1 (O) played 3, 3: seen from player 0's side
    assert session.prompt(0, "compact").split("/")[-3:] == ["...O...", "...O...", "...XX.."]
    assert session.prompt(1, "compact").split("/")[-1] == "...OO.."
    assert session.board().split("/")[-1] == "...XX.."  # absolute: X moved first


def test_connect_four_full_column_disappears_and_four_in_a_row_wins() -> None:
    session = GameSession(ConnectFour("ConnectFour-v0"))
    for column in "010101":
        session.play(column)
    assert session.prompt(0, "compact").startswith("0123456")
    assert not session.done
    assert session.play("0").legal  # four in column 0 for player 0
    assert session.done and session.outcome(0) == Outcome.WIN
    session = GameSession(ConnectFour("ConnectFour-v0"))
    for _ in range(6):
        session.play("2")
    assert session.prompt(0, "compact")[:7] == "01O3456"  # column 2 is full: no label
    assert "[col 2]" not in session.legal_actions()
    assert not session.play("2").legal and session.outcome(0) == Outcome.ILLEGAL


def test_connect_four_large_board_labels_columns_past_nine_with_letters() -> None:
    game = load_game("ConnectFour-v0-large", FAMILIES)
    session = GameSession(game)
    assert session.prompt(0, "compact").split("/")[0] == "0123456789abcde"
    assert game.format_reply("[col 11]", "compact") == "b"
    assert session.play("b").legal and session.play("[col 14]").legal
    assert session.board().split("/")[-1].endswith("X..O")


def test_connect_four_replies() -> None:
    assert [parse_column(t) for t in ("4", "b", " 12 ", "[col 3]", "I play [5]", "[4] [5]")] == [
        4,
        11,
        12,
        3,
        5,
        "several different moves in reply",
    ]
    assert parse_column("") == "empty reply"
    assert isinstance(parse_column("left"), str)
    game = ConnectFour("ConnectFour-v0")
    assert game.parse_reply(game.format_reply("[col 6]", "text")).action == "[col 6]"


def test_connect_four_has_no_solver_and_refuses_the_optimal_opponent() -> None:
    with pytest.raises(UserError, match=r"env\.opponent=optimal needs an optimal policy"):
        ConnectFourEnvBuilder(opponent="optimal")(tiny_ctx())
    with pytest.raises(UserError, match="hides the board"):
        load_game("ConnectFour-v0-blind", FAMILIES)


# --- Nim ---------------------------------------------------------------------------------------


def test_nim_optimal_moves_leave_a_zero_nim_sum() -> None:
    for piles in ([3, 4, 5], [4, 2, 3, 7], [5, 7, 9, 11, 2], [1, 1]):
        for pile, quantity in winning_moves(piles):
            after = list(piles)
            after[pile] -= quantity
            assert quantity >= 1 and nim_sum(after) == 0
    assert winning_moves([1, 2, 3]) == []  # a lost position


def test_nim_opening_with_optimal_play_beats_random_every_time() -> None:
    async def outcomes() -> set[Outcome]:
        seen = set()
        for seed in range(20):
            session = await play_game(
                Nim("Nim-v0"), (OptimalPlayer(), RandomPlayer()), random.Random(seed)
            )
            seen.add(session.outcome(0))
        return seen

    assert asyncio.run(outcomes()) == {Outcome.WIN}  # 3 4 5 is won for the first player


def test_nim_variants_by_id_and_two_digit_replies() -> None:
    game = load_game("Nim-v0-large", FAMILIES)
    session = GameSession(game)
    assert session.prompt(0, "compact") == "5 7 9 11 2"
    assert game.parse_reply("3 11").action == "[3 11]"
    assert session.play("3 11").legal and session.prompt(1, "compact") == "5 7 9 0 2"


# --- Kuhn poker --------------------------------------------------------------------------------


def kuhn_hand(cards: tuple[int, int]) -> GameSession:
    """A one-hand Kuhn poker session with the given cards (textarena's deal replaced)."""

    class OneHand(KuhnPoker):
        def make_textarena_env(self):  # type: ignore[no-untyped-def]
            return make_kuhn_env(1)

    session = GameSession(OneHand("KuhnPoker-v0"), chance_seed=0)
    session.raw_env.state.game_state["player_cards"] = {0: cards[0], 1: cards[1]}
    return session


def test_kuhn_prompt_shows_own_card_and_the_actions_but_never_the_other_card() -> None:
    session = kuhn_hand((2, 0))  # player 0 holds K, player 1 J; player 1 acts first
    assert session.current_player == 1
    assert (session.prompt(1, "compact"), session.prompt(0, "compact")) == ("J", "K")
    session.play("k")
    assert session.prompt(0, "compact") == "Kk"
    session.play("b")
    assert session.prompt(1, "compact") == "Jkb"
    assert session.legal_actions() == ["[fold]", "[call]"]
    assert kuhn_hand((2, 1)).prompt(1, "compact") == "Q"  # the other card changes nothing else


def test_kuhn_bets_and_calls_pay_into_the_pot() -> None:
    session = kuhn_hand((2, 0))
    session.play("b")  # player 1 (J) bets
    session.play("c")  # player 0 (K) calls: showdown, K wins a pot of 4
    assert session.done and session.outcome(0) == Outcome.WIN
    assert session.score(0) == pytest.approx(2 / 2) and session.score(1) == pytest.approx(-1.0)
    session = kuhn_hand((2, 0))
    session.play("b")
    session.play("f")  # K folds to a bet: the antes go to the bettor
    assert session.score(1) == pytest.approx(0.5)


def test_kuhn_equilibrium_is_worth_minus_one_eighteenth_to_the_first_to_act() -> None:
    """The value of the optimal policy against itself, by exact enumeration of deals and mixed
    actions through textarena: -1/18 chip per hand for the player acting first."""

    def value(cards: tuple[int, int], actions: tuple[str, ...]) -> float:
        session = kuhn_hand(cards)
        for action in actions:
            session.play(action)
        if session.done:
            score = session.score(1)
            assert score is not None
            return score * 2  # chips won by player 1, who acted first
        options = session.optimal_actions()
        return sum(value(cards, (*actions, a)) for a in options) / len(options)

    deals = list(itertools.permutations(range(3), 2))
    assert sum(value(d, ()) for d in deals) / len(deals) == pytest.approx(-1 / 18)


def test_kuhn_optimal_actions_are_legal_and_replies_parse_both_styles() -> None:
    game = KuhnPoker("KuhnPoker-v0")
    styles: tuple[PromptStyle, ...] = ("compact", "text")
    for action in ("[check]", "[bet]", "[call]", "[fold]"):
        for style in styles:
            assert game.parse_reply(game.format_reply(action, style)).action == action
    assert game.parse_reply("I will [BET] now").action == "[bet]"
    assert game.parse_reply("raise").action is None
    session = GameSession(game, chance_seed=4)
    rng = random.Random(0)
    while not session.done:
        assert set(session.optimal_actions()) <= set(session.legal_actions())
        session.play(rng.choice(session.legal_actions()))
    assert session.num_moves >= 6  # three hands


def test_kuhn_deals_replay_from_the_game_seed() -> None:
    def deals(seed: int) -> list[str]:
        session = GameSession(KuhnPoker("KuhnPoker-v0"), chance_seed=seed)
        seen = []
        while not session.done:
            seen.append(session.board())
            session.play("[check]")
        return seen

    assert deals(3) == deals(3)
    assert len({tuple(deals(seed)) for seed in range(8)}) > 1


def test_kuhn_env_is_rewarded_in_chips() -> None:
    group = KuhnPokerEnvBuilder()(tiny_ctx(group_size=4))[0].get_batch(0)[0]
    assert isinstance(group, TwoPlayerGroupBuilder)
    steps_G, group_G = asyncio.run(
        play_group(group, [lambda prompt: "c" if "b" in prompt else "k"] * 4)
    )
    for steps, (_, metrics) in zip(steps_G, group_G, strict=True):
        assert steps[-1].reward == metrics["score"] and -1 <= metrics["score"] <= 1
        assert metrics["illegal_move"] == 0.0
    assert len({m["score"] for _, m in group_G}) > 1  # different deals per game


# --- the builders ------------------------------------------------------------------------------


def first_prompt(group: TwoPlayerGroupBuilder) -> str:
    """The first prompt the policy sees in the group's games (each game ends on its first reply,
    which no game here accepts)."""
    prompts: list[str] = []

    def policy(prompt: str) -> str:
        prompts.append(prompt)
        return "?"

    asyncio.run(play_group(group, [policy] * len(group.game_seeds)))
    return prompts[0]


def test_any_game_by_id_through_the_generic_env() -> None:
    for game_id, name, first in (
        ("Nim-v0-medium", "nim", "4 2 3 7"),
        ("ConnectFour-v0-large", "connect_four", "0123456789abcde" + "/..............." * 11),
        ("KuhnPoker-v0-short", "kuhn_poker", "[JQK]b?"),  # own card; the other may have bet
    ):
        group = TextarenaEnvBuilder(game_id=game_id)(tiny_ctx())[0].get_batch(0)[0]
        assert isinstance(group, TwoPlayerGroupBuilder) and group.game.name == name
        assert re.fullmatch(first, first_prompt(group))
    with pytest.raises(UserError, match="no game module for textarena game 'Chess-v0'"):
        TextarenaEnvBuilder(game_id="Chess-v0")(tiny_ctx())
    demos = demonstrations(load_game("KuhnPoker-v0", FAMILIES), "compact", 5, 0, 0.5)
    assert {d.reply for d in demos} <= {"k", "b", "c", "f"} and demos[0].prompt[0] in "JQK"


def test_evals_against_the_solvers() -> None:
    client = ScriptedSamplingClient(lambda prompt: "0 1")  # takes one from pile 0, or forfeits
    metrics = asyncio.run(NimVsOptimalEval(num_games=4)(tiny_ctx())(client))
    assert metrics["win_rate"] == 0.0 and metrics["games"] == 4
    always_call = ScriptedSamplingClient(lambda prompt: "c" if prompt.endswith("b") else "k")
    metrics = asyncio.run(KuhnPokerVsOptimalEval(num_games=20)(tiny_ctx())(always_call))
    assert metrics["illegal_rate"] == 0.0 and -1.0 <= metrics["mean_score"] <= 1.0


@pytest.mark.parametrize("env", ["textarena", "connect-four", "nim", "kuhn-poker"])
def test_game_envs_keep_the_contract(env: str) -> None:
    assert_env_contract(env)


def test_game_variants_datasets_and_evals_keep_the_contract() -> None:
    assert_env_contract(NimEnvBuilder, ["self_play=true", "prompt_style=text"], check_imports=False)
    assert_env_contract(TextarenaEnvBuilder, ["game_id=KuhnPoker-v0", "self_play=true"])
    assert_dataset_contract(TextarenaDemosBuilder, ["num_games=10", "game_id=KuhnPoker-v0"])
    assert_dataset_contract("connect-four-demos", ["num_games=4", "test_games=2"])
    client = ScriptedSamplingClient(lambda prompt: "k")
    assert_eval_contract("kuhn-poker-vs-random", sampling_client=client)
