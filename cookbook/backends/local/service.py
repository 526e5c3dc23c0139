"""`LocalServiceClient`: the local backend's entry point (tinker's `ServiceClient` API).

    service = LocalServiceClient()                     # CUDA when available, else CPU
    trainer = service.create_lora_training_client("tiny", seed=0)
    sampler = trainer.save_weights_and_get_sampling_client()

`base_model` is `tiny` / `tiny-DxL` (the built-in byte-level model, trained whole) or a local
Hugging Face model directory (LoRA adapters). Checkpoints saved under a bare name go to
`base_dir` (default: a new directory under the system temp dir, made on first save); names
containing a path are used as given.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from cookbook.backends.local import checkpoints
from cookbook.backends.local.factory import ModelFactory, resolve_device
from cookbook.backends.local.models import LoraSpec
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.training import LocalTrainingClient, load_sampling_client
from cookbook.errors import UserError


class LocalServiceClient:
    """Makes local training and sampling clients on one device."""

    def __init__(self, device: str | None = None, base_dir: str | os.PathLike[str] | None = None):
        self.device = resolve_device(device)
        """Where models live: `cuda` when available, else `cpu`, unless given."""
        self._base_dir = Path(base_dir).expanduser() if base_dir is not None else None
        self._factory = ModelFactory(self.device)

    @property
    def base_dir(self) -> Path:
        """Where checkpoints saved under a bare name go (created by the first such save)."""
        if self._base_dir is None:
            unique = f"cookbook-local-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self._base_dir = Path(tempfile.gettempdir()) / unique
        return self._base_dir

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
    ) -> LocalTrainingClient:
        """A training client on fresh weights: the tiny model initialised from `seed` (trained
        whole; the LoRA arguments are recorded only), or a Hugging Face directory with LoRA
        adapters of `rank` on the chosen layers. `seed=None` means 0."""
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise UserError(f"LoRA rank must be a positive int, got {rank!r}")
        seed = 0 if seed is None else seed
        lora = LoraSpec(rank, train_mlp, train_attn, train_unembed)
        model = self._factory.build(base_model, lora=lora, seed=seed)
        return LocalTrainingClient(model, factory=self._factory, base_dir=self.base_dir, seed=seed)

    def create_training_client_from_state(self, path: str) -> LocalTrainingClient:
        """A training client on the weights saved at `path`, with a fresh optimizer (as the
        SDK's method; use `..._with_optimizer` to resume exactly)."""
        return self._from_state(path, with_optimizer=False)

    def create_training_client_from_state_with_optimizer(self, path: str) -> LocalTrainingClient:
        """A training client restored from a `save_state` checkpoint: weights, optimizer state
        and step count, so training continues as if it had never stopped."""
        return self._from_state(path, with_optimizer=True)

    def _from_state(self, path: str, with_optimizer: bool) -> LocalTrainingClient:
        _, meta = checkpoints.read_meta(path)
        seed = meta.get("seed")
        seed = seed if isinstance(seed, int) else 0
        model = self._factory.build_from_metadata(meta, path)
        client = LocalTrainingClient(
            model, factory=self._factory, base_dir=self.base_dir, seed=seed
        )
        client.load_weights(path, with_optimizer=with_optimizer)
        return client

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None, seed: int = 0
    ) -> LocalSamplingClient:
        """A sampling client on saved weights (`model_path`) or on a base model: the tiny model
        as initialised from `seed`, or a Hugging Face directory without adapters."""
        if model_path is not None:
            return load_sampling_client(self._factory, model_path, seed=seed)
        if base_model is None:
            raise UserError("create_sampling_client needs model_path or base_model")
        model = self._factory.build(base_model, lora=None, seed=seed)
        return LocalSamplingClient(model.snapshot(), seed=seed)
