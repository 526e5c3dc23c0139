"""`calculator`: the tool (exact, refusing anything but arithmetic), the episodes (calls, answers,
rewards, metrics), the test problems, the warm-start episodes and the eval, played by scripted
policies through the tiny model's chat format."""

from __future__ import annotations

import asyncio
import random
from fractions import Fraction

import pytest
from contrib_helpers import ChatPolicy, conversation, play_chat_env, play_dataset_batch, tiny_ctx
from cookbook_envs_contrib.calculator import CalculatorError, calculate, format_number, parse_number
from cookbook_envs_contrib.chat import TaskGroupBuilder
from cookbook_envs_contrib.tool_use import (
    CalculatorDemosBuilder,
    CalculatorEnv,
    CalculatorEnvBuilder,
    CalculatorEval,
    Problem,
    ProblemSettings,
    ToolRules,
    heldout_problems,
    split_reply,
)
from cookbook_textarena.game import PromptStyle
from cookbook_textarena.testing import TOKENIZER, ScriptedSamplingClient

from cookbook.errors import UserError
from cookbook.rl.types import EnvGroupBuilder, StepResult
from cookbook.testing import assert_dataset_contract, assert_env_contract, assert_eval_contract

RENDERER = tiny_ctx().renderer
PROBLEM = Problem((47, 83, 19), ("*", "+"))


def call_then_copy(turns: list[tuple[str, str]]) -> str:
    """Calls the calculator on the whole problem, then answers with its result."""
    if len(turns) == 1:
        return f"calc {turns[0][1]}"
    return f"answer {turns[-1][1].removeprefix('calculator: ')}"


def task_of(group: EnvGroupBuilder) -> Problem:
    """The problem a group attempts."""
    assert isinstance(group, TaskGroupBuilder) and isinstance(group.task, Problem)
    return group.task


def always(reply: str) -> ChatPolicy:
    return lambda turns: reply


def play(
    policy: ChatPolicy,
    problem: Problem = PROBLEM,
    rules: ToolRules | None = None,
    style: PromptStyle = "compact",
) -> tuple[CalculatorEnv, list[StepResult]]:
    env = CalculatorEnv(problem, rules or ToolRules(), RENDERER, style)
    return env, asyncio.run(play_chat_env(env, policy))


def test_the_calculator_is_exact_and_refuses_everything_but_arithmetic() -> None:
    assert calculate("47*83+19") == 3920
    assert calculate(" -(2 + 3) * 4 / 6 ") == Fraction(-10, 3)
    assert format_number(Fraction(-10, 3)) == "-10/3" and format_number(Fraction(8)) == "8"
    refused = {
        "": "empty",
        "__import__('os')": "Call is not allowed",
        "x + 1": "Name is not allowed",
        "2 ** 3": "Pow is not allowed",
        "1 / 0": "division by zero",
        "1 +": "not an arithmetic expression",
        "9" * 81: "longer than 80",
        "99999999999 * " * 4 + "9": "more than 40 digits",
        "1e999": "not a finite number",
        "'1' + '2'": "Constant is not allowed",
        "２+２": "non-ASCII",
    }
    for expression, why in refused.items():
        with pytest.raises(CalculatorError, match=why):
            calculate(expression)
    assert [parse_number(t) for t in ("3,920", "-12", "7/3", "2.5", "x", "1/0", "")] == [
        3920,
        -12,
        Fraction(7, 3),
        Fraction(5, 2),
        None,
        None,
        None,
    ]


def test_a_call_then_the_copied_result_is_a_correct_answer_less_the_call_cost() -> None:
    env, steps = play(call_then_copy)
    assert [m["content"] for m in env.messages] == [
        "47*83+19",
        "calc 47*83+19",
        "3920",
        "answer 3920",
    ]
    assert [s.reward for s in steps] == [0.0, pytest.approx(1 - 0.05)]
    assert steps[0].logs == {"tool": "47*83+19 -> 3920"}
    assert env.episode_metrics == {
        "correct": 1.0,
        "calls": 1.0,
        "direct": 0.0,
        "tool_errors": 0.0,
        "invalid": 0.0,
        "tool_had_answer": 1.0,
    }


def test_direct_answers_wrong_answers_and_tool_errors() -> None:
    env, steps = play(always("answer 3920"))
    assert len(steps) == 1 and steps[0].reward == 1.0
    assert env.episode_metrics["direct"] == 1.0 and env.episode_metrics["correct"] == 1.0
    env, steps = play(always("answer 3921"))
    assert steps[0].reward == 0.0 and env.episode_metrics["correct"] == 0.0
    assert steps[0].logs == {"answer": "3921", "reference": "3920"}

    replies = iter(["calc import os", "answer 3920"])
    env, steps = play(lambda turns: next(replies))
    assert env.messages[2]["content"].startswith("error: not an arithmetic expression")
    assert env.episode_metrics["tool_errors"] == 1.0 and env.episode_metrics["correct"] == 1.0
    assert steps[-1].reward == pytest.approx(0.95)  # a refused call still costs


def test_calls_past_the_limit_and_other_replies_end_the_episode_unrewarded() -> None:
    env, steps = play(always("calc 1+1"), rules=ToolRules(max_calls=2, call_cost=0.1))
    assert len(steps) == 3 and steps[-1].reward == pytest.approx(-0.2)
    assert "a call past max_calls" in steps[-1].logs["invalid"]
    assert env.episode_metrics["invalid"] == 1.0 and env.episode_metrics["calls"] == 2.0
    env, steps = play(always("3920"))
    assert steps[0].reward == 0.0 and "neither a call nor an answer" in steps[0].logs["invalid"]
    assert env.episode_metrics["direct"] == 0.0  # an invalid reply is no direct answer
    assert split_reply("Answer: 12") == ("answer", "12")
    assert split_reply("CALC  3*4 ") == ("calc", "3*4")


