"""`LocalTrainingClient`: tinker's `TrainingClient` on a local PyTorch model.

Every public method has the SDK's name, arguments and return type: requests return futures
(`.result()` or `await`), the `*_async` variants return the same future from a coroutine, and
`create_sampling_client` / `save_weights_and_get_sampling_client` return a sampling client that
is also its own finished future (the SDK returns a future of the client). Arguments that only
mean something on the Tinker service (`weights_access_token`, the Dimuon optimizer, inflight
samplers, server-side custom losses, external weights) raise `UnsupportedError`, a `TinkerError`.

Requests are checked when submitted (a bad batch raises there and nothing is queued) and run in
submission order on the client's worker thread. Gradients are computed into fresh tensors and
added to the accumulated ones only once the backward pass succeeded, so a failing request leaves
no partial gradient. A non-finite loss or gradient is reported in the output, and the next
`optim_step` refuses it: it raises, leaves the weights as they were and drops that gradient.

`load_state` restores weights only and `load_state_with_optimizer` weights, optimizer state and
step count, as in the SDK.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tinker import types

from cookbook.backends.local import checkpoints
from cookbook.backends.local import head as output_head
from cookbook.backends.local.adamw import AdamW
from cookbook.backends.local.batch import (
    BadRequestError,
    PreparedBatch,
    UnsupportedError,
    pack_rows,
    prepare_batch,
    resolve_loss_config,
)
from cookbook.backends.local.factory import ModelFactory
from cookbook.backends.local.losses import LOSS_INPUTS, OPTIONAL_INPUTS, per_token_loss
from cookbook.backends.local.models import LocalModel, target_logprobs
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.worker import LocalFuture, ReadyFuture, SerialExecutor
from cookbook.errors import UserError

if TYPE_CHECKING:
    from tinker.lib.retry_handler import RetryConfig

    from cookbook.backends.protocol import CustomLossFn
    from cookbook.tokenizers import Tokenizer


class NonFiniteGradientError(UserError, ArithmeticError):
    """`optim_step` refused a gradient with NaN or inf; the weights are unchanged."""


class LocalTrainingClient(ReadyFuture["LocalTrainingClient"]):
    """Trainable weights (the whole tiny model, or LoRA adapters) and their AdamW state.

    Also the finished future of itself: `service.create_lora_training_client(...)` may be used
    as the client, awaited, or `.result()`-ed, as with the SDK."""

    def __init__(
        self,
        model: LocalModel,
        *,
        factory: ModelFactory,
        base_dir: Path,
        seed: int = 0,
        user_metadata: Mapping[str, str] | None = None,
    ) -> None:
        self._model = model
        self._factory = factory
        self._base_dir = base_dir
        self._seed = seed
        self._params = [p for _, p in model.trainable_named_parameters()]
        if not self._params:
            raise UserError("this model has no trainable parameters; check the LoRA settings")
        self._optimizer = AdamW(self._params)
        self._step = 0
        self._bad_gradient: str | None = None
        self.model_id = f"local-{uuid.uuid4().hex[:12]}"
        """This training run's id (what `get_info().model_id` and checkpoints record)."""
        self.user_metadata: dict[str, str] = dict(user_metadata or {})
        """The run's metadata (`create_lora_training_client(user_metadata=...)`), recorded in
        every checkpoint so `RestClient.get_training_run_by_tinker_path` can read it back."""
        self._executor = SerialExecutor(f"cookbook-train-{self.model_id}")
        self.fast_training = True
        """Logprobs through the model's `training_head` on packed rows (`head.py`,
        `batch.pack_rows`); False takes the full logits of padded rows. Both give the same
        losses, logprobs and gradients to float rounding; False is the reference that tests
        and benchmarks compare against."""
        self._samplers_made = 0
        self._saved_paths: set[Path] = set()

    # --- forward / backward -------------------------------------------------------------------

    def forward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """Logprobs and loss of `data`, no gradient."""
        batch, config = self._prepare(data, loss_fn, loss_fn_config)
        return self._executor.submit(lambda: self._run(batch, loss_fn, config, backward=False))

    async def forward_async(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """`forward` from a coroutine: returns the same future (await it too)."""
        return self.forward(data, loss_fn, loss_fn_config)

    def forward_backward(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """Like `forward`, and add the loss's gradient to the accumulated one."""
        batch, config = self._prepare(data, loss_fn, loss_fn_config)
        return self._executor.submit(lambda: self._run(batch, loss_fn, config, backward=True))

    async def forward_backward_async(
        self,
        data: list[types.Datum],
        loss_fn: types.LossFnType,
        loss_fn_config: Mapping[str, float | str] | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """`forward_backward` from a coroutine: returns the same future (await it too)."""
        return self.forward_backward(data, loss_fn, loss_fn_config)

    def forward_backward_custom(
        self,
        data: list[types.Datum],
        loss_fn: CustomLossFn,
        *,
        loss_type_input: str | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """Gradient of `loss_fn(data, logprobs_D)`, where `logprobs_D[i]` are datum i's target
        logprobs (a tensor that carries the graph: the loss may be any function of them)."""
        if loss_type_input not in (None, "logprobs"):
            raise BadRequestError(
                f"Unsupported loss_type_input={loss_type_input!r}. Supported values are: logprobs"
            )
        if not callable(loss_fn):
            raise UnsupportedError(
                "forward_backward_custom: the local backend takes a loss function "
                "(data, logprobs) -> (loss, metrics); LossHandles from create_custom_loss are "
                "for the Tinker service"
            )
        batch = self._prepare_batch(data, ("target_tokens",), accept_extra=True, what="custom")
        data_copy = list(data)
        return self._executor.submit(lambda: self._run_custom(batch, data_copy, loss_fn))

    async def forward_backward_custom_async(
        self,
        data: list[types.Datum],
        loss_fn: CustomLossFn,
        *,
        loss_type_input: str | None = None,
    ) -> LocalFuture[types.ForwardBackwardOutput]:
        """`forward_backward_custom` from a coroutine: returns the same future."""
        return self.forward_backward_custom(data, loss_fn, loss_type_input=loss_type_input)

    def _prepare(
        self,
        data: list[types.Datum],
        loss_fn: str,
        loss_fn_config: Mapping[str, float | str] | None,
    ) -> tuple[PreparedBatch, dict[str, float]]:
        config = resolve_loss_config(loss_fn, loss_fn_config)
        batch = self._prepare_batch(
            data,
            LOSS_INPUTS[loss_fn],
            accept_extra=False,
            what=loss_fn,
            optional=OPTIONAL_INPUTS.get(loss_fn, ()),
            allow_top_k=loss_fn == "cross_entropy",
        )
        return batch, config

    def _prepare_batch(
        self,
        data: list[types.Datum],
        required: tuple[str, ...],
        accept_extra: bool,
        what: str,
        optional: tuple[str, ...] = (),
        allow_top_k: bool = False,
    ) -> PreparedBatch:
        if not isinstance(data, list | tuple):
            raise BadRequestError(
                f"{what}: data must be a list of Datum, got {type(data).__name__}"
            )
        m = self._model
        return prepare_batch(
            data,
            required,
            optional=optional,
            accept_extra=accept_extra,
            vocab_size=m.vocab_size,
            context_length=m.context_length,
            pad_token_id=m.pad_token_id,
            what=what,
            allow_top_k=allow_top_k,
        )

    def _target_logprobs(self, batch: PreparedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Target logprobs `[B, T]` (`[B, T, K]` for top-K targets; with graph when grad is
        enabled) and the mask `[B, T]`, on the model's device."""
        device = self._model.device
        mask = torch.from_numpy(batch.mask_B_T).to(device, non_blocking=True)
        head = self._model.training_head() if self.fast_training else None
        if head is None:
            return self._target_logprobs_plain(batch), mask
        b, t, k = batch.targets_B_T_K.shape
        layout = pack_rows(batch.lengths_B, t)
        tokens_R_W, positions_R_W = layout.tokens_and_positions(batch.tokens_B_T)
        hidden_R_W_H = self._model.final_hidden(
            torch.from_numpy(tokens_R_W).to(device, non_blocking=True),
            None if positions_R_W is None else torch.from_numpy(positions_R_W).to(device),
        )
        # Only real positions reach the head: padding costs no logits.
        hidden_N_H = hidden_R_W_H.flatten(0, 1)[torch.from_numpy(layout.dest_N).to(device)]
        source_N = torch.from_numpy(layout.source_N).to(device)
        targets_N_K = torch.from_numpy(batch.targets_B_T_K).to(device).view(b * t, k)[source_N]
        lp_N_K = output_head.target_logprobs(hidden_N_H, targets_N_K, head)
        lp_BT_K = lp_N_K.new_zeros((b * t, k)).index_put((source_N,), lp_N_K)
        lp = lp_BT_K.view(b, t, k)
        return (lp if batch.top_k is not None else lp[..., 0]), mask

    def _target_logprobs_plain(self, batch: PreparedBatch) -> torch.Tensor:
        """`_target_logprobs` through the full logits (padded rows, log-softmax over the whole
        vocabulary): what the fast path is checked against, and the path for models without a
        `training_head`."""
        device = self._model.device
        tokens = torch.from_numpy(batch.tokens_B_T).to(device, non_blocking=True)
        targets_B_T_K = torch.from_numpy(batch.targets_B_T_K).to(device, non_blocking=True)
        logits = self._model.logits(tokens)
        if batch.top_k is None:
            return target_logprobs(logits, targets_B_T_K[..., 0])
        logp_B_T_V = torch.log_softmax(logits.float(), dim=-1)
        return logp_B_T_V.gather(-1, targets_B_T_K)

    def _run(
        self, batch: PreparedBatch, loss_fn: str, config: dict[str, float], backward: bool
    ) -> types.ForwardBackwardOutput:
        device = self._model.device
        with torch.set_grad_enabled(backward):
            lp_B_T, mask_B_T = self._target_logprobs(batch)
            fields = {k: torch.from_numpy(v).to(device) for k, v in batch.fields.items()}
            per_token = per_token_loss(loss_fn, lp_B_T, fields, config, mask_B_T)
            if per_token.dim() == 3:  # top-K cross-entropy: sum the K candidates
                per_token = per_token.sum(dim=-1)
            loss = torch.where(mask_B_T, per_token, torch.zeros_like(per_token)).sum()
        loss_value = float(loss.detach())
        if backward:
            self._accumulate(loss, loss_value)
        return _output(lp_B_T, batch, {"loss:sum": loss_value})

    def _run_custom(
        self, batch: PreparedBatch, data: list[types.Datum], loss_fn: CustomLossFn
    ) -> types.ForwardBackwardOutput:
        with torch.enable_grad():
            lp_B_T, _ = self._target_logprobs(batch)
            lp_D = [lp_B_T[i, :n] for i, n in enumerate(batch.lengths_B)]
            loss, metrics = loss_fn(data, lp_D)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise BadRequestError(
                f"custom loss must return (scalar tensor, metrics dict), got {type(loss).__name__}"
            )
        if not loss.requires_grad:
            raise BadRequestError("custom loss does not depend on the logprobs it was given")
        loss_value = float(loss.detach())
        self._accumulate(loss.reshape(()), loss_value)
        return _output(lp_B_T, batch, {**metrics, "loss:sum": loss_value})

    def _accumulate(self, loss: torch.Tensor, loss_value: float) -> None:
        """Add d(loss)/d(params) to the accumulated gradient, all or nothing."""
        grads = torch.autograd.grad(loss, self._params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(self._params, grads, strict=True):
                if g is None:
                    continue
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.add_(g)
        if not math.isfinite(loss_value) and self._bad_gradient is None:
            self._bad_gradient = f"a forward_backward had loss:sum = {loss_value}"

    # --- optimizer ----------------------------------------------------------------------------

    def optim_step(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> LocalFuture[types.OptimStepResponse]:
        """One AdamW step on the accumulated gradient, then clear it."""
        if optim_params is not None and adam_params is not None:
            raise BadRequestError("Specify optim_params or legacy adam_params, not both")
        params = optim_params if optim_params is not None else adam_params
        if not isinstance(params, types.AdamParams):
            if params is None:
                raise BadRequestError("optim_step needs AdamParams (types.AdamParams(...))")
            raise UnsupportedError(
                f"optim_step: the local backend has AdamW only, got {type(params).__name__}; "
                "pass types.AdamParams"
            )
        _check_adam(params)
        return self._executor.submit(lambda: self._optim_step(params))

    async def optim_step_async(
        self,
        optim_params: types.OptimParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ) -> LocalFuture[types.OptimStepResponse]:
        """`optim_step` from a coroutine: returns the same future (await it too)."""
        return self.optim_step(optim_params, adam_params=adam_params)

    def _optim_step(self, adam: types.AdamParams) -> types.OptimStepResponse:
        grads = [p.grad for p in self._params if p.grad is not None]
        norm = 0.0
        if grads:
            norms = torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
            norm = float(torch.linalg.vector_norm(norms))
        reason = self._bad_gradient or (None if math.isfinite(norm) else f"grad norm is {norm}")
        if reason is not None:
            self._clear_gradient()
            raise NonFiniteGradientError(
                f"optim_step refused: {reason}; weights unchanged and that gradient dropped "
                "(lower the learning rate or check advantages/weights)"
            )
        if adam.grad_clip_norm > 0 and norm > adam.grad_clip_norm:
            scale = adam.grad_clip_norm / (norm + 1e-6)
            for g in grads:
                g.mul_(scale)
        self._optimizer.step(
            lr=adam.learning_rate,
            betas=(adam.beta1, adam.beta2),
            eps=adam.eps,
            weight_decay=adam.weight_decay,
        )
        self._clear_gradient()
        self._step += 1
        return types.OptimStepResponse(
            metrics={"grad_norm": norm, "learning_rate": adam.learning_rate, "step": self._step}
        )

    def _clear_gradient(self) -> None:
        for p in self._params:
            p.grad = None
        self._bad_gradient = None

    # --- checkpoints --------------------------------------------------------------------------

    def save_state(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> LocalFuture[types.SaveWeightsResponse]:
        """Weights, optimizer state and step count; the response's path is what
        `load_state[_with_optimizer]` and `create_training_client_from_state[_with_optimizer]`
        take. `ttl_seconds` and `user_metadata` are recorded in the checkpoint (local files do
        not expire). Saving a name this client saved before needs `overwrite=True`."""
        path = self._checkpoint_path(name, checkpoints.STATE, ttl_seconds, overwrite)

        def save() -> types.SaveWeightsResponse:  # on the worker: the step count is current
            meta = self._meta("state", ttl_seconds, user_metadata)
            checkpoints.save_checkpoint(
                path, meta, self._model.trainable_state_dict(), self._optimizer.state_dict()
            )
            return types.SaveWeightsResponse(path=str(path), type="save_weights")

        return self._executor.submit(save)

    async def save_state_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ) -> LocalFuture[types.SaveWeightsResponse]:
        """`save_state` from a coroutine: returns the same future."""
        return self.save_state(name, ttl_seconds, overwrite, user_metadata)

    def load_state(
        self, path: str, weights_access_token: str | None = None
    ) -> LocalFuture[types.LoadWeightsResponse]:
        """Load the weights saved at `path` (a `save_state` or sampler checkpoint); the
        optimizer state and step count stay as they are (the SDK's semantics)."""
        _no_access_token(weights_access_token)
        return self._executor.submit(lambda: self._load(path, with_optimizer=False))

    async def load_state_async(
        self, path: str, weights_access_token: str | None = None
    ) -> LocalFuture[types.LoadWeightsResponse]:
        """`load_state` from a coroutine: returns the same future."""
        return self.load_state(path, weights_access_token)

    def load_state_with_optimizer(
        self, path: str, weights_access_token: str | None = None
    ) -> LocalFuture[types.LoadWeightsResponse]:
        """Restore weights, optimizer state and step count saved by `save_state`: training
        continues as if it had never stopped."""
        _no_access_token(weights_access_token)
        return self._executor.submit(lambda: self._load(path, with_optimizer=True))

    async def load_state_with_optimizer_async(
        self, path: str, weights_access_token: str | None = None
    ) -> LocalFuture[types.LoadWeightsResponse]:
        """`load_state_with_optimizer` from a coroutine: returns the same future."""
        return self.load_state_with_optimizer(path, weights_access_token)

    def load_weights(self, path: str, with_optimizer: bool) -> types.LoadWeightsResponse:
        """Synchronous load, for building a client from a checkpoint before any request."""
        return self._executor.submit(lambda: self._load(path, with_optimizer)).result()

    def _load(self, path: str, with_optimizer: bool) -> types.LoadWeightsResponse:
        directory, meta = checkpoints.read_meta(path)
        if meta.get("family") != "tiny" and meta.get("base_model") != self._model.base_model:
            raise UserError(
                f"checkpoint {path} is for base model {meta.get('base_model')!r}, this client "
                f"trains {self._model.base_model!r}"
            )
        device = self._model.device
        weights = checkpoints.load_weights(directory, device)
        optimizer = checkpoints.load_optimizer(directory, device) if with_optimizer else None
        self._model.load_trainable_state_dict(weights, path)
        if optimizer is not None:
            self._optimizer.load_state_dict(optimizer)
            step = meta.get("step")
            self._step = step if isinstance(step, int) else 0
        self._clear_gradient()
        return types.LoadWeightsResponse(path=path, model_id=self.model_id, type="load_weights")

    def save_weights_for_sampler(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> LocalFuture[types.SaveWeightsForSamplerResponse]:
        """Weights only; the response's path is what `create_sampling_client` takes."""
        path = self._checkpoint_path(name, checkpoints.SAMPLER, ttl_seconds, overwrite=True)
        return self._executor.submit(
            lambda: self._save_sampler(path, self._meta("sampler", ttl_seconds, user_metadata))
        )

    async def save_weights_for_sampler_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        user_metadata: dict[str, str] | None = None,
    ) -> LocalFuture[types.SaveWeightsForSamplerResponse]:
        """`save_weights_for_sampler` from a coroutine: returns the same future."""
        return self.save_weights_for_sampler(name, ttl_seconds, user_metadata)

    def _save_sampler(
        self, path: Path, meta: dict[str, object]
    ) -> types.SaveWeightsForSamplerResponse:
        checkpoints.save_checkpoint(path, meta, self._model.trainable_state_dict(), None)
        return types.SaveWeightsForSamplerResponse(path=str(path), type="save_weights_for_sampler")

    def save_weights_external(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> LocalFuture[types.SaveWeightsExternalResponse]:
        """Not on the local backend: its checkpoints are files already (`save_state`)."""
        raise UnsupportedError(
            "save_weights_external is a Tinker service feature; locally, save_state and "
            "save_weights_for_sampler already write files you can copy"
        )

    async def save_weights_external_async(
        self,
        name: str,
        ttl_seconds: int | None = None,
        age_encryption_recipients: list[str] | None = None,
    ) -> LocalFuture[types.SaveWeightsExternalResponse]:
        """Not on the local backend (see `save_weights_external`)."""
        return self.save_weights_external(name, ttl_seconds, age_encryption_recipients)

    def save_weights_and_get_sampling_client(
        self,
        name: str | None = None,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> LocalSamplingClient:
        """A sampling client on the weights as they are after every request submitted so far
        (a snapshot; also its own finished future). With `name` the weights are also saved.
        `retry_config` has nothing to retry locally; `record_stability_info` needs no
        recording (the sampler's logprobs are the stability data). Blocks until the earlier
        requests are done."""
        if kind != "snapshot":
            raise UnsupportedError(
                f"save_weights_and_get_sampling_client(kind={kind!r}): the local backend makes "
                "snapshot samplers only; call it again after training to get newer weights"
            )
        return self.submit_sampling_snapshot(name).result()

    def submit_sampling_snapshot(self, name: str | None = None) -> LocalFuture[LocalSamplingClient]:
        """Queue a snapshot of the weights (as of every request submitted before it) and
        return the future of a sampling client on it, without blocking: what
        `save_weights_and_get_sampling_client` waits for (and `cookbook serve` orders)."""
        path = checkpoints.resolve_path(name, self._base_dir, checkpoints.SAMPLER) if name else None
        self._samplers_made += 1
        seed = self._seed * 1_000_003 + self._samplers_made

        def snap() -> LocalSamplingClient:
            if path is not None:
                self._save_sampler(path, self._meta("sampler", None, None))
            return LocalSamplingClient(
                self._model.snapshot(), seed=seed, model_path=str(path) if path else None
            )

        return self._executor.submit(snap)

    async def save_weights_and_get_sampling_client_async(
        self,
        name: str | None = None,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
        kind: types.SamplingClientKind = "snapshot",
    ) -> LocalSamplingClient:
        """`save_weights_and_get_sampling_client` from a coroutine (waits off the event loop
        for the earlier requests)."""
        await self._executor.submit(lambda: None)  # the earlier requests, waited for off-loop
        return self.save_weights_and_get_sampling_client(
            name, retry_config, record_stability_info, kind
        )

    def create_sampling_client(
        self,
        model_path: str,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
    ) -> LocalSamplingClient:
        """A sampling client on weights saved by `save_weights_for_sampler` (or `save_state`)."""
        return load_sampling_client(self._factory, model_path, seed=self._seed)

    async def create_sampling_client_async(
        self,
        model_path: str,
        retry_config: RetryConfig | None = None,
        record_stability_info: bool = False,
    ) -> LocalSamplingClient:
        """`create_sampling_client` from a coroutine."""
        return self.create_sampling_client(model_path, retry_config, record_stability_info)

    def _checkpoint_path(
        self, name: str, kind: str, ttl_seconds: int | None, overwrite: bool
    ) -> Path:
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1
        ):
            raise BadRequestError(f"ttl_seconds must be a positive int or None, got {ttl_seconds}")
        path = checkpoints.resolve_path(name, self._base_dir, kind)
        if not overwrite and path in self._saved_paths:
            raise BadRequestError(
                f"a checkpoint named {name!r} was already saved by this client; pick another "
                "name or pass overwrite=True"
            )
        self._saved_paths.add(path)
        return path

    def _meta(
        self, kind: str, ttl_seconds: int | None, user_metadata: Mapping[str, str] | None
    ) -> dict[str, object]:
        return {
            **self._model.metadata(),
            "kind": kind,
            "step": self._step,
            "seed": self._seed,
            "model_id": self.model_id,
            "run_user_metadata": self.user_metadata,
            "user_metadata": dict(user_metadata or {}),
            "saved_at": time.time(),
            "ttl_seconds": ttl_seconds,
        }

    # --- info ---------------------------------------------------------------------------------

    def get_tokenizer(self) -> Tokenizer:
        """The model's tokenizer."""
        return self._model.tokenizer

    def get_info(self) -> types.GetInfoResponse:
        """Base model, LoRA rank, architecture."""
        lora = self._model.lora
        return types.GetInfoResponse(
            type="get_info",
            model_data=types.ModelData(
                arch=self._model.arch,
                model_name=self._model.base_model,
                tokenizer_id=self._model.base_model,
            ),
            model_id=self.model_id,
            is_lora=lora is not None,
            lora_rank=lora.rank if lora else None,
            model_name=self._model.base_model,
        )

    async def get_info_async(self) -> types.GetInfoResponse:
        """`get_info` from a coroutine."""
        return self.get_info()

    @property
    def model(self) -> LocalModel:
        """The model being trained (for benchmarks and debugging: using it while requests are
        queued races with the worker thread)."""
        return self._model

    @property
    def step(self) -> int:
        """Optimizer steps taken (restored by `load_state_with_optimizer`)."""
        return self._step

    # --- inspection (local only: tests and debugging) -----------------------------------------

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the trainable weights after every request submitted so far."""
        return self._executor.submit(self._model.trainable_state_dict).result()

    def accumulated_gradients(self) -> dict[str, torch.Tensor]:
        """CPU copies of the gradient accumulated since the last `optim_step` (after every
        request submitted so far); parameters without one are left out."""

        def grads() -> dict[str, torch.Tensor]:
            return {
                n: p.grad.detach().to("cpu", copy=True)
                for n, p in self._model.trainable_named_parameters()
                if p.grad is not None
            }

        return self._executor.submit(grads).result()


def _no_access_token(token: str | None) -> None:
    if token is not None:
        raise UnsupportedError(
            "weights_access_token is for checkpoints on the Tinker service; local checkpoints "
            "are files, so pass their path without a token"
        )


def load_sampling_client(factory: ModelFactory, path: str, seed: int = 0) -> LocalSamplingClient:
    """A sampling client on the weights saved at `path`."""
    directory, meta = checkpoints.read_meta(path)
    model = factory.build_from_metadata(meta, path)
    model.load_trainable_state_dict(checkpoints.load_weights(directory, factory.device), path)
    return LocalSamplingClient(model.snapshot(), seed=seed, model_path=path)


def _output(
    lp_B_T: torch.Tensor, batch: PreparedBatch, metrics: dict[str, float]
) -> types.ForwardBackwardOutput:
    lp_host = lp_B_T.detach().float().cpu().numpy()
    outputs = [
        {"logprobs": types.TensorData.from_numpy(np.ascontiguousarray(lp_host[i, :n]))}
        for i, n in enumerate(batch.lengths_B)
    ]
    return types.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics=metrics
    )


def _check_adam(adam: types.AdamParams) -> None:
    checks = [
        ("learning_rate", adam.learning_rate, adam.learning_rate >= 0),
        ("beta1", adam.beta1, 0 <= adam.beta1 < 1),
        ("beta2", adam.beta2, 0 <= adam.beta2 < 1),
        ("eps", adam.eps, adam.eps >= 0),
        ("weight_decay", adam.weight_decay, adam.weight_decay >= 0),
        ("grad_clip_norm", adam.grad_clip_norm, adam.grad_clip_norm >= 0),
    ]
    for name, value, ok in checks:
        if not (ok and math.isfinite(value)):
            raise BadRequestError(f"optim_step: AdamParams.{name} = {value} is out of range")
