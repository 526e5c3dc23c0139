"""Hugging Face models from a local directory (random tiny Llama and Qwen2) with LoRA."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_helpers import ce_datum
from tinker import types

from cookbook.backends.local.service import LocalServiceClient

ARCHS = ["llama", "qwen2"]


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_train_sample_save_load(
    arch: str, hf_model_dirs: dict[str, Path], service: LocalServiceClient
) -> None:
    path = str(hf_model_dirs[arch])
    trainer = service.create_lora_training_client(path, rank=4, seed=1)
    info = trainer.get_info()
    assert info.is_lora and info.lora_rank == 4 and info.model_data.arch == arch
    tok = trainer.get_tokenizer()
    ids = tok.encode("the quick brown fox jumps over the lazy dog")
    data = [ce_datum(ids)]

    weights0 = trainer.trainable_weights()
    assert weights0 and all("lora_" in name for name in weights0)
    first = trainer.forward_backward(data, "cross_entropy").result().metrics["loss:sum"]
    assert set(trainer.accumulated_gradients()) == set(weights0)
    trainer.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    for _ in range(15):
        trainer.forward_backward(data, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=1e-2))
    last = trainer.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert last < first  # the adapters learn

    # Sampler logprobs agree with scoring and with the trainer's forward.
    sampler = trainer.save_weights_and_get_sampling_client()
    prompt = ids[:4]
    params = types.SamplingParams(max_tokens=8, temperature=1.0, seed=3, stop=[])
    response = sampler.sample(types.ModelInput.from_ints(prompt), 2, params).result()
    fwd_lp = trainer.forward(data, "cross_entropy").result().loss_fn_outputs[0]["logprobs"]
    for seq in response.sequences:
        assert len(seq.tokens) == 8 and all(
            0 <= t < 320 for t in seq.tokens
        )  # the fixture's vocabulary
        full = types.ModelInput.from_ints(prompt + seq.tokens)
        scored = sampler.compute_logprobs(full).result()
        np.testing.assert_allclose(
            np.array(seq.logprobs, float), np.array(scored[4:], float), atol=1e-4
        )
    scored_data = sampler.compute_logprobs(types.ModelInput.from_ints(ids)).result()
    np.testing.assert_allclose(np.array(scored_data[1:], float), fwd_lp.to_numpy(), atol=1e-4)

    # Sampler weights on disk give the same model; state round-trips into a fresh client.
    saved = trainer.save_weights_for_sampler("hf-sampler").result().path
    from_disk = service.create_sampling_client(model_path=saved)
    again = from_disk.compute_logprobs(types.ModelInput.from_ints(ids)).result()
    np.testing.assert_allclose(np.array(again[1:], float), fwd_lp.to_numpy(), atol=1e-5)
    state = trainer.save_state("hf-state").result().path
    fresh = service.create_lora_training_client(path, rank=4, seed=7)
    fresh.load_state_with_optimizer(state).result()
    want = trainer.trainable_weights()
    got = fresh.trainable_weights()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    assert fresh.step == trainer.step == 16


def test_batched_prompts_of_different_lengths_match_scoring(
    hf_model_dirs: dict[str, Path], service: LocalServiceClient
) -> None:
    """Concurrent requests share one left-padded batch; each row's logprobs must still equal
    an unpadded forward of its own sequence (the HF attention mask and positions are right)."""
    sampler = service.create_sampling_client(base_model=str(hf_model_dirs["llama"]))
    tok = sampler.get_tokenizer()
    texts = ["hello", "the quick brown fox jumps over", "what is 23+45? the answer"]

    async def fire() -> list[types.SampleResponse]:
        futures = [
            sampler.sample(
                types.ModelInput.from_ints(tok.encode(t)),
                2,
                types.SamplingParams(max_tokens=6, seed=i, stop=[]),
            )
            for i, t in enumerate(texts)
        ]
        return list(await asyncio.gather(*futures))

    for text, response in zip(texts, asyncio.run(fire()), strict=True):
        prompt = tok.encode(text)
        for seq in response.sequences:
            full = types.ModelInput.from_ints(prompt + seq.tokens)
            scored = sampler.compute_logprobs(full).result()
            np.testing.assert_allclose(
                np.array(seq.logprobs, float), np.array(scored[len(prompt) :], float), atol=1e-4
            )


def test_lora_targets_follow_the_flags(
    hf_model_dirs: dict[str, Path], service: LocalServiceClient
) -> None:
    path = str(hf_model_dirs["llama"])
    attn_only = service.create_lora_training_client(
        path, rank=2, train_mlp=False, train_unembed=False
    ).trainable_weights()
    assert attn_only and all("self_attn" in n for n in attn_only)
    mlp_head = service.create_lora_training_client(
        path, rank=2, train_attn=False
    ).trainable_weights()
    assert any("mlp" in n for n in mlp_head) and any("lm_head" in n for n in mlp_head)
    assert not any("self_attn" in n for n in mlp_head)


def test_base_model_sampling_stops_at_eos(
    hf_model_dirs: dict[str, Path], service: LocalServiceClient
) -> None:
    path = str(hf_model_dirs["qwen2"])
    sampler = service.create_sampling_client(base_model=path)
    tok = sampler.get_tokenizer()
    eos = tok.eos_token_id
    prompt = types.ModelInput.from_ints(tok.encode("hello world"))
    # Stop on every token: each sequence ends after one token, with reason "stop".
    every = list(range(320))  # the fixture's vocabulary
    response = sampler.sample(prompt, 3, types.SamplingParams(max_tokens=5, stop=every)).result()
    assert all(len(s.tokens) == 1 and s.stop_reason == "stop" for s in response.sequences)
    # Default stop is the tokenizer's EOS: a sequence contains it only as its last token.
    response = sampler.sample(prompt, 8, types.SamplingParams(max_tokens=30, seed=0)).result()
    for seq in response.sequences:
        assert eos not in seq.tokens[:-1]
        assert (seq.stop_reason == "stop") == (seq.tokens[-1] == eos)
