"""Target logprobs through the output head, chunk by chunk, without full-vocabulary tensors.

Training needs log p(target) at each position and its gradient, not the distribution. The plain
way (logits, log-softmax, gather; autograd for the rest) writes and reads several `[N, V]`
tensors: the logits, the LoRA branch's output and its scaled copy, the log-softmax, the
gradient of each. With a wide vocabulary those passes over memory cost about as much as the
head's matrix products, so `target_logprobs` does the head itself, `chunk_rows` positions at a
time:

    forward   logits_c = h_c W^T (+ b)            one matmul; LoRA folded into W when fp32
              m_c = max(logits_c), E_c = exp(logits_c - m_c), s_c = sum(E_c)
              lp_c = logits_c[target] - m_c - log(s_c)
    backward  with G_c the upstream gradient summed over the K targets, coef_c = G_c / s_c:
              dlogits_c = scatter(g_c at the targets) - coef_c * E_c   (never formed)
              dh_c = sum_k g_ck W[target_ck] - coef_c * (E_c W)        one matmul
              dW, db, dA, dB by the same split: a gather or index_add for the targets, one
              matmul against E_c for the rest

`E_c` (the unnormalised softmax) is kept from forward to backward when the whole of it fits in
`keep_bytes`, else recomputed from `h_c` in backward (one more matmul per chunk, memory bounded
by one chunk). The values are log p computed as the log-softmax computes them (max, exp, sum,
log); they and the gradients match the plain way to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_CHUNK_ELEMENTS = 1 << 23
"""Logits per chunk (4 MiB in fp32: a chunk stays in cache between the matmul and the passes
that follow it)."""

CPU_KEEP_BYTES = 2 << 30
"""Largest softmax kept from forward to backward on CPU (on a GPU: a quarter of the free
memory); above it, backward recomputes each chunk."""


@dataclass(frozen=True)
class OutputHead:
    """A model's output layer as tensors: `logits = h W^T + b + scale * (h A^T) B^T`. Any of
    them may require grad (the tiny model trains W and b, LoRA trains A and B)."""

    weight_V_H: torch.Tensor
    bias_V: torch.Tensor | None = None
    lora_a_R_H: torch.Tensor | None = None
    lora_b_V_R: torch.Tensor | None = None
    lora_scale: float = 1.0

    def logits(self, hidden_N_H: torch.Tensor) -> torch.Tensor:
        """Plain logits `[N, V]` (the reference the chunked path is tested against)."""
        out = torch.nn.functional.linear(hidden_N_H, self.weight_V_H, self.bias_V)
        if self.lora_a_R_H is not None and self.lora_b_V_R is not None:
            a = self.lora_a_R_H
            lora = hidden_N_H.to(a.dtype) @ a.T @ self.lora_b_V_R.T
            out = out + self.lora_scale * lora
        return out


def target_logprobs(
    hidden_N_H: torch.Tensor,
    targets_N_K: torch.Tensor,
    head: OutputHead,
    *,
    chunk_rows: int | None = None,
    keep_bytes: int | None = None,
) -> torch.Tensor:
    """log p(targets_N_K[n, k] | position n) in float32, `[N, K]`, differentiable with respect
    to `hidden_N_H` and every head tensor that requires grad."""
    vocab = head.weight_V_H.shape[0]
    if chunk_rows is None:
        chunk_rows = max(1, DEFAULT_CHUNK_ELEMENTS // vocab)
    tensors = (hidden_N_H, head.weight_V_H, head.bias_V, head.lora_a_R_H, head.lora_b_V_R)
    grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
    if keep_bytes is None:
        keep_bytes = _keep_budget(hidden_N_H.device)
    keep = grad and hidden_N_H.shape[0] * vocab * head.weight_V_H.element_size() <= keep_bytes
    lp: torch.Tensor = _TargetLogprobs.apply(
        hidden_N_H,
        targets_N_K,
        head.weight_V_H,
        head.bias_V,
        head.lora_a_R_H,
        head.lora_b_V_R,
        head.lora_scale,
        chunk_rows,
        keep,
    )
    return lp


def _keep_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    return CPU_KEEP_BYTES


class _Weights:
    """The head's weights laid out for the chunk loops: `cat_V_C = [W_eff | B]` (C = H + R),
    so `E_c @ cat_V_C` gives the hidden-state gradient and LoRA's `dlogits B` in one matmul."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor | None,
        lora_b: torch.Tensor | None,
        scale: float,
    ) -> None:
        self.bias = bias
        self.lora_a = lora_a
        self.scale = scale
        self.h = weight.shape[1]
        # Folding the LoRA product into W saves a pass over each chunk; in bf16 the delta would
        # round away against W, so there the LoRA branch is added to the logits instead (in
        # float32 when the adapters are float32, as peft makes them on a bf16 model: CUDA).
        self.folded = lora_a is None or weight.dtype in (torch.float32, torch.float64)
        if lora_a is None or lora_b is None:
            self.cat = weight
            self.lora_b = None
        else:
            self.cat = torch.empty(
                (weight.shape[0], self.h + lora_b.shape[1]),
                dtype=weight.dtype,
                device=weight.device,
            )
            self.cat[:, : self.h].copy_(weight)
            if self.folded:
                self.cat[:, : self.h].addmm_(lora_b, lora_a, alpha=scale)
            self.cat[:, self.h :].copy_(lora_b)
            self.lora_b = lora_b

    def logits(self, h_c: torch.Tensor) -> torch.Tensor:
        """Logits of one chunk, in float32 (or float64 for a float64 head)."""
        w = self.cat[:, : self.h]
        out = torch.mm(h_c, w.T) if self.bias is None else torch.addmm(self.bias, h_c, w.T)
        a, b = self.lora_a, self.lora_b
        if not self.folded and a is not None and b is not None:
            if a.dtype == out.dtype:
                out.addmm_(h_c @ a.T, b.T, alpha=self.scale)
            else:  # peft keeps adapters in float32 on a bf16 model: add them in float
                out = out.to(self.float_dtype)
                out.addmm_(
                    (h_c.to(a.dtype) @ a.T).to(out.dtype), b.T.to(out.dtype), alpha=self.scale
                )
        return out.to(self.float_dtype)

    @property
    def float_dtype(self) -> torch.dtype:
        """What the softmax is computed in: float32, float64 for a float64 head."""
        return torch.promote_types(self.cat.dtype, torch.float32)


