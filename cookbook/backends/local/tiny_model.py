"""The built-in `tiny` model: a small decoder-only transformer, nanoGPT style, in one file.

Byte-level vocabulary (`cookbook.tokenizers.ByteTokenizer`, 261 ids), learned positions, pre-norm
blocks. Initialisation is in `TinyGPT.init_weights` and deterministic from a seed. Following what
a prototype measured on 2 CPU cores, embeddings start with std 0.3 and the output head at zero
(the first distribution is uniform); that learned to read a board far faster than std 0.02.

`TinyLocalModel` (at the end) puts it behind the local backend's model interface (`models.py`).

Names: `tiny` is `d_model` 64 with 2 layers; `tiny-DxL` picks `d_model` D and L layers
(`tiny-128x4`). The context is 512 tokens.

Generation runs `TinySlotDecoder`: the same maths as `TinyGPT.forward`, written with plain
functions over the weights (at decode sizes a step is a few dozen small ops, and module calls
would cost as much as the arithmetic), over a `SlotCache`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cookbook.backends.local.head import OutputHead
from cookbook.backends.local.kv_cache import KVCache, SlotCache
from cookbook.backends.local.models import (
    GenerationCache,
    LocalModel,
    LoraSpec,
    packed_causal_mask,
)
from cookbook.errors import UserError
from cookbook.model_names import is_tiny_model as is_tiny_name  # noqa: F401 (factory.py)
from cookbook.tokenizers import ByteTokenizer

_NAME_RE = re.compile(r"^tiny(?:-(\d+)x(\d+))?$")


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of a tiny model."""

    vocab_size: int = 261
    """Token ids (the byte tokenizer's 256 bytes and 5 specials)."""
    d_model: int = 64
    """Width of the residual stream."""
    n_layers: int = 2
    """Transformer blocks."""
    head_dim: int = 16
    """Width of one attention head (heads = d_model / head_dim)."""
    context_length: int = 512
    """Longest sequence (learned positions)."""
    mlp_ratio: int = 4
    """MLP hidden width over d_model."""
    embed_std: float = 0.3
    """Init std of token and position embeddings."""

    @property
    def n_heads(self) -> int:
        """Attention heads."""
        return max(1, self.d_model // self.head_dim)

    @classmethod
    def from_name(cls, name: str) -> TinyConfig:
        """`tiny` or `tiny-DxL` (for example `tiny-128x4`)."""
        m = _NAME_RE.match(name)
        if m is None:
            raise UserError(
                f"unknown tiny model {name!r}: use 'tiny' or 'tiny-DxL' such as 'tiny-128x4'"
            )
        if m.group(1) is None:
            return cls()
        d_model, n_layers = int(m.group(1)), int(m.group(2))
        head_dim = cls.head_dim
        if d_model < head_dim or d_model % head_dim or not 1 <= n_layers <= 64:
            raise UserError(
                f"bad tiny model size {name!r}: D must be a multiple of {head_dim} and L in 1..64"
            )
        return cls(d_model=d_model, n_layers=n_layers)

    def to_dict(self) -> dict[str, int | float]:
        """Plain values, for checkpoint metadata."""
        return asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention; with a `KVCache`, attends over the cached positions too."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(
        self,
        x_B_T_C: torch.Tensor,
        layer: int,
        cache: KVCache | None,
        attn_mask_B_1_T_S: torch.Tensor | None,
    ) -> torch.Tensor:
        b, t, c = x_B_T_C.shape
        qkv = self.qkv(x_B_T_C).view(b, t, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, D]
        if cache is None and attn_mask_B_1_T_S is None:
            # Training and scoring: right-padded rows, so plain causal masking is exact.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif cache is None:  # packed training rows: the mask keeps each sequence to itself
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask_B_1_T_S)
        else:
            k_all, v_all = cache.append(layer, k, v)
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=attn_mask_B_1_T_S)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """Two linear layers with a GELU between."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        layer: int,
        cache: KVCache | None,
        attn_mask_B_1_T_S: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), layer, cache, attn_mask_B_1_T_S)
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """The tiny decoder-only transformer."""

    def __init__(self, cfg: TinyConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """All initialisation, from `seed` alone (a private generator: global RNG untouched)."""
        gen = torch.Generator().manual_seed(seed)
        std = 0.02
        # Residual projections shrink with depth so the stream's scale stays put (GPT-2).
        resid_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name in ("tok_emb.weight", "pos_emb.weight"):
                p.normal_(0.0, self.cfg.embed_std, generator=gen)
            elif name.startswith("head."):
                p.zero_()  # uniform first distribution; learns fastest on tiny data
            elif name.endswith("bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("ln_f"):
                p.fill_(1.0)
            elif name.endswith("proj.weight"):
                p.normal_(0.0, resid_std, generator=gen)
            else:
                p.normal_(0.0, std, generator=gen)

    def forward(
        self,
        tokens_B_T: torch.Tensor,
        positions_B_T: torch.Tensor | None = None,
        key_mask_B_S: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits `[B, T, V]` (`[B, 1, V]` with `last_only`).

        Without a cache: position t attends to positions <= t (rows right-padded).
        With a cache: the T new tokens go at cache positions `[length, length + T)` and attend
        to earlier cached positions where `key_mask_B_S` is True, and causally among themselves
        (a single new token must itself be marked True: decoding takes a shortcut on that).
        """
        b, t = tokens_B_T.shape
        if positions_B_T is None:
            positions_B_T = torch.arange(t, device=tokens_B_T.device).expand(b, t)
        x = self.tok_emb(tokens_B_T) + self.pos_emb(positions_B_T)
        attn_mask = None
        if cache is not None:
            if key_mask_B_S is None:
                raise ValueError("a cached forward needs key_mask_B_S")
            if t == 1:
                # One new token per row (decode): its own position is marked real and every
                # cached one is earlier, so the key mask alone is the attention mask.
                attn_mask = key_mask_B_S[:, None, None, : cache.length + 1]
            else:
                attn_mask = _cached_attention_mask(key_mask_B_S, cache.length, t)
        for i, block in enumerate(self.blocks):
            x = block(x, i, cache, attn_mask)
        if cache is not None:
            cache.advance(t)
        if last_only:
            x = x[:, -1:]
        return self.head(self.ln_f(x))

    def final_hidden(
        self, tokens_B_T: torch.Tensor, positions_B_T: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The final layer norm's output `[B, T, C]` without a cache (training: `head` maps it
        to logits). With `positions_B_T`, rows are packed: a sequence starts where the position
        is 0 and attends only within itself."""
        b, t = tokens_B_T.shape
        mask = None
        if positions_B_T is None:
            positions_B_T = torch.arange(t, device=tokens_B_T.device).expand(b, t)
        else:
            mask = packed_causal_mask(positions_B_T)
        x = self.tok_emb(tokens_B_T) + self.pos_emb(positions_B_T)
        for i, block in enumerate(self.blocks):
            x = block(x, i, None, mask)
        out: torch.Tensor = self.ln_f(x)
        return out

    def new_cache(self, batch_size: int, max_length: int, device: torch.device) -> KVCache:
        """An empty cache for generation."""
        dtype = self.tok_emb.weight.dtype
        cfg = self.cfg
        head_dim = cfg.d_model // cfg.n_heads
        return KVCache.allocate(
            cfg.n_layers, batch_size, cfg.n_heads, max_length, head_dim, dtype, device
        )


def _cached_attention_mask(key_mask_B_S: torch.Tensor, start: int, t: int) -> torch.Tensor:
    """`[B, 1, T, start + T]` booleans: query i (at cache position start + i) sees key j when
    j <= start + i and key j is real. Each query also sees itself, so a padding query never has
    an empty row (which would make NaNs that leak through the values)."""
    end = start + t
    q_pos = torch.arange(start, end, device=key_mask_B_S.device)
    k_pos = torch.arange(end, device=key_mask_B_S.device)
    causal_T_S = k_pos[None, :] <= q_pos[:, None]
    itself_T_S = k_pos[None, :] == q_pos[:, None]
    mask = causal_T_S[None] & key_mask_B_S[:, None, :end]
    return (mask | itself_T_S[None]).unsqueeze(1)


class _LayerWeights(NamedTuple):
    ln_1_w: torch.Tensor
    ln_1_b: torch.Tensor
    qkv_wt: torch.Tensor
    qkv_b: torch.Tensor
    proj_wt: torch.Tensor
    proj_b: torch.Tensor
    ln_2_w: torch.Tensor
    ln_2_b: torch.Tensor
    fc_wt: torch.Tensor
    fc_b: torch.Tensor
    mlp_wt: torch.Tensor
    mlp_b: torch.Tensor


class TinySlotDecoder:
    """`TinyGPT`'s forward over a `SlotCache`, for continuous batching. The weights are read
    once (module attribute lookups cost as much as a small op), as views of the module's own
    tensors (linear weights transposed, for `addmm`: what `F.linear` computes on rows, without
    its transpose per call), so the decoder sees any later in-place change."""

    shared_prefixes = True
    """Decode steps can attend to each group's prompt once (`SlotCache.prefix_attention`)."""

    def __init__(self, model: TinyGPT) -> None:
        self.model = model
        self.vocab_size = model.cfg.vocab_size
        self._layers = [
            _LayerWeights(
                b.ln_1.weight,
                b.ln_1.bias,
                b.attn.qkv.weight.t(),
                b.attn.qkv.bias,
                b.attn.proj.weight.t(),
                b.attn.proj.bias,
                b.ln_2.weight,
                b.ln_2.bias,
                b.mlp.fc.weight.t(),
                b.mlp.fc.bias,
                b.mlp.proj.weight.t(),
                b.mlp.proj.bias,
            )
            for b in model.blocks
            if isinstance(b, Block)
        ]

    def new_cache(self, slots: int, length: int) -> SlotCache:
        """An empty static cache of `slots` sequences of `length` positions."""
        cfg, weight = self.model.cfg, self.model.tok_emb.weight
        head_dim = cfg.d_model // cfg.n_heads
        return SlotCache(
            cfg.n_layers, slots, length, cfg.n_heads, head_dim, weight.dtype, weight.device
        )

    def __call__(self, tokens_B_T: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        """Logits `[B, V]` after the last of `T` new tokens per row; keys and values are stored
        in and read from `cache`, and positions and mask come from its current plan. Call it
        under `torch.inference_mode()`."""
        plan = cache.plan
        m, cfg = self.model, self.model.cfg
        b, t = tokens_B_T.shape
        c, heads = cfg.d_model, cfg.n_heads
        # Rows of [B * T, C]: every linear is one addmm.
        x = torch.embedding(m.tok_emb.weight, tokens_B_T.reshape(-1))
        if plan.position is not None:  # every row at one position: one row of the table
            x = x + m.pos_emb.weight[plan.position]
        else:
            x = x + torch.embedding(m.pos_emb.weight, plan.query_positions.reshape(-1))
        for i, w in enumerate(self._layers):
            h = torch.layer_norm(x, (c,), w.ln_1_w, w.ln_1_b)
            qkv = torch.addmm(w.qkv_b, h, w.qkv_wt)
            q, k, v = qkv.view(b, t, 3, heads, c // heads).unbind(2)
            k_all, v_all = cache.update(i, k, v)
            if plan.prefix is not None:
                y = cache.prefix_attention(i, q.transpose(1, 2), k_all, v_all)
            else:
                y = F.scaled_dot_product_attention(
                    q.transpose(1, 2), k_all.transpose(1, 2), v_all.transpose(1, 2), plan.mask
                )
            x = x + torch.addmm(w.proj_b, y.transpose(1, 2).reshape(b * t, c), w.proj_wt)
            h = torch.layer_norm(x, (c,), w.ln_2_w, w.ln_2_b)
            x = x + torch.addmm(w.mlp_b, F.gelu(torch.addmm(w.fc_b, h, w.fc_wt)), w.mlp_wt)
        last = x if t == 1 else x.view(b, t, c)[:, -1]
        last = torch.layer_norm(last, (c,), m.ln_f.weight, m.ln_f.bias)
        return F.linear(last, m.head.weight, m.head.bias)


def make_tiny_tokenizer() -> ByteTokenizer:
    """The tiny model's tokenizer."""
    return ByteTokenizer()


class TinyLocalModel(LocalModel):
    """The built-in model behind the `LocalModel` interface. LoRA arguments are recorded but the
    whole model trains: a model trained from scratch has nothing to adapt."""

    module: TinyGPT

    def __init__(self, module: TinyGPT, base_model: str, lora: LoraSpec | None) -> None:
        tokenizer = ByteTokenizer()
        super().__init__(
            module,
            base_model=base_model,
            tokenizer=tokenizer,
            vocab_size=module.cfg.vocab_size,
            context_length=module.cfg.context_length,
            pad_token_id=tokenizer.pad_token_id,
            lora=lora,
            arch="tiny-gpt",
        )

    def logits(
        self,
        tokens_B_T: torch.Tensor,
        positions_B_T: torch.Tensor | None = None,
        key_mask_B_S: torch.Tensor | None = None,
        cache: GenerationCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"the tiny model takes a KVCache, got {type(cache).__name__}")
        return self.module(tokens_B_T, positions_B_T, key_mask_B_S, cache, last_only)

    def new_cache(self, batch_size: int, max_length: int) -> GenerationCache:
        return self.module.new_cache(batch_size, max_length, self.device)

    def training_head(self) -> OutputHead:
        return OutputHead(self.module.head.weight, self.module.head.bias)

    def final_hidden(
        self, tokens_R_W: torch.Tensor, positions_R_W: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.module.final_hidden(tokens_R_W, positions_R_W)

    def metadata(self) -> dict[str, object]:
        return {
            "family": "tiny",
            "base_model": self.base_model,
            "tiny_config": self.module.cfg.to_dict(),
            "lora": self.lora.to_dict() if self.lora else None,
        }
