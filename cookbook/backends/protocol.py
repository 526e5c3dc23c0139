"""The training API the loops are written against: the subset of the `tinker` SDK's
`ServiceClient`, `TrainingClient` and `SamplingClient` the cookbook uses.

Both backends satisfy it: `local` (in-process PyTorch, the default) and `tinker` (the real
`tinker.ServiceClient`, on the Tinker service or on `cookbook serve`). Methods have the SDK's
names, arguments and return types (`tinker.types.*`); work is submitted at call time and
returned as a `Future` that supports both `.result()` and `await`, and requests from one client
run in submission order. Client-creating methods return a future of the client: `await` it or
call `.result()` (the SDK deprecates using its futures as the client, with a `FutureWarning`;
local clients are their own finished futures). `.result()` blocks: async code awaits instead
(the SDK warns about its blocking calls on a running event loop). `load_state` restores weights only,
`load_state_with_optimizer` weights and optimizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import torch
    from tinker import types

    from cookbook.tokenizers import Tokenizer

T_co = TypeVar("T_co", covariant=True)

CustomLossFn = Callable[
    ["list[types.Datum]", "list[torch.Tensor]"], "tuple[torch.Tensor, dict[str, float]]"
]
"""`forward_backward_custom`'s loss: (data, per-datum target logprobs) -> (loss, metrics)."""


class Future(Protocol[T_co]):
    """A submitted request: `.result()` blocks, `await` yields to the event loop."""

    def result(self, timeout: float | None = None) -> T_co: ...

    def __await__(self) -> Generator[Any, None, T_co]: ...


class SamplingClient(Protocol):
    """Samples from (and scores prompts under) one fixed set of weights."""

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[types.SampleResponse]: ...

    def compute_logprobs(self, prompt: types.ModelInput) -> Future[list[float | None]]: ...

    def get_tokenizer(self) -> Tokenizer: ...


class SamplingClientFuture(Future[SamplingClient], Protocol):
    """What the sampling-client-creating methods return: a future of the client. `await` it
    (async code) or call `.result()` (sync code) for the client; the SDK deprecates using the
    future as the client (a `FutureWarning`; local clients happen to be their own futures)."""


class TrainingClient(Protocol):
    """Holds trainable weights and their optimizer state."""

    def forward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> Future[types.ForwardBackwardOutput]: ...

    def forward_backward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> Future[types.ForwardBackwardOutput]: ...

    def forward_backward_custom(
        self, data: list[types.Datum], loss_fn: CustomLossFn
    ) -> Future[types.ForwardBackwardOutput]: ...

    def optim_step(self, optim_params: types.AdamParams) -> Future[types.OptimStepResponse]: ...

    def save_state(
        self, name: str, ttl_seconds: int | None = None
    ) -> Future[types.SaveWeightsResponse]:
        """Weights and optimizer state; the response's `path` is what `load_state` and
        `load_state_with_optimizer` take."""
        ...

    def load_state(self, path: str) -> Future[types.LoadWeightsResponse]:
        """Restore the weights saved at `path` (the optimizer state stays as it is)."""
        ...

    def load_state_with_optimizer(self, path: str) -> Future[types.LoadWeightsResponse]:
        """Restore weights and optimizer state saved by `save_state` (to resume a run)."""
        ...

    def save_weights_for_sampler(
        self, name: str, ttl_seconds: int | None = None
    ) -> Future[types.SaveWeightsForSamplerResponse]:
        """Weights only; the response's `path` is what `create_sampling_client` takes."""
        ...

    def save_weights_and_get_sampling_client(
        self, name: str | None = None
    ) -> SamplingClientFuture: ...

    def create_sampling_client(self, model_path: str) -> SamplingClientFuture: ...

    def get_tokenizer(self) -> Tokenizer: ...

    def get_info(self) -> types.GetInfoResponse: ...


class TrainingClientFuture(Future[TrainingClient], Protocol):
    """What the training-client-creating methods return: a future of the client (`await` it
    or call `.result()`; the SDK deprecates using the future as the client)."""


class ServiceClient(Protocol):
    """Entry point of a backend: makes training and sampling clients."""

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
    ) -> TrainingClientFuture: ...

    def create_training_client_from_state(self, path: str) -> TrainingClientFuture:
        """A new run on the weights saved at `path`, with a fresh optimizer."""
        ...

    def create_training_client_from_state_with_optimizer(self, path: str) -> TrainingClientFuture:
        """The run saved at `path` resumed exactly: weights, optimizer state, step count."""
        ...

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> SamplingClientFuture: ...


def loss_fn_names() -> Sequence[str]:
    """The built-in loss functions every backend supports."""
    return (
        "cross_entropy",
        "importance_sampling",
        "ppo",
        "cispo",
        "dro",
        "gspo",
        "stable_reinforce",
    )
