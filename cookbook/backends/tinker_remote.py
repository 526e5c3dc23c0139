"""The `tinker` backend: the real Tinker service through the real `tinker` SDK.

A thin adapter to `cookbook.backends.protocol`: the SDK already has the same methods, argument
and return types. Two differences are bridged here: the SDK's client-creating methods return a
future of the client (resolved with `.result()`, so call them outside a running event loop, as
the runners do at set-up), and the protocol's `load_state` restores the optimizer too (the
SDK's `load_state_with_optimizer`). Needs TINKER_API_KEY; nothing here runs offline.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError

if TYPE_CHECKING:
    import tinker
    from tinker import types

    from cookbook.backends.protocol import CustomLossFn, Future, SamplingClient
    from cookbook.tokenizers import Tokenizer


def make_tinker_service_client() -> TinkerServiceClient:
    """A service client on the Tinker service (needs TINKER_API_KEY in the environment)."""
    if not os.environ.get("TINKER_API_KEY"):
        raise UserError(
            "the tinker backend needs TINKER_API_KEY set in the environment "
            "(or use backend=local to train on this machine)"
        )
    import tinker

    return TinkerServiceClient(tinker.ServiceClient())


class TinkerServiceClient:
    """`ServiceClient` of the protocol on top of `tinker.ServiceClient`."""

    def __init__(self, inner: tinker.ServiceClient) -> None:
        self.inner = inner

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
    ) -> TinkerTrainingClient:
        """A LoRA training client on the service."""
        future = self.inner.create_lora_training_client(
            base_model,
            rank=rank,
            seed=seed,
            train_mlp=train_mlp,
            train_attn=train_attn,
            train_unembed=train_unembed,
        )
        return TinkerTrainingClient(future.result())

    def create_training_client_from_state_with_optimizer(self, path: str) -> TinkerTrainingClient:
        """A training client resumed from a `save_state` path (weights and optimizer)."""
        future = self.inner.create_training_client_from_state_with_optimizer(path)
        return TinkerTrainingClient(future.result())

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> SamplingClient:
        """A sampling client on saved weights or a base model."""
        client = self.inner.create_sampling_client(model_path=model_path, base_model=base_model)
        return cast("SamplingClient", client.result())


class TinkerTrainingClient:
    """`TrainingClient` of the protocol on top of `tinker.TrainingClient`."""

    def __init__(self, inner: tinker.TrainingClient) -> None:
        self.inner = inner

    def forward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Forward pass only."""
        return self.inner.forward(data, loss_fn, loss_fn_config)

    def forward_backward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> Future[types.ForwardBackwardOutput]:
        """Forward and backward; gradients accumulate on the service."""
        return self.inner.forward_backward(data, loss_fn, loss_fn_config)

    def forward_backward_custom(
        self, data: list[types.Datum], loss_fn: CustomLossFn
    ) -> Future[types.ForwardBackwardOutput]:
        """A custom loss over the per-datum logprobs."""
        return self.inner.forward_backward_custom(data, loss_fn)

    def optim_step(self, adam_params: types.AdamParams) -> Future[types.OptimStepResponse]:
        """One AdamW step."""
        return self.inner.optim_step(adam_params)

    def save_state(self, name: str) -> Future[types.SaveWeightsResponse]:
        """Weights and optimizer state."""
        return self.inner.save_state(name)

    def load_state(self, path: str) -> Future[types.LoadWeightsResponse]:
        """Weights and optimizer state (the SDK's `load_state_with_optimizer`)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in the SDK, still served
            return self.inner.load_state_with_optimizer(path)

    def save_weights_for_sampler(self, name: str) -> Future[types.SaveWeightsForSamplerResponse]:
        """Weights for sampling."""
        return self.inner.save_weights_for_sampler(name)

    def save_weights_and_get_sampling_client(self, name: str | None = None) -> SamplingClient:
        """Save and open a sampling client on the current weights."""
        future = self.inner.save_weights_and_get_sampling_client(name)
        return cast("SamplingClient", future.result())

    def create_sampling_client(self, model_path: str) -> SamplingClient:
        """A sampling client on saved weights."""
        return cast("SamplingClient", self.inner.create_sampling_client(model_path).result())

    def get_tokenizer(self) -> Tokenizer:
        """The model's Hugging Face tokenizer."""
        return cast("Tokenizer", self.inner.get_tokenizer())

    def get_info(self) -> types.GetInfoResponse:
        """Base model and LoRA configuration."""
        return self.inner.get_info()
