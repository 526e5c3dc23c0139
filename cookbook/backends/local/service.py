"""`LocalServiceClient`: the local backend's entry point, with the `tinker.ServiceClient` API.

    service = LocalServiceClient()                     # CUDA when available, else CPU
    trainer = service.create_lora_training_client("tiny", seed=0)
    sampler = trainer.save_weights_and_get_sampling_client()

Every public method has the SDK's name and arguments; a program written for the SDK runs on it
unchanged (swap the class: `tinker.ServiceClient = LocalServiceClient`). Client-creating
methods return the client, which is also its own finished future, so `.result()` and `await`
work as with the SDK's futures. Connection arguments (`base_url`, `api_key`, ...) are accepted
and unused: nothing leaves the process.

`base_model` is `tiny` / `tiny-DxL` (the built-in byte-level model, trained whole) or a local
Hugging Face model directory (LoRA adapters). Checkpoints saved under a bare name go to
`base_dir` (default: a new directory under the system temp dir, made on first save); names
containing a path are used as given.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from concurrent.futures import Future as ConcurrentFuture
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from tinker import types

from cookbook.backends.local import checkpoints
from cookbook.backends.local.batch import BadRequestError, UnsupportedError
from cookbook.backends.local.factory import ModelFactory, resolve_device
from cookbook.backends.local.models import LoraSpec
from cookbook.backends.local.rest import LocalRestClient
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.training import LocalTrainingClient, load_sampling_client
from cookbook.backends.local.worker import LocalFuture

if TYPE_CHECKING:
    from tinker.lib.retry_handler import RetryConfig


class LocalServiceClient:
    """Makes local training and sampling clients on one device."""

    def __init__(
        self,
        user_metadata: dict[str, str] | None = None,
        project_id: str | None = None,
        *,
        display_name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        default_headers_overrides: Mapping[str, str] | None = None,
        device: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        **kwargs: object,
    ) -> None:
        if kwargs:  # as the SDK does: a warning now, an error in a later version
            warnings.warn(
                f"LocalServiceClient ignores unsupported arguments: {', '.join(sorted(kwargs))}",
                FutureWarning,
                stacklevel=2,
            )
        self.device = resolve_device(device)
        """Where models live: `cuda` when available, else `cpu`, unless given."""
        self.user_metadata = dict(user_metadata or {})
        """The session's metadata (recorded only)."""
        self._base_dir = Path(base_dir).expanduser() if base_dir is not None else None
        self._factory = ModelFactory(self.device)
        self._closed = False
        self._runs: dict[str, LocalTrainingClient] = {}

    @property
    def base_dir(self) -> Path:
        """Where checkpoints saved under a bare name go (created by the first such save)."""
        if self._base_dir is None:
            unique = f"cookbook-local-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self._base_dir = Path(tempfile.gettempdir()) / unique
        return self._base_dir

    # --- session ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._closed:
            raise RuntimeError("ServiceClient is closed")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close("success" if exc_type is None else "errored").result()

    def close(
        self,
        status: Literal["success", "errored", "interrupted"],
        detail: str | None = None,
    ) -> LocalFuture[None]:
        """End the session: no new clients after this (existing ones keep working)."""
        self._closed = True
        done: ConcurrentFuture[None] = ConcurrentFuture()
        done.set_result(None)
        return LocalFuture(done)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("ServiceClient is closed")

    # --- training clients ---------------------------------------------------------------------

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> LocalTrainingClient:
        """A training client on fresh weights: the tiny model initialised from `seed` (trained
        whole; the LoRA arguments are recorded only), or a Hugging Face directory with LoRA
        adapters of `rank` on the chosen layers. `seed=None` means 0 (reproducible runs)."""
        self._check_open()
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise BadRequestError(f"LoRA rank must be a positive int, got {rank!r}")
        if not (train_mlp or train_attn or train_unembed):
            raise BadRequestError(
                "At least one of train_mlp, train_attn, or train_unembed must be True"
            )
        _check_optimizer(optimizer)
        seed = 0 if seed is None else seed
        lora = LoraSpec(rank, train_mlp, train_attn, train_unembed)
        model = self._factory.build(base_model, lora=lora, seed=seed)
        client = LocalTrainingClient(
            model,
            factory=self._factory,
            base_dir=self.base_dir,
            seed=seed,
            user_metadata=user_metadata,
        )
        self._runs[client.model_id] = client
        return client

    async def create_lora_training_client_async(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> LocalTrainingClient:
        """`create_lora_training_client` from a coroutine."""
        return self.create_lora_training_client(
            base_model, rank, seed, train_mlp, train_attn, train_unembed, user_metadata, optimizer
        )

    def create_training_client_from_state(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> LocalTrainingClient:
        """A training client on the weights saved at `path`, with a fresh optimizer (a new
        run that starts from those weights). Its seed is `user_metadata["seed"]` when that is
        an integer, else the checkpoint's (`_metadata_seed`)."""
        _check_optimizer(optimizer)
        return self._from_state(
            path, base_model, user_metadata, weights_access_token, with_optimizer=False
        )

    async def create_training_client_from_state_async(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
        optimizer: types.OptimizerConfig | None = None,
    ) -> LocalTrainingClient:
        """`create_training_client_from_state` from a coroutine."""
        return self.create_training_client_from_state(
            path, base_model, user_metadata, weights_access_token, optimizer
        )

    def create_training_client_from_state_with_optimizer(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
    ) -> LocalTrainingClient:
        """A training client restored from a `save_state` checkpoint: weights, optimizer state
        and step count, so training continues as if it had never stopped. Its seed as in
        `create_training_client_from_state`."""
        return self._from_state(
            path, base_model, user_metadata, weights_access_token, with_optimizer=True
        )

    async def create_training_client_from_state_with_optimizer_async(
        self,
        path: str,
        base_model: str | None = None,
        user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None,
    ) -> LocalTrainingClient:
        """`create_training_client_from_state_with_optimizer` from a coroutine."""
        return self.create_training_client_from_state_with_optimizer(
            path, base_model, user_metadata, weights_access_token
        )

    def _from_state(
        self,
        path: str,
        base_model: str | None,
        user_metadata: dict[str, str] | None,
        weights_access_token: str | None,
        with_optimizer: bool,
    ) -> LocalTrainingClient:
        self._check_open()
        if weights_access_token is not None:
            raise UnsupportedError(
                "weights_access_token is for checkpoints on the Tinker service; local "
                "checkpoints are files, so pass their path without a token"
            )
        _, meta = checkpoints.read_meta(path)
        if base_model is not None and base_model != meta.get("base_model"):
            raise UnsupportedError(
                f"checkpoint {path} is of base model {meta.get('base_model')!r}; the local "
                f"backend cannot load it into {base_model!r} (leave base_model unset)"
            )
        run_meta = meta.get("run_user_metadata")
        if user_metadata is None and isinstance(run_meta, dict):
            user_metadata = {str(k): str(v) for k, v in run_meta.items()}
        seed = _metadata_seed(user_metadata)
        if seed is None:
            saved = meta.get("seed")
            seed = saved if isinstance(saved, int) else 0
        model = self._factory.build_from_metadata(meta, path)
        client = LocalTrainingClient(
            model,
            factory=self._factory,
            base_dir=self.base_dir,
            seed=seed,
            user_metadata=user_metadata,
        )
        client.load_weights(path, with_optimizer=with_optimizer)
        self._runs[client.model_id] = client
        return client

    # --- sampling clients ---------------------------------------------------------------------

    def create_sampling_client(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
        *,
        seed: int = 0,
    ) -> LocalSamplingClient:
        """A sampling client on saved weights (`model_path`) or on a base model: the tiny model
        as initialised from `seed`, or a Hugging Face directory without adapters."""
        self._check_open()
        if model_path is not None:
            return load_sampling_client(self._factory, model_path, seed=seed)
        if base_model is None:
            raise BadRequestError("Either model_path or base_model must be provided")
        model = self._factory.build(base_model, lora=None, seed=seed)
        return LocalSamplingClient(model.snapshot(), seed=seed)

    async def create_sampling_client_async(
        self,
        model_path: str | None = None,
        base_model: str | None = None,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
    ) -> LocalSamplingClient:
        """`create_sampling_client` from a coroutine."""
        return self.create_sampling_client(
            model_path, base_model, retry_config, record_stability_info
        )

    # --- REST and service information ---------------------------------------------------------

    def create_rest_client(self) -> LocalRestClient:
        """Training-run and checkpoint information (what tinker-cookbook's resume path reads)."""
        return LocalRestClient(self._runs)

    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        """What this backend trains: the built-in tiny models and any local Hugging Face
        directory (listed as a pattern)."""
        return server_capabilities()

    async def get_server_capabilities_async(self) -> types.GetServerCapabilitiesResponse:
        """`get_server_capabilities` from a coroutine."""
        return server_capabilities()

    def copy_weights(
        self,
        path: str,
        *,
        ttl_seconds: int | None = None,
        weights_access_token: str | None = None,
    ) -> LocalFuture[str]:
        """Not on the local backend: copy the checkpoint directory instead."""
        raise UnsupportedError(
            "copy_weights copies between Tinker projects; local checkpoints are directories, "
            "copy them with cp -r"
        )

    def create_custom_loss(self, fn: object, input_ranks: Mapping[str, int]) -> LocalFuture[None]:
        """Not on the local backend: pass the loss function to `forward_backward_custom`."""
        raise UnsupportedError(
            "create_custom_loss uploads a loss to the Tinker service; locally, pass the loss "
            "function itself to forward_backward_custom"
        )


def server_capabilities() -> types.GetServerCapabilitiesResponse:
    """The models the local backend serves (shared with `cookbook serve`)."""
    from cookbook.backends.local.tiny_model import TinyConfig

    context = TinyConfig().context_length
    return types.GetServerCapabilitiesResponse(
        supported_models=[
            types.SupportedModel(
                model_name=name, max_context_length=context, trainable=True, sampleable=True
            )
            for name in ("tiny", "tiny-DxL")
        ]
        + [
            types.SupportedModel(
                model_name="/path/to/hf-model-dir", trainable=True, sampleable=True
            )
        ]
    )


def _metadata_seed(user_metadata: Mapping[str, str] | None) -> int | None:
    """`user_metadata["seed"]` as an int, if it is one. A client made from a checkpoint takes
    its seed (which draws the samples of requests that bring no seed of their own) from there:
    the SDK's signature has no seed argument, and a new run started from another run's
    checkpoint must not sample like that run just because it starts from its weights."""
    value = (user_metadata or {}).get("seed")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _check_optimizer(optimizer: types.OptimizerConfig | None) -> None:
    if optimizer is not None and getattr(optimizer, "type", "adamw") != "adamw":
        raise UnsupportedError(
            f"the local backend trains with AdamW only, got optimizer {optimizer!r}; leave "
            "optimizer unset"
        )
