"""The training client's fast path (packed rows, chunked head logprobs) against its plain path
(padded rows, full logits) on random data: every loss, custom losses, accumulation, the tiny
model and Hugging Face LoRA. Plus the row packing itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_helpers import ce_datum, random_tokens, rl_datum
from tinker import types

from cookbook.backends.local.batch import pack_rows
from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient

LENGTHS = [31, 6, 9, 14, 4, 22, 3]
"""Datum lengths (tokens + 1) that pack into fewer rows than datums."""

ADAM = types.AdamParams(learning_rate=1e-2, eps=1e-3)
"""eps far above float noise: Adam divides by sqrt(v) + eps, which would blow a rounding-size
difference in a near-zero gradient up into a visible step."""

LOSSES: list[tuple[types.LossFnType, dict[str, float | str]]] = [
    ("cross_entropy", {}),
    ("importance_sampling", {}),
    ("ppo", {"clip_low_threshold": 0.9, "clip_high_threshold": 1.05}),
    ("cispo", {}),
    ("dro", {"beta": 0.3}),
    ("gspo", {"clip_low_threshold": 0.95, "clip_high_threshold": 1.02}),
    ("stable_reinforce", {}),
]


def _data(
    rng: np.random.Generator, loss_fn: str, vocab: int, lengths: list[int] = LENGTHS
) -> list[types.Datum]:
    data = []
    for n in lengths:
        tokens = random_tokens(rng, n, vocab)
        if loss_fn == "cross_entropy":
            data.append(ce_datum(tokens, rng.uniform(0, 1, size=n - 1).tolist()))
        else:
            q = rng.normal(-np.log(vocab), 0.3, size=n - 1).tolist()
            adv = rng.normal(0, 1, size=n - 1)
            adv[: (n - 1) // 3] = 0.0  # prompt positions (outside GSPO's sequence ratio)
            data.append(rl_datum(tokens, q, adv.tolist()))
    return data


def _pair(service: LocalServiceClient, base: str) -> tuple[LocalTrainingClient, ...]:
    fast = service.create_lora_training_client(base, rank=4, seed=3)
    plain = service.create_lora_training_client(base, rank=4, seed=3)
    plain.fast_training = False
    return fast, plain


def _warm_up(clients: tuple[LocalTrainingClient, ...], vocab: int) -> None:
    """A few steps, so the tiny model's head is no longer zero and logprobs vary by token."""
    rng = np.random.default_rng(0)
    warm = [ce_datum(random_tokens(rng, 20, vocab)) for _ in range(3)]
    for client in clients:
        client.fast_training, fast = False, client.fast_training
        for _ in range(2):
            client.forward_backward(warm, "cross_entropy")
            client.optim_step(types.AdamParams(learning_rate=1e-2))
        client.fast_training = fast


def _assert_same_outputs(
    a: types.ForwardBackwardOutput, b: types.ForwardBackwardOutput, grads: bool
) -> None:
    assert a.metrics["loss:sum"] == pytest.approx(b.metrics["loss:sum"], rel=1e-5, abs=1e-5)
    for x, y in zip(a.loss_fn_outputs, b.loss_fn_outputs, strict=True):
        np.testing.assert_allclose(x["logprobs"].to_numpy(), y["logprobs"].to_numpy(), atol=2e-5)


def _assert_same_grads(a: LocalTrainingClient, b: LocalTrainingClient) -> None:
    ga, gb = a.accumulated_gradients(), b.accumulated_gradients()
    assert ga.keys() == gb.keys() and ga
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-5, msg=name)


