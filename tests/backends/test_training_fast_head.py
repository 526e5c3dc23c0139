"""The chunked target logprobs (`head.py`) against the plain way (full logits, log-softmax,
gather, autograd) on random data: values and the gradient of every head tensor."""

from __future__ import annotations

import pytest
import torch

from cookbook.backends.local.head import OutputHead, target_logprobs


def _plain(hidden: torch.Tensor, targets: torch.Tensor, head: OutputHead) -> torch.Tensor:
    return torch.log_softmax(head.logits(hidden), dim=-1).gather(1, targets)


def _random_head(kind: str, vocab: int, width: int, dtype: torch.dtype) -> OutputHead:
    def rand(*shape: int, scale: float, grad: bool) -> torch.Tensor:
        return (scale * torch.randn(*shape, dtype=dtype)).requires_grad_(grad)

    if kind == "full":  # the tiny model: weight and bias train
        return OutputHead(
            rand(vocab, width, scale=0.5, grad=True), rand(vocab, scale=0.5, grad=True)
        )
    if kind == "frozen":  # LoRA without an adapter on the head
        return OutputHead(rand(vocab, width, scale=0.5, grad=False))
    return OutputHead(  # LoRA on a frozen head
        rand(vocab, width, scale=0.5, grad=False),
        None,
        rand(4, width, scale=0.5, grad=True),
        rand(vocab, 4, scale=0.5, grad=True),
        lora_scale=2.0,
    )


def _tensors(head: OutputHead) -> list[torch.Tensor]:
    parts = (head.weight_V_H, head.bias_V, head.lora_a_R_H, head.lora_b_V_R)
    return [t for t in parts if t is not None and t.requires_grad]


@pytest.mark.parametrize("kind", ["full", "frozen", "lora"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize(("chunk_rows", "keep"), [(7, True), (7, False), (1000, True)])
def test_chunked_logprobs_and_gradients_match_plain(
    kind: str, k: int, chunk_rows: int, keep: bool
) -> None:
    torch.manual_seed(k + chunk_rows + len(kind))
    n, width, vocab = 45, 12, 53
    head = _random_head(kind, vocab, width, torch.float64)
    hidden = torch.randn(n, width, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (n, k))
    targets[3] = targets[3, 0]  # a position whose K targets repeat one token
    upstream = torch.randn(n, k, dtype=torch.float64)
    leaves = [hidden, *_tensors(head)]

    want = _plain(hidden, targets, head)
    want_grads = torch.autograd.grad((want * upstream).sum(), leaves)
    got = target_logprobs(
        hidden, targets, head, chunk_rows=chunk_rows, keep_bytes=1 << 30 if keep else 0
    )
    got_grads = torch.autograd.grad((got * upstream).sum(), leaves)

    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert len(got_grads) == len(leaves) == 1 + {"full": 2, "frozen": 0, "lora": 2}[kind]
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_float32_lora_head_folds_the_adapter_within_rounding() -> None:
    torch.manual_seed(0)
    head = _random_head("lora", 301, 16, torch.float32)
    hidden = torch.randn(64, 16, requires_grad=True)
    targets = torch.randint(0, 301, (64, 1))
    leaves = [hidden, *_tensors(head)]
    want = _plain(hidden, targets, head)
    want_grads = torch.autograd.grad(want.sum(), leaves)
    got = target_logprobs(hidden, targets, head, chunk_rows=10)
    got_grads = torch.autograd.grad(got.sum(), leaves)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_bfloat16_lora_head_adds_the_adapter_to_the_logits() -> None:
    """In bf16 the LoRA product is not folded into W (it would round away against it): the
    logprobs follow the adapter, as the plain path computed in float32 from the same weights."""
    torch.manual_seed(1)
    head32 = _random_head("lora", 97, 16, torch.float32)
    head16 = OutputHead(
        *(
            None if t is None else t.detach().bfloat16().requires_grad_(t.requires_grad)
            for t in (head32.weight_V_H, head32.bias_V, head32.lora_a_R_H, head32.lora_b_V_R)
        ),
        lora_scale=head32.lora_scale,
    )
    hidden = torch.randn(20, 16).bfloat16()
    targets = torch.randint(0, 97, (20, 1))
    got = target_logprobs(hidden.requires_grad_(), targets, head16, chunk_rows=6)
    as_float = OutputHead(
        *(
            None if t is None else t.detach().float()
            for t in (head16.weight_V_H, head16.bias_V, head16.lora_a_R_H, head16.lora_b_V_R)
        ),
        lora_scale=head16.lora_scale,
    )
    want = _plain(hidden.detach().float(), targets, as_float)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0.01, atol=0.01)
    without = _plain(hidden.detach().float(), targets, OutputHead(as_float.weight_V_H))
    assert (without - want).abs().max() > 0.5  # the adapter matters at this tolerance
    got.sum().backward()
    assert head16.lora_b_V_R is not None and head16.lora_b_V_R.grad is not None
    assert head16.lora_b_V_R.grad.dtype == torch.bfloat16


def test_no_graph_without_grad() -> None:
    head = _random_head("full", 30, 8, torch.float32)
    with torch.no_grad():
        lp = target_logprobs(torch.randn(5, 8), torch.randint(0, 30, (5, 1)), head)
    assert lp.grad_fn is None and lp.shape == (5, 1)


@pytest.mark.parametrize("keep", [True, False])
def test_bfloat16_head_with_float32_adapters(keep: bool) -> None:
    """peft keeps LoRA adapters in float32 on a bf16 model (what the backend loads on CUDA):
    the head takes the mixed dtypes (it raised a dtype error) and follows the adapter, with
    float32 gradients for float32 adapters."""
    torch.manual_seed(2)
    head32 = _random_head("lora", 97, 16, torch.float32)
    assert head32.lora_a_R_H is not None and head32.lora_b_V_R is not None
    mixed = OutputHead(
        head32.weight_V_H.detach().bfloat16(),
        None,
        head32.lora_a_R_H.detach().requires_grad_(),
        head32.lora_b_V_R.detach().requires_grad_(),
        lora_scale=head32.lora_scale,
    )
    hidden = torch.randn(20, 16).bfloat16().requires_grad_()
    targets = torch.randint(0, 97, (20, 1))
    leaves = [hidden, *_tensors(mixed)]
    got = target_logprobs(hidden, targets, mixed, chunk_rows=6, keep_bytes=1 << 30 if keep else 0)
    got_grads = torch.autograd.grad(got.sum(), leaves)
    as_float = OutputHead(
        mixed.weight_V_H.float(), None, mixed.lora_a_R_H, mixed.lora_b_V_R, mixed.lora_scale
    )
    hidden_f = hidden.detach().float().requires_grad_()
    want = _plain(hidden_f, targets, as_float)
    want_grads = torch.autograd.grad(want.sum(), [hidden_f, *_tensors(mixed)])
    torch.testing.assert_close(got, want, rtol=0.01, atol=0.01)
    plain_mixed = _plain(hidden.detach(), targets, mixed)  # the reference takes them too
    torch.testing.assert_close(plain_mixed, want, rtol=0.01, atol=0.01)
    assert [g.dtype for g in got_grads] == [torch.bfloat16, torch.float32, torch.float32]
    for g, w in zip(got_grads, want_grads, strict=True):  # bf16 rounding, on the grad's scale
        torch.testing.assert_close(g.float(), w, rtol=0.02, atol=0.02 * float(w.abs().max()))
