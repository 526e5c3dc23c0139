"""Hugging Face causal LMs from a local directory, with LoRA adapters (peft).

Nothing is ever downloaded: config, weights and tokenizer load with `local_files_only=True`.
Weights are bf16 on CUDA and fp32 on CPU. The base stays frozen; LoRA adapters (alpha 32, no
dropout) go on the attention, MLP and/or output projections as asked. transformers and peft are
imported inside the functions, so importing this module is cheap.

Training splits the model into its decoder (`final_hidden`) and its output head
(`training_head`, for the chunked logprobs of `head.py`), once a probe has shown that the
model's logits are exactly the head applied to the decoder's output (no softcapping or scaling
after the head); other models train on their full logits.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from cookbook.backends.local.head import OutputHead
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
