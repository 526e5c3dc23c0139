"""The `tictactoe-demos` dataset: well-formed datums whose weights mark only the move."""

from __future__ import annotations

import pytest
from cookbook_textarena.demos import DemonstrationDataset, demonstrations
from cookbook_tictactoe.tictactoe import TicTacToe, TicTacToeDemosBuilder, best_cells
from tinker.types import TensorData
from ttt_helpers import RENDERER, TOKENIZER, free_cells, tiny_ctx

from cookbook.build_context import BuildContext
from cookbook.errors import UserError
from cookbook.tokenizers import ByteTokenizer


def _ints(data: TensorData) -> list[int]:
    return [int(x) for x in data.tolist()]


def test_datums_shift_by_one_and_weight_only_the_move() -> None:
    train, test = TicTacToeDemosBuilder(num_games=20, test_games=5, batch_size=16)(tiny_ctx())
    assert isinstance(train, DemonstrationDataset) and test is not None
    seen = 0
    for index in range(len(train)):
        for datum in train.get_batch(index):
            inputs = datum.model_input.to_ints()
            targets = _ints(datum.loss_fn_inputs["target_tokens"])
            weights = datum.loss_fn_inputs["weights"].tolist()
            assert len(inputs) == len(targets) == len(weights)
            assert inputs[1:] == targets[:-1]  # position i predicts token i+1
            full = [*inputs, targets[-1]]
            text = TOKENIZER.decode(full)
            assert text.startswith("<|user|>") and text.endswith("<|eos|>")
            board = text[len("<|user|>") : text.index("<|eos|>")]
            weighted = [t for t, w in zip(targets, weights, strict=True) if w > 0]
            assert set(weights) <= {0.0, 1.0}
            # exactly the move digit and the token that ends the reply
            assert len(weighted) == 2 and weighted[1] == TOKENIZER.eos_token_id
            move = chr(weighted[0])
            assert move.isdigit() and int(move) in free_cells(board)
            assert text.endswith(f"<|assistant|>{move}<|eos|>")
            seen += 1
    assert seen == len(train.demos)
    assert 20 * 5 <= seen <= 20 * 9  # a game has 5 to 9 moves


def test_both_seats_are_demonstrated() -> None:
    demos = demonstrations(TicTacToe(), "compact", num_games=10, seed=0, optimal_fraction=0.0)
    openings = [d for d in demos if d.prompt == "012345678"]
    replies_to_opening = [d for d in demos if sum(c in "XO" for c in d.prompt) == 1]
    assert len(openings) == 10 and len(replies_to_opening) == 10


def test_random_demonstrations_vary_and_optimal_ones_are_optimal() -> None:
    random_demos = demonstrations(TicTacToe(), "compact", 30, seed=1, optimal_fraction=0.0)
    openings = {d.reply for d in random_demos if d.prompt == "012345678"}
    assert len(openings) >= 5  # uniformly random legal openings
    optimal_demos = demonstrations(TicTacToe(), "compact", 10, seed=1, optimal_fraction=1.0)
    for demo in optimal_demos:
        cells = "".join("." if c.isdigit() else c for c in demo.prompt.replace("\n", ""))
        assert int(demo.reply) in best_cells(cells, "X")


def test_text_style_demonstrations_use_textarenas_prompt_and_brackets() -> None:
    demos = demonstrations(TicTacToe(), "text", num_games=2, seed=0, optimal_fraction=0.0)
    assert all("Tic Tac Toe" in d.prompt for d in demos)
    assert all(d.reply.startswith("[") and d.reply.endswith("]") for d in demos)


def test_chat_models_get_the_text_style() -> None:
    ctx = BuildContext(
        model_name="/models/some-chat-model", tokenizer=ByteTokenizer(), renderer=RENDERER
    )
    train, _ = TicTacToeDemosBuilder(num_games=2, test_games=0)(ctx)
    assert isinstance(train, DemonstrationDataset)
    assert all(d.reply.startswith("[") for d in train.demos)


def test_epochs_reshuffle_reproducibly() -> None:
    train, _ = TicTacToeDemosBuilder(num_games=10, test_games=0, batch_size=4)(tiny_ctx(seed=5))
    assert isinstance(train, DemonstrationDataset)
    assert len(train) == -(-len(train.demos) // 4)

    def order() -> list[list[int]]:
        return [d.model_input.to_ints() for i in range(len(train)) for d in train.get_batch(i)]

    first = order()
    train.set_epoch(1)
    second = order()
    train.set_epoch(1)
    assert order() == second
    assert first != second and sorted(map(tuple, first)) == sorted(map(tuple, second))
    with pytest.raises(IndexError):
        train.get_batch(len(train))


def test_held_out_games_differ_from_training_games() -> None:
    train, test = TicTacToeDemosBuilder(num_games=30, test_games=30)(tiny_ctx())
    assert isinstance(train, DemonstrationDataset) and isinstance(test, DemonstrationDataset)
    assert [d.reply for d in train.demos] != [d.reply for d in test.demos]


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="optimal_fraction"):
        TicTacToeDemosBuilder(optimal_fraction=1.5)
    with pytest.raises(UserError, match="num_games"):
        TicTacToeDemosBuilder(num_games=0)
