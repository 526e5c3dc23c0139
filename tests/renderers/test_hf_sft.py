"""The chat-template renderer end to end: `cookbook sft` on a small Hugging Face model built
offline (GPT-2 architecture, random weights, the ChatML tokenizer), LoRA on the local backend."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from transformers import PreTrainedTokenizerFast

from cookbook.renderers.hf import HFChatTemplateRenderer
from cookbook.runs.metrics import MetricsLog
from cookbook.runs.setup import build_context
from cookbook.supervised.datasets import all_datums
from cookbook.supervised.jsonl import JsonlDatasetBuilder
from cookbook.supervised.train import Config, main


@pytest.fixture(scope="module")
def hf_model_dir(
    tmp_path_factory: pytest.TempPathFactory, chatml_tokenizer: PreTrainedTokenizerFast
) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("hf") / "tiny-gpt2-chatml"
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(chatml_tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=chatml_tokenizer.eos_token_id,
        eos_token_id=chatml_tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    chatml_tokenizer.save_pretrained(path)
    return path


def test_sft_on_a_local_hf_model_trains_on_its_chat_template(
    hf_model_dir: Path, tmp_path: Path
) -> None:
    config = Config(
        dataset=JsonlDatasetBuilder(),
        log_dir=str(tmp_path / "run"),
        model_name=str(hf_model_dir),
        lora_rank=4,
        learning_rate=1e-2,
        max_steps=12,
        eval_every=12,
        save_every=0,
        show_progress=False,
    )
    result = main(config)
    records = cast("list[dict[str, float]]", MetricsLog(result.log_dir / "metrics.jsonl").read())
    train = [r["train/loss"] for r in records if "train/loss" in r]
    assert sum(train[-3:]) / 3 < sum(train[:3]) / 3 - 0.3, train
    nll = [r["test/nll"] for r in records if "test/nll" in r]
    assert len(nll) == 2 and nll[-1] < nll[0] - 0.3, nll

    # The datums came from the model's own template: the trained tokens of every example are
    # its assistant replies, each closed by <|im_end|>.
    from cookbook.backends import make_service_client

    client = make_service_client("local").create_lora_training_client(
        base_model=str(hf_model_dir), rank=4
    )
    ctx = build_context(config.model_name, client, seed=config.seed, groups_per_batch=32)
    assert isinstance(ctx.renderer, HFChatTemplateRenderer)
    train_ds, _ = JsonlDatasetBuilder()(ctx)
    datum = all_datums(train_ds)[0]
    targets = datum.loss_fn_inputs["target_tokens"].tolist()
    weights = datum.loss_fn_inputs["weights"].tolist()
    trained = [t for t, w in zip(targets, weights, strict=True) if w]
    assert ctx.tokenizer.decode(trained).endswith("<|im_end|>")
