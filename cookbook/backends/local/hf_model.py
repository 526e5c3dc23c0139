"""Hugging Face causal LMs from a local directory, with LoRA adapters (peft).

Nothing is ever downloaded: config, weights and tokenizer load with `local_files_only=True`.
Weights are bf16 on CUDA and fp32 on CPU. The base stays frozen; LoRA adapters (alpha 32, no
dropout) go on the attention, MLP and/or output projections as asked. transformers and peft are
imported inside the functions, so importing this module is cheap.

Generation (`HFSlotDecoder`) runs over a `SlotCache`. Llama and Qwen2 models without sliding
windows are run layer by layer from their own submodules (norms, projections with any LoRA
adapters, MLP, rotary embedding), with one `scaled_dot_product_attention` per layer: the same
operations as their forward, without its per-call bookkeeping (a sizeable share of a decode step
on CPU at small batches). Other models run their own forward: the cache object it receives
answers `update()` as transformers' attention layers call it, and the attention mask is passed
ready-made (4-D, additive), so every row keeps its own positions.

Training splits the model into its decoder (`final_hidden`) and its output head
(`training_head`, for the chunked logprobs of `head.py`), once a probe has shown that the
model's logits are exactly the head applied to the decoder's output (no softcapping or scaling
after the head); other models train on their full logits.
"""

from __future__ import annotations

import copy
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from cookbook.backends.local.head import OutputHead
from cookbook.backends.local.kv_cache import SlotCache
from cookbook.backends.local.models import GenerationCache, LocalModel, LoraSpec
from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.tokenizers import Tokenizer

LORA_ALPHA = 32
"""LoRA scale numerator (scale = alpha / rank)."""


@dataclass
class HFBase:
    """A loaded base model (frozen) and its tokenizer, shared by the clients of one factory."""

    module: nn.Module
    tokenizer: Tokenizer
    path: str


