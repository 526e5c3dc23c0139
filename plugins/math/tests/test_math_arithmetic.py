"""The `arithmetic` problems and env: generation, seeding, held-out split, rewards."""

from __future__ import annotations

import ast
import asyncio
import operator
import pickle
import random
from collections.abc import Callable
from fractions import Fraction

import pytest
from cookbook_math.arithmetic import (
    ArithmeticSettings,
    heldout_problems,
    operand_range,
    sample_problem,
)
from cookbook_math.arithmetic_env import ArithmeticDataset, ArithmeticEnvBuilder
from cookbook_math.env import MathGroupBuilder

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.renderers.tiny import TinyRenderer
from cookbook.rl.types import RLDataset, StepResult
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
RENDERER = TinyRenderer(TOKENIZER)
EOS = TOKENIZER.eos_token_id


def tiny_ctx(seed: int = 0, group_size: int = 4, groups_per_batch: int = 8) -> BuildContext:
    return BuildContext(
        model_name="tiny",
        tokenizer=TOKENIZER,
        renderer=RENDERER,
        seed=seed,
        group_size=group_size,
        groups_per_batch=groups_per_batch,
    )


_BINOPS: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def reference_value(expression: str) -> Fraction:
    """An independent evaluation through Python's own parser (precedence included)."""

    def walk(node: ast.expr) -> Fraction:
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int)
        return Fraction(node.value)

    return walk(ast.parse(expression, mode="eval").body)


@pytest.mark.parametrize(
    "settings",
    [
        ArithmeticSettings("+", 2, 2),
        ArithmeticSettings("+-", 3, 3),
        ArithmeticSettings("*", 2, 2),
        ArithmeticSettings("/", 2, 3),
        ArithmeticSettings("+-*/", 2, 4, allow_negative=True),
        ArithmeticSettings("-/", 1, 5, allow_negative=True),
    ],
)
def test_problems_have_exact_integer_answers(settings: ArithmeticSettings) -> None:
    rng = random.Random(0)
    lo, hi = operand_range(settings.digits)
    for _ in range(300):
        p = sample_problem(rng, settings)
        assert len(p.operands) == settings.num_operands
        assert set(p.operators) <= set(settings.operations)
        assert reference_value(p.expression) == p.answer
        if not settings.allow_negative:
            assert p.answer >= 0
        # Term starts that are followed by a `/` in their term are dividends: multiples of the
        # term's divisors, so they may exceed the digit range; every other operand may not.
        ops = ("+", *p.operators, "+")
        for i, x in enumerate(p.operands):
            if ops[i] == "/":
                assert x != 0
            term_end = next(j for j in range(i + 1, len(ops)) if ops[j] in "+-")
            is_dividend = ops[i] in "+-" and "/" in ops[i + 1 : term_end]
            assert is_dividend or lo <= x <= hi


def test_compact_and_chat_prompts() -> None:
    p = sample_problem(random.Random(1), ArithmeticSettings("+", 2, 2))
    assert p.compact_prompt() == f"{p.operands[0]}+{p.operands[1]}="
    assert f"{p.operands[0]} + {p.operands[1]}" in p.chat_prompt()
    assert "\\boxed{}" in p.chat_prompt()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ArithmeticEnvBuilder(operations="+x"),
        lambda: ArithmeticEnvBuilder(operations=""),
        lambda: ArithmeticEnvBuilder(digits=0),
        lambda: ArithmeticEnvBuilder(digits=12),
        lambda: ArithmeticEnvBuilder(num_operands=1),
        lambda: ArithmeticEnvBuilder(num_test=-1),
    ],
)
def test_bad_options_are_user_errors(make: Callable[[], ArithmeticEnvBuilder]) -> None:
    with pytest.raises(UserError):
        make()


def _problems(dataset: RLDataset, index: int) -> list[str]:
    assert isinstance(dataset, ArithmeticDataset)
    return [p.expression for p in dataset.problems(index)]


def test_batches_are_deterministic_by_seed() -> None:
    train_a, _ = ArithmeticEnvBuilder()(tiny_ctx(seed=1))
    train_b, _ = ArithmeticEnvBuilder()(tiny_ctx(seed=1))
    train_c, _ = ArithmeticEnvBuilder()(tiny_ctx(seed=2))
    assert _problems(train_a, 3) == _problems(train_b, 3)
    assert _problems(train_a, 3) != _problems(train_c, 3)
    assert _problems(train_a, 3) != _problems(train_a, 4)