def _softmax_parts(
    logits_c: torch.Tensor, targets_c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lp_c [c, K], the softmax P_c [c, V]): one fused log-softmax, a gather, an exp."""
    logp = torch.log_softmax(logits_c, dim=1)
    return logp.gather(1, targets_c), logp.exp_()


@dataclass
class _Saved:
    """What backward needs from forward."""

    hidden: torch.Tensor
    targets: torch.Tensor
    weights: _Weights
    weight: torch.Tensor
    bias: torch.Tensor | None
    lora_a: torch.Tensor | None
    lora_b: torch.Tensor | None
    chunk_rows: int
    kept: list[torch.Tensor]
    """Each chunk's softmax (in the head's dtype), or empty: backward recomputes them."""


class _Ctx(torch.autograd.function.FunctionCtx):
    saved: _Saved
    needs_input_grad: tuple[bool, ...]


class _TargetLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: _Ctx,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor | None,
        lora_b: torch.Tensor | None,
        scale: float,
        chunk_rows: int,
        keep: bool,
    ) -> torch.Tensor:
        n = hidden.shape[0]
        w = _Weights(weight, bias, lora_a, lora_b, scale)
        lp = torch.empty(targets.shape, dtype=w.float_dtype, device=hidden.device)
        kept: list[torch.Tensor] = []
        for start in range(0, n, chunk_rows):
            end = min(n, start + chunk_rows)
            lp_c, p_c = _softmax_parts(w.logits(hidden[start:end]), targets[start:end])
            lp[start:end] = lp_c
            if keep:
                kept.append(p_c.to(w.cat.dtype))
        ctx.saved = _Saved(hidden, targets, w, weight, bias, lora_a, lora_b, chunk_rows, kept)
        return lp

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: _Ctx, grad_lp: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved, needs = ctx.saved, ctx.needs_input_grad
        hidden, targets, w = saved.hidden, saved.targets, saved.weights
        weight, bias, lora_a, lora_b = saved.weight, saved.bias, saved.lora_a, saved.lora_b
        n, h = hidden.shape
        acc = w.float_dtype
        device = hidden.device
        g = grad_lp.to(acc)
        coef = g.sum(dim=1)  # [N]: dlogits = scatter(g at the targets) - coef * P
        hidden_f = hidden.to(acc)
        # The targets' part of every gradient: an index_add per target.
        rows_t = torch.arange(n, device=device).repeat_interleave(targets.shape[1])
        flat_t = targets.reshape(-1)
        g_flat = g.reshape(-1, 1)
        d_cat = torch.zeros((n, w.cat.shape[1]), dtype=acc, device=device)
        d_cat.index_add_(0, rows_t, w.cat[flat_t].to(acc) * g_flat)
        d_weight = d_bias = d_lora_b = u = None
        if needs[2]:
            d_weight = torch.zeros(weight.shape, dtype=acc, device=device)
            d_weight.index_add_(0, flat_t, hidden_f[rows_t] * g_flat)
        if bias is not None and needs[3]:
            d_bias = torch.zeros(bias.shape, dtype=acc, device=device)
            d_bias.index_add_(0, flat_t, g_flat[:, 0])
        if lora_a is not None and lora_b is not None and needs[5]:
            u = hidden_f @ lora_a.to(acc).T
            d_lora_b = torch.zeros(lora_b.shape, dtype=acc, device=device)
            d_lora_b.index_add_(0, flat_t, u[rows_t] * g_flat)
        # The softmax's part, chunk by chunk: one matmul against P_c per gradient.
        mm_dtype = w.cat.dtype
        for i, start in enumerate(range(0, n, saved.chunk_rows)):
            end = min(n, start + saved.chunk_rows)
            if saved.kept:
                p_c = saved.kept[i]
            else:
                _, p_c = _softmax_parts(w.logits(hidden[start:end]), targets[start:end])
                p_c = p_c.to(mm_dtype)
            c_c = coef[start:end, None]
            d_cat[start:end] -= c_c * torch.mm(p_c, w.cat).to(acc)
            if d_weight is not None:
                d_weight -= torch.mm(p_c.T, (c_c * hidden_f[start:end]).to(mm_dtype)).to(acc)
            if d_bias is not None:
                d_bias -= torch.mv(p_c.T, c_c[:, 0].to(mm_dtype)).to(acc)
            if d_lora_b is not None and u is not None:
                # [R, c] @ [c, V], transposed: BLAS is much faster this way round than [V, c] @
                # [c, R].
                d_lora_b -= torch.mm((c_c * u[start:end]).T.to(mm_dtype), p_c).T.to(acc)
        saved.kept.clear()
        d_hidden = d_cat[:, :h]
        d_lora_a = None
        if lora_a is not None:
            d_lb = d_cat[:, h:]  # dlogits @ B
            if not w.folded:  # else cat's W part already holds the LoRA product
                d_hidden = d_hidden + w.scale * (d_lb @ lora_a.to(acc))
            if needs[4]:
                d_lora_a = w.scale * (d_lb.T @ hidden_f)
        return (
            d_hidden.to(hidden.dtype) if needs[0] else None,
            None,
            None if d_weight is None else d_weight.to(weight.dtype),
            None if d_bias is None or bias is None else d_bias.to(bias.dtype),
            None if d_lora_a is None or lora_a is None else d_lora_a.to(lora_a.dtype),
            None if d_lora_b is None or lora_b is None else (w.scale * d_lora_b).to(lora_b.dtype),
            None,
            None,
            None,
        )