def test_a_reply_cut_by_the_length_limit_is_invalid() -> None:
    env = CalculatorEnv(PROBLEM, ToolRules(), RENDERER, "compact")

    async def run() -> StepResult:
        await env.initial_observation()
        return await env.step(TOKENIZER.encode("answer 3920"))  # no end-of-turn token

    result = asyncio.run(run())
    assert result.episode_done and result.reward == 0.0 and env.episode_metrics["invalid"] == 1.0


def test_the_text_style_states_the_protocol_and_labels_results() -> None:
    replies = iter(["calc 47*83+19", "answer 3920"])
    env, _ = play(lambda turns: next(replies), style="text")
    opening, result = (m["content"] for m in env.messages if m["role"] == "user")
    assert "Compute 47*83+19." in opening and "calc EXPRESSION" in opening
    assert result == "calculator: 3920"
    assert env.episode_metrics["correct"] == 1.0


def test_test_problems_are_fixed_distinct_and_never_drawn_for_training() -> None:
    settings = ProblemSettings()
    held_out = heldout_problems(settings, 64)
    assert held_out == heldout_problems(settings, 64)
    assert len({p.expression for p in held_out}) == 64
    assert all(10 <= x <= 99 for p in held_out for x in p.operands)
    assert held_out != heldout_problems(ProblemSettings(operations="-"), 64)
    train, test = CalculatorEnvBuilder(num_test=64)(tiny_ctx(group_size=2, groups_per_batch=4))
    assert test is not None and [task_of(g) for g in test.get_batch(0)] == held_out[:4]
    drawn = {task_of(g).expression for i in range(50) for g in train.get_batch(i)}
    assert drawn.isdisjoint(p.expression for p in held_out)
    assert len(drawn) > 150  # different problems per group and batch


def test_train_groups_share_a_problem_and_replay() -> None:
    train, _ = CalculatorEnvBuilder()(tiny_ctx(group_size=3, groups_per_batch=2))
    first = play_dataset_batch(train, call_then_copy)
    assert first == play_dataset_batch(train, call_then_copy)
    for steps_G, group_G in first:
        assert len(steps_G) == 3 and all(m["correct"] == 1.0 for _, m in group_G)


def test_problem_parts_and_harder_settings() -> None:
    assert PROBLEM.spans() == ["47*83", "83+19", "47*83+19"]
    rng = random.Random(0)
    problem = ProblemSettings("+-*", digits=3, num_operands=4).draw(rng)
    assert len(problem.operands) == 4 and all(100 <= x <= 999 for x in problem.operands)
    assert problem.answer == calculate(problem.expression)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"operations": "/"}, "operations='/'"),
        ({"digits": 7}, "digits=7 is out of range"),
        ({"num_operands": 1}, "num_operands=1 is out of range"),
        ({"call_cost": 0.8}, "call_cost=0.8"),
        ({"max_calls": 0}, "env.max_calls must be positive"),
        ({"prompt_style": "fancy"}, "unknown prompt_style 'fancy'"),
    ],
)
def test_bad_options_are_one_clear_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        CalculatorEnvBuilder(**overrides)  # type: ignore[arg-type]


def test_warm_start_episodes_call_on_a_part_and_copy_the_result() -> None:
    train, test = CalculatorDemosBuilder(num_games=40, test_games=2, batch_size=40)(tiny_ctx())
    assert test is not None
    kinds = set()
    for datum in train.get_batch(0):
        tokens = [*datum.model_input.to_ints(), int(datum.loss_fn_inputs["target_tokens"].data[-1])]
        turns = conversation([*tokens, TOKENIZER.special("<|assistant|>")])
        problem = turns[0][1]
        if len(turns) == 2:
            kinds.add("direct")
            assert split_reply(turns[1][1])[0] == "answer"
            continue
        kinds.add("call")
        kind, part = split_reply(turns[1][1])
        assert kind == "calc" and part in problem
        assert turns[3][1] == f"answer {format_number(calculate(part))}" == f"answer {turns[2][1]}"
    assert kinds == {"direct", "call"}


def test_the_eval_plays_the_test_problems() -> None:
    def policy(text: str) -> str:
        """`text`: the conversation between the first user tag and the last assistant tag."""
        if "<|user|>" not in text:
            return f"calc {text}"
        return f"answer {text.rsplit('<|user|>', 1)[1].removesuffix('<|eos|><|assistant|>')}"

    metrics = asyncio.run(
        CalculatorEval(num_problems=6)(tiny_ctx())(ScriptedSamplingClient(policy))
    )
    assert metrics["env/correct"] == 1.0 and metrics["env/calls"] == 1.0 and metrics["groups"] == 6


def test_env_dataset_and_eval_keep_the_contract() -> None:
    assert_env_contract("calculator")
    assert_env_contract(
        CalculatorEnvBuilder, ["prompt_style=text", "digits=3"], check_imports=False
    )
    assert_dataset_contract("calculator-demos", ["num_games=20", "test_games=4"])
    assert_eval_contract(
        "calculator", sampling_client=ScriptedSamplingClient(lambda text: "calc 1")
    )