def test_heldout_problems_are_never_trained_on_and_do_not_depend_on_the_seed() -> None:
    builder = ArithmeticEnvBuilder(num_test=100)
    train, test = builder(tiny_ctx(seed=5))
    _, test_other_seed = builder(tiny_ctx(seed=6))
    assert test is not None and test_other_seed is not None
    heldout = {p.expression for p in heldout_problems(builder.settings(), 100)}
    assert len(heldout) == 100
    trained = {e for i in range(200) for e in _problems(train, i)}
    assert not heldout & trained
    assert len(test) == 100 // 8 + 1
    first = [b.messages for b in test.get_batch(0) if isinstance(b, MathGroupBuilder)]
    again = [b.messages for b in test_other_seed.get_batch(0) if isinstance(b, MathGroupBuilder)]
    assert first == again


def test_small_problem_spaces_hold_out_at_most_half() -> None:
    settings = ArithmeticSettings("+", 1, 2)  # 100 problems
    assert len(heldout_problems(settings, 200)) == 50


async def _step_all(builder: MathGroupBuilder, replies: list[list[int]]) -> list[StepResult]:
    envs = await builder.make_envs()
    assert len(envs) == len(replies)
    results = []
    for env, reply in zip(envs, replies, strict=True):
        await env.initial_observation()
        results.append(await env.step(reply))
    return results


def test_rewards_for_scripted_replies() -> None:
    train, _ = ArithmeticEnvBuilder(format_reward=0.25)(tiny_ctx(group_size=5))
    group = train.get_batch(0)[0]
    assert isinstance(group, MathGroupBuilder)
    answer = group.gold
    wrong = str(int(answer) + 1)
    replies = [
        [*TOKENIZER.encode(answer), EOS],  # correct, clean
        [*TOKENIZER.encode(wrong), EOS],  # wrong, clean
        [*TOKENIZER.encode(f"= {answer}"), EOS],  # correct number, extra text
        TOKENIZER.encode(answer),  # correct but cut off (no EOS)
        [*TOKENIZER.encode("abc"), EOS],  # nothing
    ]
    results = asyncio.run(_step_all(group, replies))
    assert [r.reward for r in results] == [1.25, 0.25, 1.0, 1.0, 0.0]
    assert [r.metrics["correct"] for r in results] == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert [r.metrics["format_ok"] for r in results] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert all(r.episode_done for r in results)
    assert results[0].logs["reference"] == answer


def test_observation_is_the_compact_prompt_for_tiny_and_a_sentence_for_chat() -> None:
    async def first_prompt(ctx: BuildContext) -> str:
        train, _ = ArithmeticEnvBuilder()(ctx)
        group = train.get_batch(0)[0]
        env = (await group.make_envs())[0]
        ob, stop = await env.initial_observation()
        assert stop == [EOS]
        return TOKENIZER.decode(ob.to_ints())

    tiny = asyncio.run(first_prompt(tiny_ctx()))
    assert tiny.startswith("<|user|>") and tiny.endswith("=<|eos|><|assistant|>")
    chat_ctx = BuildContext(model_name="some/chat-model", tokenizer=TOKENIZER, renderer=RENDERER)
    assert "\\boxed{}" in asyncio.run(first_prompt(chat_ctx))


def test_chat_replies_earn_the_format_reward_with_a_box() -> None:
    ctx = BuildContext(model_name="local-hf", tokenizer=TOKENIZER, renderer=RENDERER, group_size=2)
    train, _ = ArithmeticEnvBuilder()(ctx)
    group = train.get_batch(0)[0]
    assert isinstance(group, MathGroupBuilder)
    replies = [
        [*TOKENIZER.encode(f"Adding gives \\boxed{{{group.gold}}}."), EOS],
        [*TOKENIZER.encode(f"It is {group.gold}."), EOS],
    ]
    results = asyncio.run(_step_all(group, replies))
    assert [r.reward for r in results] == [1.1, 1.0]


def test_group_builders_pickle() -> None:
    train, _ = ArithmeticEnvBuilder()(tiny_ctx())
    batch = train.get_batch(0)
    restored = pickle.loads(pickle.dumps(list(batch)))
    assert [b.gold for b in restored] == [b.gold for b in batch if isinstance(b, MathGroupBuilder)]
    assert restored[0].logging_tags() == ["arithmetic"]
