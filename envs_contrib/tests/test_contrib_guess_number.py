"""`guess-number`: the feedback, the rewards and metrics, the test set, the warm-start games and
the eval, played by scripted policies through the tiny model's chat format."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from contrib_helpers import ChatPolicy, conversation, play_chat_env, play_dataset_batch, tiny_ctx
from cookbook_envs_contrib.guess_number import (
    GuessNumberDemosBuilder,
    GuessNumberEnv,
    GuessNumberEnvBuilder,
    GuessNumberEval,
    GuessRules,
    heldout_secrets,
    parse_guess,
    random_play,
)
from cookbook_textarena.game import PromptStyle
from cookbook_textarena.testing import TOKENIZER, ScriptedSamplingClient

from cookbook.errors import UserError
from cookbook.rl.types import StepResult
from cookbook.testing import assert_dataset_contract, assert_env_contract, assert_eval_contract

RENDERER = tiny_ctx().renderer


def open_range(text: str) -> tuple[int, int]:
    """The last `low-high` range a prompt states."""
    low, high = re.findall(r"(\d+)-(\d+)", text)[-1]
    return int(low), int(high)


def bisect(turns: list[tuple[str, str]]) -> str:
    """Binary search on the open range the last user turn states (`17-31`)."""
    low, high = open_range(turns[-1][1])
    return str((low + high) // 2)


def always(reply: str) -> ChatPolicy:
    return lambda turns: reply


def play(
    secret: int, policy: ChatPolicy, rules: GuessRules | None = None, style: PromptStyle = "compact"
) -> tuple[GuessNumberEnv, list[StepResult]]:
    env = GuessNumberEnv(secret, rules or GuessRules(), RENDERER, style)
    return env, asyncio.run(play_chat_env(env, policy))


def test_feedback_narrows_the_range_and_binary_search_finds_it() -> None:
    env, steps = play(20, bisect)
    assert [turn for turn in env.messages if turn["role"] == "user"][1:] == [
        {"role": "user", "content": "17-31"},
        {"role": "user", "content": "17-23"},
    ]
    assert [m["content"] for m in env.messages if m["role"] == "assistant"] == ["16", "24", "20"]
    assert steps[-1].reward == pytest.approx(1 - 0.05 * 2)
    assert env.episode_metrics == {"solved": 1.0, "guesses": 3.0, "invalid": 0.0, "wasted": 0.0}


def test_every_test_number_is_found_by_binary_search_within_the_limit() -> None:
    secrets = heldout_secrets(GuessRules(), 31)
    assert secrets == list(range(1, 32))
    for secret in secrets:
        env, _ = play(secret, bisect)
        assert env.episode_metrics["solved"] == 1.0 and env.episode_metrics["guesses"] <= 5
    assert heldout_secrets(GuessRules(high=100), 4) == [1, 26, 51, 76]


def test_out_of_guesses_wasted_guesses_and_invalid_replies_end_unrewarded() -> None:
    env, steps = play(31, always("1"))
    assert len(steps) == 5 and steps[-1].reward == 0.0
    # after "higher" than 1, guessing 1 again is outside the open range: wasted
    assert env.episode_metrics == {"solved": 0.0, "guesses": 5.0, "invalid": 0.0, "wasted": 4.0}
    env, steps = play(31, always("sixteen"))
    assert len(steps) == 1 and steps[0].reward == 0.0 and env.episode_metrics["invalid"] == 1.0
    assert "not a number" in steps[0].logs["invalid"]


def test_a_reply_cut_by_the_length_limit_is_invalid() -> None:
    env = GuessNumberEnv(5, GuessRules(), RENDERER, "compact")

    async def run() -> float:
        await env.initial_observation()
        result = await env.step(TOKENIZER.encode("5"))  # no end-of-turn token
        return result.reward

    assert asyncio.run(run()) == 0.0 and env.episode_metrics["invalid"] == 1.0


def test_the_text_style_explains_the_rules_and_answers_higher_or_lower() -> None:
    env, _ = play(3, always("[2]"), GuessRules(high=10, max_guesses=2), style="text")
    opening, answer = (m["content"] for m in env.messages if m["role"] == "user")
    assert "from 1 to 10" in opening and "2 guesses" in opening
    assert answer == "Higher."


def test_guesses_parse_as_a_number_alone() -> None:
    assert [parse_guess(t) for t in ("7", " [12] ", "-3", "7 8", "x7", "")] == [
        7,
        12,
        -3,
        None,
        None,
        None,
    ]


def test_train_groups_share_a_number_and_replay() -> None:
    train, test = GuessNumberEnvBuilder()(tiny_ctx(group_size=3, groups_per_batch=2))
    assert test is not None and len(test) == 16  # 31 numbers, 2 per batch
    first = play_dataset_batch(train, bisect)
    assert first == play_dataset_batch(train, bisect)
    for steps_G, group_G in first:
        assert len(steps_G) == 3 and all(m["solved"] == 1.0 for _, m in group_G)
        assert len({len(steps) for steps in steps_G}) == 1  # the same number, the same game


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"low": 5, "high": 1}, "low=5 is above high=1"),
        ({"max_guesses": 0}, "max_guesses must be at least 1"),
        ({"guess_cost": 0.5}, "guess_cost=0.5"),
        ({"prompt_style": "fancy"}, "unknown env.prompt_style 'fancy'"),
    ],
)
def test_bad_options_are_one_clear_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        GuessNumberEnvBuilder(**overrides)  # type: ignore[arg-type]


def test_warm_start_games_guess_inside_the_open_range() -> None:
    rng = random.Random(0)
    rules = GuessRules()
    solved = 0
    for _ in range(300):
        secret = rng.randint(1, 31)
        guesses = random_play(secret, rules, rng)
        solved += guesses[-1] == secret
        assert len(guesses) <= 5 and len(set(guesses)) == len(guesses)
    assert 0.4 < solved / 300 < 0.7  # about 55%: room for RL to improve on
    train, test = GuessNumberDemosBuilder(num_games=4, test_games=2)(tiny_ctx())
    assert test is not None
    datum = train.get_batch(0)[0]
    tokens = [*datum.model_input.to_ints(), int(datum.loss_fn_inputs["target_tokens"].data[-1])]
    turns = conversation([*tokens, TOKENIZER.special("<|assistant|>")])
    assert turns[0] == ("user", "1-31") and turns[1][0] == "assistant"
    assert all(parse_guess(text) is not None for role, text in turns if role == "assistant")


def test_the_eval_plays_the_test_numbers() -> None:
    client = ScriptedSamplingClient(lambda text: str(sum(open_range(text)) // 2))
    metrics = asyncio.run(GuessNumberEval(num_games=8)(tiny_ctx())(client))
    assert metrics["env/solved"] == 1.0 and metrics["groups"] == 8
    assert 1.0 <= metrics["env/guesses"] <= 5.0


def test_env_dataset_and_eval_keep_the_contract() -> None:
    assert_env_contract("guess-number")
    assert_env_contract(GuessNumberEnvBuilder, ["prompt_style=text"], check_imports=False)
    assert_dataset_contract("guess-number-demos", ["num_games=20", "test_games=4"])
    client = ScriptedSamplingClient(lambda text: "16")
    assert_eval_contract("guess-number", sampling_client=client)
