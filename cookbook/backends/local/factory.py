"""Builds `LocalModel`s: the device choice, and the one place that maps a `base_model` name to a
model family (`tiny...` -> `tiny_model.py`; anything else is a local Hugging Face directory,
`hf_model.py`, imported only then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cookbook.backends.local.models import LocalModel, LoraSpec
from cookbook.backends.local.tiny_model import TinyConfig, TinyGPT, TinyLocalModel, is_tiny_name
from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.local.hf_model import HFBase


def resolve_device(device: str | None) -> torch.device:
    """`device`, or CUDA when available else CPU; a clear error for a device that is not there."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"unknown device {device!r} ({exc}); use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available; use 'cpu'")
    return dev


class ModelFactory:
    """Builds `LocalModel`s on one device, keeping each loaded Hugging Face base once so that
    training and sampling clients of the same base share its frozen weights."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._hf_bases: dict[str, HFBase] = {}

    def build(
        self,
        base_model: str,
        *,
        lora: LoraSpec | None,
        seed: int,
        tiny_config: TinyConfig | None = None,
    ) -> LocalModel:
        """A fresh model: `tiny...` from `seed`, or a Hugging Face directory with LoRA adapters
        (`lora=None`: the bare base, for sampling)."""
        if is_tiny_name(base_model):
            cfg = tiny_config or TinyConfig.from_name(base_model)
            module = TinyGPT(cfg, seed=seed).to(self.device)
            module.eval()  # no dropout anywhere; eval mode is the honest label
            return TinyLocalModel(module, base_model, lora)
        from cookbook.backends.local import hf_model

        return hf_model.build_hf_model(base_model, self.device, lora, seed, self._hf_bases)

    def build_from_metadata(self, meta: dict[str, object], source: str) -> LocalModel:
        """The untrained model a checkpoint's weights load into."""
        base_model = meta.get("base_model")
        if not isinstance(base_model, str):
            raise UserError(f"checkpoint {source} has no base_model in meta.json; re-save it")
        lora_raw = meta.get("lora")
        lora = LoraSpec(**lora_raw) if isinstance(lora_raw, dict) else None
        tiny_raw = meta.get("tiny_config")
        tiny_cfg = TinyConfig(**tiny_raw) if isinstance(tiny_raw, dict) else None
        return self.build(base_model, lora=lora, seed=0, tiny_config=tiny_cfg)