class HFCache:
    """A transformers `DynamicCache` with the `GenerationCache` interface."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.length = 0

    def select_rows(self, index_B: torch.Tensor) -> HFCache:
        """Gather rows in place (the prefill cache is not needed afterwards)."""
        select = getattr(self.inner, "batch_select_indices", None)
        if select is None:
            raise RuntimeError("this transformers version's DynamicCache cannot select rows")
        select(index_B)
        return self


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_hf_base(path: str, device: torch.device) -> HFBase:
    """Load the model and tokenizer in directory `path` (one-line UserError when there is none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import __version__ as tf_version

    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise UserError(
            f"base model {path!r} is neither 'tiny'/'tiny-DxL' nor a directory; "
            "give a local Hugging Face model directory"
        )
    if not (directory / "config.json").is_file():
        raise UserError(f"{path!r} holds no model (no config.json); give a Hugging Face model dir")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:
        raise UserError(f"no usable tokenizer in {path!r}: {_first_line(exc)}") from None
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    major, minor = (int(x) for x in tf_version.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    try:
        with warnings.catch_warnings():  # deprecation chatter from transformers internals
            warnings.simplefilter("ignore", FutureWarning)
            module: nn.Module = AutoModelForCausalLM.from_pretrained(
                str(directory), local_files_only=True, **{dtype_kw: dtype}
            )
    except Exception as exc:
        raise UserError(f"{path!r} holds no loadable model: {_first_line(exc)}") from None
    module.to(device)
    module.eval()  # no dropout: training and sampling see the same function
    for p in module.parameters():
        p.requires_grad_(False)
    # HF tokenizers have the `Tokenizer` methods (their eos_token_id may be None in general;
    # a causal LM's tokenizer has one).
    return HFBase(
        module=module, tokenizer=cast("Tokenizer", tokenizer), path=str(directory.resolve())
    )


def lora_targets(module: nn.Module, spec: LoraSpec) -> list[str]:
    """Full names of the Linear layers to adapt: attention (`attn`/`attention` in the path),
    MLP (`mlp`/`feed_forward`/`ffn`) and the output head, as `spec` asks."""
    get_head = getattr(module, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    names: list[str] = []
    for name, sub in module.named_modules():
        if not isinstance(sub, nn.Linear):
            continue
        parts = name.lower().split(".")
        if sub is head:
            wanted = spec.train_unembed
        elif any("attn" in p or "attention" in p for p in parts):
            wanted = spec.train_attn
        elif any(p in ("mlp", "feed_forward", "ffn") for p in parts):
            wanted = spec.train_mlp
        else:
            wanted = False
        if wanted:
            names.append(name)
    return names


def build_hf_model(
    path: str,
    device: torch.device,
    lora: LoraSpec | None,
    seed: int,
    bases: dict[str, HFBase],
) -> HFLocalModel:
    """The model in `path` (loaded once per factory) with fresh LoRA adapters from `seed`, or
    the bare base when `lora` is None."""
    key = str(Path(path).expanduser().resolve())
    base = bases.get(key)
    if base is None:
        base = load_hf_base(path, device)
        bases[key] = base
    # A copy that shares every (frozen) base tensor: peft injects adapters into the copy only.
    frozen = {id(p): p for p in base.module.parameters()}
    module: nn.Module = copy.deepcopy(base.module, memo=dict(frozen))
    if lora is not None:
        module = _add_lora(module, lora, seed, device)
    return HFLocalModel(module, base, lora)


def _add_lora(module: nn.Module, spec: LoraSpec, seed: int, device: torch.device) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    if spec.rank < 1:
        raise UserError(f"LoRA rank must be >= 1, got {spec.rank}")
    targets = lora_targets(module, spec)
    if not targets:
        raise UserError(
            "no layer to adapt: set at least one of train_attn, train_mlp, train_unembed "
            "(or the model's layer names are not recognised)"
        )
    config = LoraConfig(
        r=spec.rank, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=targets, bias="none"
    )
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        torch.manual_seed(seed)  # seeds the adapters; fork_rng restores the global RNG after
        # peft warns about adapting a head tied to the embeddings; the delta is separate and
        # we never merge, so it does not apply.
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations peft trips
        peft_model = get_peft_model(module, config)
    inner: nn.Module = peft_model.get_base_model()  # the HF model, adapters injected in place
    inner.eval()
    return inner


class HFLocalModel(LocalModel):
    """A Hugging Face causal LM (its `forward` takes ids, mask, positions and a cache)."""

    def __init__(self, module: nn.Module, base: HFBase, lora: LoraSpec | None) -> None:
        tokenizer = base.tokenizer
        get_emb = getattr(module, "get_input_embeddings", None)
        emb = get_emb() if callable(get_emb) else None
        if not isinstance(emb, nn.Embedding):
            raise UserError(f"{base.path!r}: unsupported model (no token embedding table)")
        config = getattr(module, "config", None)
        context = int(getattr(config, "max_position_embeddings", 0) or 1 << 20)
        pad = getattr(tokenizer, "pad_token_id", None)
        eos = getattr(tokenizer, "eos_token_id", None)
        pad_id = pad if isinstance(pad, int) else eos if isinstance(eos, int) else 0
        super().__init__(
            module,
            base_model=base.path,
            tokenizer=tokenizer,
            vocab_size=emb.num_embeddings,
            context_length=context,
            pad_token_id=pad_id,
            lora=lora,
            arch=str(getattr(config, "model_type", type(module).__name__)),
        )
        params = inspect.signature(module.forward).parameters
        # transformers 5 renamed `past_key_values` to `cache`.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._config = config
        self._split_checked: bool | None = None
        """Whether the probe showed logits == head(decoder(...)) (None: not probed yet)."""

    def logits(
        self,
        tokens_B_T: torch.Tensor,
        positions_B_T: torch.Tensor | None = None,
        key_mask_B_S: torch.Tensor | None = None,
        cache: GenerationCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        kwargs: dict[str, object] = {"input_ids": tokens_B_T}
        if positions_B_T is not None:
            kwargs["position_ids"] = positions_B_T
        if cache is not None:
            if not isinstance(cache, HFCache) or key_mask_B_S is None:
                raise ValueError("a cached forward needs an HFCache and key_mask_B_S")
            kwargs["attention_mask"] = key_mask_B_S[:, : cache.length + tokens_B_T.shape[1]].long()
            kwargs[self._cache_kw] = cache.inner
            kwargs["use_cache"] = True
        else:
            kwargs["use_cache"] = False
        if last_only:
            kwargs["logits_to_keep"] = 1
        out = self.module(**kwargs)
        if cache is not None:
            cache.length += tokens_B_T.shape[1]
        logits: torch.Tensor = out.logits
        return logits

    def training_head(self) -> OutputHead | None:
        head = _head_tensors(self._head_module())
        if head is None:
            return None
        if self._split_checked is None:
            self._split_checked = self._probe_split()
        return head if self._split_checked else None

    def final_hidden(
        self, tokens_R_W: torch.Tensor, positions_R_W: torch.Tensor | None = None
    ) -> torch.Tensor:
        # With positions and no attention mask, transformers reads packed rows from the
        # positions (a sequence starts where they do not continue) and masks accordingly.
        kwargs: dict[str, object] = {"input_ids": tokens_R_W, "use_cache": False}
        if positions_R_W is not None:
            kwargs["position_ids"] = positions_R_W
        hidden: torch.Tensor = self._decoder()(**kwargs).last_hidden_state
        return hidden

    def _decoder(self) -> nn.Module:
        get_decoder = getattr(self.module, "get_decoder", None)
        decoder = get_decoder() if callable(get_decoder) else None
        if not isinstance(decoder, nn.Module) or decoder is self.module:
            raise RuntimeError(f"{type(self.module).__name__} has no separate decoder")
        return decoder

    def _head_module(self) -> nn.Module | None:
        get_head = getattr(self.module, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        return head if isinstance(head, nn.Module) else None

    def _probe_split(self) -> bool:
        """Run a few tokens through the whole model and through decoder + head: the split is
        exact when the model's logits are the head's own output and the head's input is the
        decoder's output."""
        head = self._head_module()
        if head is None:
            return False
        try:
            decoder = self._decoder()
        except RuntimeError:
            return False
        seen: dict[str, torch.Tensor] = {}

        def record(_: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            seen["in"], seen["out"] = args[0], out

        ids = torch.arange(8, device=self.device)[None] % self.vocab_size
        handle = head.register_forward_hook(record)
        try:
            with torch.no_grad():
                logits = self.module(input_ids=ids, use_cache=False).logits
                hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
        finally:
            handle.remove()
        return (
            seen.get("out") is logits
            and "in" in seen
            and seen["in"].shape == hidden.shape
            and torch.allclose(seen["in"], hidden)
        )

    def new_cache(self, batch_size: int, max_length: int) -> GenerationCache:
        from transformers import DynamicCache

        if "config" in inspect.signature(DynamicCache.__init__).parameters:
            return HFCache(DynamicCache(config=self._config))
        return HFCache(DynamicCache())

    def metadata(self) -> dict[str, object]:
        return {
            "family": "hf",
            "base_model": self.base_model,
            "lora": self.lora.to_dict() if self.lora else None,
        }


class _SlotCacheView:
    """A `SlotCache` as transformers' attention layers use a cache: `update(k, v, layer_idx)`
    with keys and values shaped `[B, H, T, D]` (the other Cache methods are never reached: the
    positions and the 4-D mask are given)."""

    def __init__(self, cache: SlotCache) -> None:
        self.cache = cache
        self.updates = 0
        """Layers that called `update` (a model that ignores the cache leaves it at 0)."""

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        *args: object,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.updates += 1
        k, v = self.cache.update(
            layer_idx, key_states.transpose(1, 2), value_states.transpose(1, 2)
        )
        return k.transpose(1, 2), v.transpose(1, 2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class HFSlotDecoder:
    """A Hugging Face causal LM's forward over a `SlotCache` (continuous batching)."""

    shared_prefixes = False
    """Each slot holds its row's whole sequence (no `SlotCache.prefix_attention`)."""

    def __init__(self, module: nn.Module, vocab_size: int) -> None:
        self.module = module
        self.vocab_size = vocab_size
        config = getattr(module, "config", None)
        get_text = getattr(config, "get_text_config", None)
        text = get_text() if callable(get_text) else config
        heads = int(getattr(text, "num_attention_heads", 0) or 0)
        layers = int(getattr(text, "num_hidden_layers", 0) or 0)
        if not heads or not layers:
            raise UserError(f"{type(module).__name__}: unsupported model for sampling (no heads)")
        self._layers = layers
        self._kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
        hidden = int(getattr(text, "hidden_size", 0) or 0)
        self._head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
        layer_types = getattr(text, "layer_types", None) or []
        window = getattr(text, "sliding_window", None)
        self._window = int(window) if "sliding_attention" in layer_types and window else None
        params = inspect.signature(module.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = "logits_to_keep" in params
        weight = next(module.parameters())
        self._dtype, self._device = weight.dtype, weight.device
        self._checked = False
        self._direct = (
            _LlamaParts.of(module, grouped=self._kv_heads != heads)
            if self._window is None
            else None
        )

    @property
    def layer_by_layer(self) -> bool:
        """Whether decoding runs the model's layers directly (Llama and Qwen2 without sliding
        windows) rather than its forward."""
        return self._direct is not None

    def new_cache(self, slots: int, length: int) -> SlotCache:
        """An empty static cache of `slots` sequences of `length` positions."""
        return SlotCache(
            self._layers, slots, length, self._kv_heads, self._head_dim, self._dtype, self._device
        )

    def __call__(self, tokens_B_T: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        """Logits `[B, V]` after the last of `T` new tokens per row, as `cache`'s plan says.
        Call it under `torch.inference_mode()`."""
        if self._direct is not None:
            return self._direct.forward(tokens_B_T, cache)
        plan = cache.plan
        s = plan.read_length or tokens_B_T.shape[1]
        allowed = plan.mask
        if allowed is None:
            allowed = torch.ones((1, 1, 1, s), dtype=torch.bool, device=tokens_B_T.device)
        full = self._additive(allowed)
        mask: torch.Tensor | dict[str, torch.Tensor] = full
        if self._window is not None:
            # Sliding-window layers also drop keys `window` or more positions back.
            near = (
                plan.query_positions[:, None, :, None] - plan.key_positions[:, None, None, :]
                < self._window
            )
            mask = {"full_attention": full, "sliding_attention": self._additive(allowed & near)}
        view = _SlotCacheView(cache)
        kwargs: dict[str, object] = {
            "input_ids": tokens_B_T,
            "position_ids": plan.query_positions,
            "attention_mask": mask,
            self._cache_kw: view,
            "use_cache": True,
        }
        t = tokens_B_T.shape[1]
        if self._keep_kw:
            # An index tensor, not the int 1: the model then gathers the last position into a
            # contiguous tensor, and the head is one matmul instead of one per row.
            keep = 1 if t == 1 else torch.tensor([t - 1], device=tokens_B_T.device)
            kwargs["logits_to_keep"] = keep
        try:
            logits: torch.Tensor = self.module(**kwargs).logits
        except AttributeError as exc:  # it wanted more of a transformers Cache than `update`
            if self._checked:
                raise
            raise UserError(
                f"{type(self.module).__name__}: this model or transformers version is not "
                f"supported for sampling ({exc})"
            ) from None
        capturing = self._device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        if not self._checked and not capturing:
            if view.updates != self._layers:
                raise UserError(
                    f"{type(self.module).__name__}: its attention did not use the sampler's cache "
                    f"({view.updates} of {self._layers} layers); this model or transformers "
                    "version is not supported for sampling"
                )
            self._checked = True
        return logits[:, -1]

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        """0 where attention is allowed, the dtype's minimum elsewhere (eager and sdpa both
        take an additive 4-D mask as given)."""
        zero = torch.zeros((), dtype=self._dtype, device=allowed.device)
        return torch.where(allowed, zero, torch.finfo(self._dtype).min)


_DIRECT_ARCHS = ("LlamaForCausalLM", "Qwen2ForCausalLM")
"""Models `HFSlotDecoder` runs layer by layer (their decoder layers have the same structure)."""


@dataclass
class _LlamaLayer:
    """The submodules of one Llama-structured decoder layer (LoRA adapters included)."""

    input_norm: nn.Module
    q_proj: nn.Module
    k_proj: nn.Module
    v_proj: nn.Module
    o_proj: nn.Module
    post_norm: nn.Module
    mlp: nn.Module
    scaling: float

    @classmethod
    def of(cls, layer: nn.Module) -> _LlamaLayer | None:
        """The parts of `layer`, or None when one is missing."""
        attn = getattr(layer, "self_attn", None)
        scaling = getattr(attn, "scaling", None)
        parts = [getattr(layer, "input_layernorm", None)]
        parts += [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        parts += [getattr(layer, n, None) for n in ("post_attention_layernorm", "mlp")]
        modules = [p for p in parts if isinstance(p, nn.Module)]
        if len(modules) != len(parts) or not isinstance(scaling, float):
            return None
        norm_1, q, k, v, o, norm_2, mlp = modules
        return cls(norm_1, q, k, v, o, norm_2, mlp, scaling)


@dataclass
class _LlamaParts:
    """The submodules of a Llama-structured causal LM that a decode step calls."""

    embed: nn.Module
    layers: list[_LlamaLayer]
    norm: nn.Module
    rotary: nn.Module
    head: nn.Module
    apply_rotary: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    """The model's own `apply_rotary_pos_emb`."""
    grouped: bool
    """Fewer key/value heads than query heads."""

    @classmethod
    def of(cls, module: nn.Module, grouped: bool) -> _LlamaParts | None:
        """The parts of `module` (`grouped`: it has fewer key/value heads than query heads),
        or None when it is not of a known Llama structure."""
        if type(module).__name__ not in _DIRECT_ARCHS:
            return None
        inner = getattr(module, "model", None)
        blocks = getattr(inner, "layers", None)
        if not isinstance(blocks, nn.ModuleList) or not len(blocks):
            return None
        layers = [_LlamaLayer.of(block) for block in blocks]
        named = [getattr(inner, n, None) for n in ("embed_tokens", "norm", "rotary_emb")]
        named.append(getattr(module, "lm_head", None))
        modules = [p for p in named if isinstance(p, nn.Module)]
        rope = getattr(sys.modules[type(blocks[0]).__module__], "apply_rotary_pos_emb", None)
        full = [layer for layer in layers if layer is not None]
        if len(full) != len(layers) or len(modules) != len(named) or not callable(rope):
            return None
        embed, norm, rotary, head = modules
        return cls(embed, full, norm, rotary, head, rope, grouped)

    def forward(self, tokens_B_T: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        """Logits `[B, V]` after the last of `T` new tokens per row, as `cache`'s plan says
        (what the model's forward computes, its attention over the cache)."""
        plan = cache.plan
        b, t = tokens_B_T.shape
        d = cache.head_dim
        x = self.embed(tokens_B_T)
        cos, sin = self.rotary(x, plan.query_positions)
        for i, layer in enumerate(self.layers):
            h = layer.input_norm(x)
            q = layer.q_proj(h).view(b, t, -1, d).transpose(1, 2)
            k = layer.k_proj(h).view(b, t, -1, d).transpose(1, 2)
            v = layer.v_proj(h).view(b, t, -1, d)
            q, k = self.apply_rotary(q, k, cos, sin)
            k_all, v_all = cache.update(i, k.transpose(1, 2), v)
            y = F.scaled_dot_product_attention(
                q,
                k_all.transpose(1, 2),
                v_all.transpose(1, 2),
                attn_mask=plan.mask,
                scale=layer.scaling,
                enable_gqa=self.grouped,
            )
            x = x + layer.o_proj(y.transpose(1, 2).reshape(b, t, -1))
            x = x + layer.mlp(layer.post_norm(x))
        last = x if t == 1 else x[:, -1:]
        logits: torch.Tensor = self.head(self.norm(last))
        return logits[:, -1]


def _head_tensors(head: nn.Module | None) -> OutputHead | None:
    """A plain `nn.Linear` head, or peft's LoRA `Linear` around one with a single active
    adapter, no dropout, no DoRA and no bias on the adapter; None for anything else."""
    if type(head) is nn.Linear:
        return OutputHead(head.weight, head.bias)
    base = getattr(head, "base_layer", None)
    if head is None or type(base) is not nn.Linear:
        return None
    adapters = getattr(head, "active_adapters", None)
    if not isinstance(adapters, list) or len(adapters) != 1:
        return None
    name = adapters[0]
    try:
        lora_a = head.get_submodule(f"lora_A.{name}")
        lora_b = head.get_submodule(f"lora_B.{name}")
        dropout = head.get_submodule(f"lora_dropout.{name}")
        scale = float(getattr(head, "scaling")[name])  # noqa: B009  # typed as Module attr
        dora = bool(getattr(head, "use_dora", {}).get(name, False))
    except (AttributeError, KeyError, TypeError):
        return None
    if not (isinstance(lora_a, nn.Linear) and isinstance(lora_b, nn.Linear)):
        return None
    plain = lora_a.bias is None and lora_b.bias is None and type(dropout) is nn.Identity
    flags = ("merged", "disable_adapters", "fan_in_fan_out")
    if not plain or dora or any(getattr(head, flag, True) for flag in flags):
        return None
    return OutputHead(base.weight, base.bias, lora_a.weight, lora_b.weight, scale)
