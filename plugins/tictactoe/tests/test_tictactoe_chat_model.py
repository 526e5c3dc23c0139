"""The text prompt style end to end with a Hugging Face chat model: a random-weight Llama built
offline by the local backend (nothing downloaded), its tokenizer and chat template."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cookbook.build_context import BuildContext

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cookbook.backends.local.random_hf") is None
    or importlib.util.find_spec("transformers") is None,
    reason="needs the local backend's random Hugging Face models and transformers",
)

ChatModel = tuple[BuildContext, "SamplingClient"]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> ChatModel:
    """The build context a run on this model would get, and an untrained sampler of it."""
    from cookbook.backends import make_service_client
    from cookbook.backends.local.random_hf import save_random_hf_model
    from cookbook.renderers import get_renderer

    model_dir = str(save_random_hf_model(Path(tmp_path_factory.mktemp("hf")) / "llama", "llama"))
    client = make_service_client("local", device="cpu").create_sampling_client(base_model=model_dir)
    tokenizer = client.get_tokenizer()
    ctx = BuildContext(
        model_name=model_dir, tokenizer=tokenizer, renderer=get_renderer(model_dir, tokenizer)
    )
    return ctx, client


def test_chat_model_sees_textarenas_prompt(chat_model: ChatModel) -> None:
    from cookbook_tictactoe.tictactoe import TicTacToeEnvBuilder

    ctx, _ = chat_model

    async def run() -> str:
        train, _ = TicTacToeEnvBuilder()(ctx)
        env = (await train.get_batch(0)[0].make_envs())[0]
        ob, _ = await env.initial_observation()
        return ctx.tokenizer.decode(ob.to_ints())

    text = asyncio.run(run())
    assert "You are Player 0 in Tic Tac Toe" in text and "Available Moves" in text


def test_chat_model_demonstrations_train_on_the_bracketed_move(chat_model: ChatModel) -> None:
    from cookbook_tictactoe.tictactoe import TicTacToeDemosBuilder

    ctx, _ = chat_model
    train, _ = TicTacToeDemosBuilder(num_games=2, test_games=0, batch_size=4)(ctx)
    for datum in train.get_batch(0):
        targets = datum.loss_fn_inputs["target_tokens"].tolist()
        weights = datum.loss_fn_inputs["weights"].tolist()
        trained = [int(t) for t, w in zip(targets, weights, strict=True) if w > 0]
        text = ctx.tokenizer.decode(trained)
        assert text.startswith("[") and text[1].isdigit() and "]" in text


def test_untrained_chat_model_plays_eval_games(chat_model: ChatModel) -> None:
    from cookbook_tictactoe.tictactoe import TicTacToeVsRandomEval

    ctx, client = chat_model
    metrics = asyncio.run(TicTacToeVsRandomEval(num_games=2, max_tokens=8)(ctx)(client))
    rates = ("win_rate", "draw_rate", "loss_rate", "illegal_rate")
    assert sum(metrics[k] for k in rates) == pytest.approx(1.0)


def test_recommended_run_trains_a_chat_model(chat_model: ChatModel, tmp_path: Path) -> None:
    """`cookbook rl --env tictactoe model_name=DIR` needs no other setting: the tiny model's
    warm start and its board symmetries (its compact prompt can be turned, textarena's text
    cannot) stay off, and the search runs on the chat model's text prompts."""
    from cookbook.cli import main
    from cookbook.rl.train import Config

    ctx, _ = chat_model
    config = Config.for_env("tictactoe", f"model_name={ctx.model_name}")
    assert config.search is not None and not config.search.symmetries
    assert config.warm_start is None
    tiny = Config.for_env("tictactoe").search
    assert tiny is not None and tiny.symmetries
    args = ["max_steps=2", "groups_per_batch=4", "eval_every=0", "eval_before_rl=false", "evals="]
    model = f"model_name={ctx.model_name}"
    status = main(["rl", "--env", "tictactoe", model, f"log_dir={tmp_path}", *args])
    assert status == 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1]
    assert all(row["search/roots"] == 4 for row in rows)
