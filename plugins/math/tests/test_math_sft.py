"""The `arithmetic-sft` warm-start dataset: well-formed datums, weights only on the answer."""

from __future__ import annotations

from cookbook_math.arithmetic import heldout_problems
from cookbook_math.arithmetic_env import ArithmeticEnvBuilder
from cookbook_math.sft import ArithmeticSFTBuilder, ArithmeticSFTDataset
from tinker import types as tinker_types

from cookbook.build_context import BuildContext
from cookbook.renderers.tiny import TinyRenderer
from cookbook.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
RENDERER = TinyRenderer(TOKENIZER)


def ctx(model_name: str = "tiny", seed: int = 0, batch: int = 16) -> BuildContext:
    return BuildContext(
        model_name=model_name,
        tokenizer=TOKENIZER,
        renderer=RENDERER,
        seed=seed,
        groups_per_batch=batch,
    )


def unpack(datum: tinker_types.Datum) -> tuple[list[int], list[int], list[float]]:
    inputs = datum.model_input.to_ints()
    targets = [int(t) for t in datum.loss_fn_inputs["target_tokens"].tolist()]
    weights = [float(w) for w in datum.loss_fn_inputs["weights"].tolist()]
    return inputs, targets, weights


def test_datums_shift_by_one_and_weight_only_the_answer() -> None:
    train, _ = ArithmeticSFTBuilder(num_examples=64, operations="+-*", num_operands=3)(ctx())
    assert isinstance(train, ArithmeticSFTDataset)
    batch = train.get_batch(0)
    assert len(batch) == 16 and len(train) == 4
    problems = [train.problems[i] for i in train.order[:16]]
    for datum, problem in zip(batch, problems, strict=True):
        inputs, targets, weights = unpack(datum)
        assert len(inputs) == len(targets) == len(weights)
        assert inputs[1:] == targets[:-1]  # position i predicts token i + 1
        prompt = TOKENIZER.decode(inputs)
        assert prompt.startswith("<|user|>") and "=<|eos|><|assistant|>" in prompt
        trained = [t for t, w in zip(targets, weights, strict=True) if w > 0]
        assert set(weights) == {0.0, 1.0}
        # The trained targets are exactly the reply and its closing <|eos|>.
        answer = TOKENIZER.decode(trained[:-1])
        assert trained[-1] == TOKENIZER.eos_token_id
        assert answer == str(problem.answer)
        assert prompt == f"<|user|>{problem.expression}=<|eos|><|assistant|>{answer}"
        assert weights == [0.0] * (len(weights) - len(trained)) + [1.0] * len(trained)


def test_chat_models_are_taught_the_boxed_form() -> None:
    train, _ = ArithmeticSFTBuilder(num_examples=4)(ctx(model_name="my-hf-model", batch=4))
    for datum in train.get_batch(0):
        _, targets, weights = unpack(datum)
        trained = [t for t, w in zip(targets, weights, strict=True) if w > 0]
        assert TOKENIZER.decode(trained[:-1]).startswith("\\boxed{")


def test_test_split_is_the_envs_heldout_set_and_train_avoids_it() -> None:
    builder = ArithmeticSFTBuilder(num_examples=3000, num_test=50)
    train, test = builder(ctx(batch=50))
    assert isinstance(train, ArithmeticSFTDataset) and isinstance(test, ArithmeticSFTDataset)
    heldout = heldout_problems(builder.settings(), 50)
    assert [p.expression for p in test.problems] == [p.expression for p in heldout]
    assert not {p.expression for p in heldout} & {p.expression for p in train.problems}
    # The env with the same options holds out the same problems.
    _, env_test = ArithmeticEnvBuilder(num_test=50)(ctx(batch=50))
    assert env_test is not None and len(env_test.get_batch(0)) == 50


def test_epochs_reshuffle_deterministically() -> None:
    train, _ = ArithmeticSFTBuilder(num_examples=200)(ctx(seed=1))
    assert isinstance(train, ArithmeticSFTDataset)
    first = list(train.order)
    train.set_epoch(1)
    second = list(train.order)
    train.set_epoch(0)
    assert train.order == first != second
    assert sorted(second) == sorted(first)
    again, _ = ArithmeticSFTBuilder(num_examples=200)(ctx(seed=1))
    assert [unpack(d) for d in again.get_batch(2)] == [unpack(d) for d in train.get_batch(2)]
