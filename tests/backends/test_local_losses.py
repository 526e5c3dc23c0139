"""Each built-in loss: value, per-datum logprobs and gradient against a direct computation of
its formula on a separate copy of the model, one datum at a time, no padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backend_helpers import ce_datum, random_tokens, rl_datum
from tinker import types

from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.tiny_model import TinyConfig, TinyGPT


def _reference_loss(
    loss_fn: str,
    lp: torch.Tensor,
    inputs: dict[str, torch.Tensor],
    config: dict[str, float | str],
) -> torch.Tensor:
    """The formulas of the tinker docs, written out independently of the backend."""
    if loss_fn == "cross_entropy":
        return (-lp * inputs["weights"]).sum()
    q, adv = inputs["logprobs"], inputs["advantages"]
    ratio = torch.exp(lp - q)
    default_lo, default_hi = (0.0, 4.0) if loss_fn == "cispo" else (0.8, 1.2)  # tinker's docs
    lo = float(config.get("clip_low_threshold", default_lo))
    hi = float(config.get("clip_high_threshold", default_hi))
    if loss_fn == "importance_sampling":
        return -(ratio * adv).sum()
    if loss_fn == "ppo":
        return -torch.min(ratio * adv, torch.clamp(ratio, lo, hi) * adv).sum()
    if loss_fn == "cispo":
        return -(torch.clamp(ratio, lo, hi).detach() * lp * adv).sum()
    if loss_fn == "dro":
        beta = float(config.get("beta", 0.05))
        return -(lp * adv - 0.5 * beta * (lp - q) ** 2).sum()
    if loss_fn == "gspo":
        # One datum: the sequence ratio is the geometric mean of the token ratios over the
        # sampled tokens (non-zero advantage); each token keeps its own logprob's gradient.
        sampled = adv != 0
        s = torch.exp((lp.detach() - q)[sampled].mean())
        token_ratio = s * torch.exp(lp - lp.detach())
        return -torch.min(token_ratio * adv, torch.clamp(token_ratio, lo, hi) * adv).sum()
    if loss_fn == "stable_reinforce":
        return -(torch.clamp(ratio.detach(), max=1.0) * lp * adv).sum()
    raise AssertionError(loss_fn)


CASES: list[tuple[types.LossFnType, dict[str, float | str]]] = [
    ("cross_entropy", {}),
    ("importance_sampling", {}),
    ("ppo", {}),
    ("ppo", {"clip_low_threshold": 0.9, "clip_high_threshold": 1.05}),
    ("ppo", {"clip_low_threshold": "0.9", "clip_high_threshold": "1.05"}),  # the SDK sends both
    ("cispo", {}),  # tinker's defaults 0.0 / 4.0
    ("cispo", {"clip_low_threshold": 0.7, "clip_high_threshold": 1.1}),
    ("dro", {"beta": 0.3}),
    ("gspo", {}),
    ("gspo", {"clip_low_threshold": 0.95, "clip_high_threshold": 1.02}),
    ("stable_reinforce", {}),
]


@pytest.mark.parametrize(("loss_fn", "config"), CASES)
def test_loss_value_and_gradient_match_reference(
    service: LocalServiceClient, loss_fn: types.LossFnType, config: dict[str, float | str]
) -> None:
    rng = np.random.default_rng(len(loss_fn) + len(config))
    trainer = service.create_lora_training_client("tiny", seed=3)
    # A few steps first, so the output head is not zero and the logprobs differ per token.
    warm = [ce_datum(random_tokens(rng, 20)) for _ in range(4)]
    for _ in range(3):
        trainer.forward_backward(warm, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=1e-2))
    weights = trainer.trainable_weights()

    reference = TinyGPT(TinyConfig(), seed=123)
    reference.load_state_dict(weights)
    seqs = [random_tokens(rng, n) for n in (9, 17, 4)]  # different lengths: padding inside
    data: list[types.Datum] = []
    ref_loss = torch.zeros(())
    ref_lps = []
    for tokens in seqs:
        logits = reference(torch.tensor([tokens[:-1]]))[0]
        lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(tokens[1:])[:, None])[:, 0]
        ref_lps.append(lp.detach().numpy())
        n = len(tokens) - 1
        if loss_fn == "cross_entropy":
            w = rng.integers(0, 2, size=n).astype(np.float32)
            data.append(ce_datum(tokens, w.tolist()))
            inputs = {"weights": torch.from_numpy(w)}
        else:
            # Sampling logprobs near the model's, so ratios fall on both sides of the clips.
            q = (lp.detach().numpy() + rng.normal(0, 0.3, size=n)).astype(np.float32)
            adv = rng.normal(0, 1, size=n).astype(np.float32)
            adv[: n // 3] = 0.0  # prompt positions: outside GSPO's sequence ratio
            data.append(rl_datum(tokens, q.tolist(), adv.tolist()))
            inputs = {"logprobs": torch.from_numpy(q), "advantages": torch.from_numpy(adv)}
        ref_loss = ref_loss + _reference_loss(loss_fn, lp, inputs, config)
    ref_loss.backward()

    out = trainer.forward_backward(data, loss_fn, config or None).result()
    assert out.metrics["loss:sum"] == pytest.approx(float(ref_loss.detach()), rel=1e-5, abs=1e-5)
    for got, want in zip(out.loss_fn_outputs, ref_lps, strict=True):
        np.testing.assert_allclose(got["logprobs"].to_numpy(), want, atol=1e-5)
    grads = trainer.accumulated_gradients()
    for name, p in reference.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_forward_reports_loss_without_gradient(service: LocalServiceClient) -> None:
    trainer = service.create_lora_training_client("tiny", seed=0)
    datum = ce_datum(list(range(10, 30)))
    out = trainer.forward([datum], "cross_entropy").result()
    # Zero-initialised head: every token has probability 1/261.
    assert out.metrics["loss:sum"] == pytest.approx(19 * np.log(261), rel=1e-5)
    assert trainer.accumulated_gradients() == {}


def test_custom_loss_gradient_equals_builtin(service: LocalServiceClient) -> None:
    rng = np.random.default_rng(0)
    data = [ce_datum(random_tokens(rng, 12)), ce_datum(random_tokens(rng, 7))]
    a = service.create_lora_training_client("tiny", seed=5)
    b = service.create_lora_training_client("tiny", seed=5)
    a.forward_backward(data, "cross_entropy").result()

    def nll(
        batch: list[types.Datum], lps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        weights = [torch.from_numpy(d.loss_fn_inputs["weights"].to_numpy()) for d in batch]
        loss = sum((-(lp * w).sum() for lp, w in zip(lps, weights, strict=True)), torch.zeros(()))
        return loss, {"tokens": float(sum(len(lp) for lp in lps))}

    out = b.forward_backward_custom(data, nll).result()
    assert out.metrics["tokens"] == 17
    ga, gb = a.accumulated_gradients(), b.accumulated_gradients()
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], atol=1e-6, rtol=1e-5)


def test_top_k_cross_entropy_sums_weighted_candidates(service: LocalServiceClient) -> None:
    """[N, K] targets and weights: the loss is -sum of w * log p over every candidate, and the
    output logprobs are [N, K], each equal to the plain cross-entropy logprob of that token."""
    rng = np.random.default_rng(7)
    trainer = service.create_lora_training_client("tiny", seed=1)
    warm = [ce_datum(random_tokens(rng, 20)) for _ in range(4)]
    trainer.forward_backward(warm, "cross_entropy")
    trainer.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    inputs = random_tokens(rng, 9)
    targets_N_K = rng.integers(0, 256, size=(9, 3))
    weights_N_K = rng.uniform(0, 1, size=(9, 3)).astype(np.float32)
    top_k = types.Datum(
        model_input=types.ModelInput.from_ints(inputs),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(targets_N_K.astype(np.int64)),
            "weights": types.TensorData.from_numpy(weights_N_K),
        },
    )
    out = trainer.forward([top_k], "cross_entropy").result()
    lp_N_K = out.loss_fn_outputs[0]["logprobs"].to_numpy()
    assert lp_N_K.shape == (9, 3)
    for k in range(3):
        single = types.Datum(
            model_input=types.ModelInput.from_ints(inputs),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(targets_N_K[:, k].astype(np.int64)),
                "weights": types.TensorData.from_numpy(np.ones(9, np.float32)),
            },
        )
        one = trainer.forward([single], "cross_entropy").result().loss_fn_outputs[0]
        np.testing.assert_allclose(lp_N_K[:, k], one["logprobs"].to_numpy(), atol=1e-5)
    want = -(weights_N_K * lp_N_K).sum()
    assert out.metrics["loss:sum"] == pytest.approx(float(want), rel=1e-5)