def test_pack_rows_places_every_datum_whole_and_alone() -> None:
    lengths = [5, 3, 2, 8, 1, 4, 7, 7]
    layout = pack_rows(lengths, 8)
    assert layout.packed and layout.rows == 5  # 37 tokens in rows of 8
    tokens = np.zeros((len(lengths), 8), dtype=np.int64)
    for i, n in enumerate(lengths):
        tokens[i, :n] = 100 * (i + 1) + np.arange(n)
    packed, positions = layout.tokens_and_positions(tokens)
    assert positions is not None
    assert len(set(layout.dest_N.tolist())) == sum(lengths)  # no two tokens share a slot
    np.testing.assert_array_equal(
        packed.reshape(-1)[layout.dest_N], tokens.reshape(-1)[layout.source_N]
    )
    np.testing.assert_array_equal(positions.reshape(-1)[layout.dest_N], layout.source_N % 8)
    for i, n in enumerate(lengths):  # each datum in one row, in order, starting at position 0
        dest = layout.dest_N[sum(lengths[:i]) : sum(lengths[: i + 1])]
        assert len(set((dest // 8).tolist())) == 1
        np.testing.assert_array_equal(np.diff(dest), np.ones(n - 1))
        assert positions.reshape(-1)[dest[0]] == 0


def test_pack_rows_leaves_batches_with_little_padding_unpacked() -> None:
    for lengths in ([6, 6, 6], [6, 5, 6, 6], [9]):
        layout = pack_rows(lengths, max(lengths))
        assert not layout.packed and layout.rows == len(lengths)
        np.testing.assert_array_equal(layout.dest_N, layout.source_N)


@pytest.mark.parametrize(("loss_fn", "config"), LOSSES)
def test_tiny_fast_path_matches_plain(
    service: LocalServiceClient, loss_fn: types.LossFnType, config: dict[str, float | str]
) -> None:
    assert pack_rows([n - 1 for n in LENGTHS], max(LENGTHS) - 1).packed
    clients = _pair(service, "tiny")
    _warm_up(clients, 256)
    data = _data(np.random.default_rng(len(loss_fn)), loss_fn, 256)
    fast, plain = clients
    _assert_same_outputs(
        fast.forward(data, loss_fn, config).result(),
        plain.forward(data, loss_fn, config).result(),
        grads=False,
    )
    _assert_same_outputs(
        fast.forward_backward(data, loss_fn, config).result(),
        plain.forward_backward(data, loss_fn, config).result(),
        grads=True,
    )
    _assert_same_grads(fast, plain)


def test_tiny_accumulation_and_steps_match_plain(service: LocalServiceClient) -> None:
    """Two forward_backward calls (one packed, one not), a step, again: the same weights."""
    fast, plain = _pair(service, "tiny")
    rng = np.random.default_rng(5)
    batches = [_data(rng, "cross_entropy", 256), _data(rng, "ppo", 256, [12, 12, 11])]
    for _ in range(2):
        for client in (fast, plain):
            client.forward_backward(batches[0], "cross_entropy")
            client.forward_backward(batches[1], "ppo")
        _assert_same_grads(fast, plain)
        for client in (fast, plain):
            client.optim_step(ADAM).result()
    want = plain.trainable_weights()
    for name, value in fast.trainable_weights().items():
        torch.testing.assert_close(value, want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_top_k_and_custom_losses_match_plain(service: LocalServiceClient) -> None:
    fast, plain = _pair(service, "tiny")
    _warm_up((fast, plain), 256)
    rng = np.random.default_rng(9)
    top_k = [
        types.Datum(
            model_input=types.ModelInput.from_ints(random_tokens(rng, n)),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(rng.integers(0, 256, (n, 3))),
                "weights": types.TensorData.from_numpy(
                    rng.uniform(0, 1, (n, 3)).astype(np.float32)
                ),
            },
        )
        for n in (20, 4, 6, 3)
    ]
    _assert_same_outputs(
        fast.forward_backward(top_k, "cross_entropy").result(),
        plain.forward_backward(top_k, "cross_entropy").result(),
        grads=True,
    )

    def squared(
        data: list[types.Datum], lps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return sum(((lp + 3.0) ** 2).sum() for lp in lps) * torch.ones(()), {}

    data = _data(rng, "cross_entropy", 256)
    _assert_same_outputs(
        fast.forward_backward_custom(data, squared).result(),
        plain.forward_backward_custom(data, squared).result(),
        grads=True,
    )
    _assert_same_grads(fast, plain)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("loss_fn", ["cross_entropy", "gspo"])
def test_hf_lora_fast_path_matches_plain(
    service: LocalServiceClient, hf_model_dirs: dict[str, Path], arch: str, loss_fn: str
) -> None:
    fast, plain = _pair(service, str(hf_model_dirs[arch]))
    assert fast.model.training_head() is not None  # the split is taken, not the fallback
    vocab = fast.model.vocab_size
    data = _data(np.random.default_rng(1), loss_fn, vocab)
    _assert_same_outputs(
        fast.forward_backward(data, loss_fn).result(),  # type: ignore[arg-type]
        plain.forward_backward(data, loss_fn).result(),  # type: ignore[arg-type]
        grads=True,
    )
    _assert_same_grads(fast, plain)


def test_softcapped_logits_train_on_the_full_logits(
    service: LocalServiceClient, hf_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """Gemma 2 caps its logits after the head: the probe sees that the logits are not the
    head's output, and training takes the plain path (same results as with it forced)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    directory = tmp_path / "gemma2"
    shutil.copytree(hf_model_dirs["llama"], directory)
    (directory / "model.safetensors").unlink()
    vocab = (
        LocalServiceClient(device="cpu")
        .create_lora_training_client(str(hf_model_dirs["llama"]), rank=2)
        .model.vocab_size
    )
    config = Gemma2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        final_logit_softcapping=2.0,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    Gemma2ForCausalLM(config).save_pretrained(str(directory))
    fast, plain = _pair(service, str(directory))
    assert fast.model.training_head() is None
    data = _data(np.random.default_rng(2), "cross_entropy", vocab)
    _assert_same_outputs(
        fast.forward_backward(data, "cross_entropy").result(),
        plain.forward_backward(data, "cross_entropy").result(),
        grads=True,
    )
    _assert_same_grads(fast, plain)


def test_hf_lora_on_a_bfloat16_base_matches_plain(
    service: LocalServiceClient, hf_model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CUDA the base loads in bf16 and peft keeps the adapters in float32: the fast path
    trains on those mixed dtypes (every forward_backward raised a dtype error) and agrees with
    the plain path to bf16 rounding."""
    from cookbook.backends.local import hf_model

    load = hf_model.load_hf_base

    def load_bf16(path: str, device: torch.device) -> hf_model.HFBase:
        base = load(path, device)
        base.module.to(torch.bfloat16)
        return base

    monkeypatch.setattr(hf_model, "load_hf_base", load_bf16)
    fast, plain = _pair(service, str(hf_model_dirs["qwen2"]))
    head = fast.model.training_head()
    assert head is not None and head.lora_a_R_H is not None
    assert (head.weight_V_H.dtype, head.lora_a_R_H.dtype) == (torch.bfloat16, torch.float32)
    data = _data(np.random.default_rng(3), "cross_entropy", fast.model.vocab_size)
    a = fast.forward_backward(data, "cross_entropy").result()
    b = plain.forward_backward(data, "cross_entropy").result()
    assert a.metrics["loss:sum"] == pytest.approx(b.metrics["loss:sum"], rel=1e-2)
    for x, y in zip(a.loss_fn_outputs, b.loss_fn_outputs, strict=True):
        np.testing.assert_allclose(x["logprobs"].to_numpy(), y["logprobs"].to_numpy(), atol=0.05)
    ga, gb = fast.accumulated_gradients(), plain.accumulated_gradients()
    assert ga.keys() == gb.keys() and ga
    for name in ga:
        scale = float(gb[name].abs().max()) + 1e-6
        torch.testing.assert_close(ga[name], gb[name], rtol=0.05, atol=0.05 * scale, msg=name)
