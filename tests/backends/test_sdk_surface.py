"""The local clients against the installed `tinker` SDK: the same public methods with the same
parameters (names, order, kinds, defaults) and sync/async-ness, so a program written for the
SDK runs on the local backend unchanged; and the SDK's behaviours around them (futures,
`*_async`, load_state semantics, sampling options, REST calls, unsupported arguments)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tinker
import torch
from backend_helpers import ce_datum, random_tokens
from tinker import types

from cookbook.backends.local.rest import LocalRestClient
from cookbook.backends.local.sampling import LocalSamplingClient
from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient

SDK_ONLY: dict[str, set[str]] = {
    # Service-side or telemetry plumbing with no local meaning; everything else must exist.
    "ServiceClient": {"get_console_url", "get_telemetry", "holder"},
    "TrainingClient": {"get_console_url", "get_telemetry"},
    "SamplingClient": {
        "create",
        "from_sampler_handle",
        "get_sampler_handle",
        "get_telemetry",
        "on_queue_state_change",
    },
}
REST_METHODS = {
    # What tinker-cookbook's resume and rolling checkpoints call (cookbook/backends/local/rest.py).
    "get_training_run",
    "get_training_run_async",
    "get_training_run_by_tinker_path",
    "get_training_run_by_tinker_path_async",
    "delete_checkpoint_from_tinker_path",
    "delete_checkpoint_from_tinker_path_async",
    "get_server_capabilities",
}
PAIRS: list[tuple[type, type]] = [
    (tinker.ServiceClient, LocalServiceClient),
    (tinker.TrainingClient, LocalTrainingClient),
    (tinker.SamplingClient, LocalSamplingClient),
    (tinker.RestClient, LocalRestClient),
]


def _public_methods(cls: type) -> set[str]:
    names = set()
    for name, _ in inspect.getmembers(cls):
        if name.startswith("_") or name.startswith("model_"):
            continue
        static = inspect.getattr_static(cls, name)
        if callable(static) or isinstance(static, property | staticmethod | classmethod):
            names.add(name)
    return names


def _methods_to_match(sdk: type) -> set[str]:
    if sdk is tinker.RestClient:
        return REST_METHODS
    return _public_methods(sdk) - SDK_ONLY[sdk.__name__] | {"__enter__", "__exit__"} & set(dir(sdk))


def _is_async(fn: Callable[..., object]) -> bool:
    return inspect.iscoroutinefunction(inspect.unwrap(fn))


def _check_signature(name: str, sdk_fn: Callable[..., object], local_fn: object) -> None:
    assert callable(local_fn), f"{name} is not callable locally"
    sdk_params = [p for p in inspect.signature(sdk_fn).parameters.values() if p.name != "self"]
    local_params = [p for p in inspect.signature(local_fn).parameters.values() if p.name != "self"]
    local_by_name = {p.name: p for p in local_params}
    sdk_named = [p for p in sdk_params if p.kind is not p.VAR_KEYWORD]
    for position, want in enumerate(sdk_named):
        got = local_by_name.get(want.name)
        assert got is not None, f"{name}: the local method lacks parameter {want.name!r}"
        assert got.kind == want.kind, f"{name}({want.name}): {got.kind} != SDK's {want.kind}"
        assert got.default == want.default, (
            f"{name}({want.name}): default {got.default!r} != SDK's {want.default!r}"
        )
        if want.kind in (want.POSITIONAL_ONLY, want.POSITIONAL_OR_KEYWORD):
            assert local_params[position].name == want.name, f"{name}: parameter order differs"
    extra = [p for p in local_params if p.name not in {q.name for q in sdk_named}]
    for p in extra:  # local additions never change how an SDK call binds
        assert p.kind is p.VAR_KEYWORD or (p.kind is p.KEYWORD_ONLY and p.default is not p.empty), (
            f"{name}: local-only parameter {p.name!r} must be keyword-only with a default"
        )
    if any(p.kind is p.VAR_KEYWORD for p in sdk_params):
        assert any(p.kind is p.VAR_KEYWORD for p in local_params), f"{name}: lacks **kwargs"
    assert _is_async(sdk_fn) == _is_async(local_fn), f"{name}: sync/async differs from the SDK"


@pytest.mark.parametrize(("sdk", "local"), PAIRS, ids=lambda c: c.__name__)
def test_public_methods_match_the_installed_sdk(sdk: type, local: type) -> None:
    names = _methods_to_match(sdk)
    assert names, "the SDK lists no methods: this test would check nothing"
    for name in sorted(names):
        assert hasattr(local, name), f"{local.__name__} lacks the SDK's {sdk.__name__}.{name}"
        _check_signature(f"{sdk.__name__}.{name}", getattr(sdk, name), getattr(local, name))


def test_client_creation_returns_futures_of_the_client(tmp_path: Path) -> None:
    with LocalServiceClient(device="cpu", base_dir=tmp_path, user_metadata={"a": "b"}) as service:
        created = service.create_lora_training_client("tiny", seed=0)
        trainer = created.result()
        assert trainer is created and isinstance(created, tinker.APIFuture)
        assert created.future().result() is trainer

        async def main() -> None:
            assert await service.create_lora_training_client_async("tiny") is not trainer
            assert await trainer.save_weights_and_get_sampling_client() is not None
            sampler = await trainer.save_weights_and_get_sampling_client_async()
            assert sampler.get_base_model() == "tiny"
            future = await trainer.forward_backward_async(
                [ce_datum(list(range(9)))], "cross_entropy"
            )
            assert (await future).metrics["loss:sum"] > 0
            step = await trainer.optim_step_async(types.AdamParams())  # the future, as in the SDK
            assert (await step).metrics is not None

        asyncio.run(main())
    with pytest.raises(RuntimeError, match="closed"):
        service.create_lora_training_client("tiny")


def test_load_state_is_weights_only_and_with_optimizer_is_both(tmp_path: Path) -> None:
    service = LocalServiceClient(device="cpu", base_dir=tmp_path)
    rng = np.random.default_rng(3)
    batches = [[ce_datum(random_tokens(rng, 12)) for _ in range(2)] for _ in range(4)]
    adam = types.AdamParams(learning_rate=1e-2, eps=1e-6)

    def train(client: LocalTrainingClient, steps: list[list[types.Datum]]) -> None:
        for batch in steps:
            client.forward_backward(batch, "cross_entropy")
            client.optim_step(adam)

    source = service.create_lora_training_client("tiny-32x1", seed=1)
    train(source, batches[:2])
    path = source.save_state("mid").result().path

    weights_only = service.create_lora_training_client("tiny-32x1", seed=9)
    weights_only.load_state(path).result()
    assert weights_only.step == 0  # fresh optimizer: Adam's moments and step count not loaded
    fresh_run = service.create_training_client_from_state(path)
    assert fresh_run.step == 0
    both = service.create_lora_training_client("tiny-32x1", seed=9)
    both.load_state_with_optimizer(path).result()
    resumed = service.create_training_client_from_state_with_optimizer(path)
    assert both.step == resumed.step == 2
    for client in (weights_only, fresh_run, both, resumed, source):
        train(client, batches[2:])
    a, b = weights_only.trainable_weights(), fresh_run.trainable_weights()
    c, d, e = both.trainable_weights(), resumed.trainable_weights(), source.trainable_weights()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)
        torch.testing.assert_close(c[name], e[name], atol=1e-6, rtol=0)
        torch.testing.assert_close(d[name], e[name], atol=1e-6, rtol=0)
    assert any(not torch.allclose(a[n], e[n], atol=1e-5) for n in a)  # the optimizer mattered


def test_sampling_options_prompt_logprobs_topk_and_last_n(service: LocalServiceClient) -> None:
    sampler = service.create_sampling_client(base_model="tiny-32x1", seed=4)
    prompt = types.ModelInput.from_ints(random_tokens(np.random.default_rng(0), 7))
    params = types.SamplingParams(max_tokens=2, seed=1)
    full = sampler.sample(prompt, 1, params, include_prompt_logprobs=True, topk_prompt_logprobs=5)
    response = full.result()
    plps = response.prompt_logprobs
    topk = response.topk_prompt_logprobs
    assert plps is not None and topk is not None and plps[0] is None and topk[0] is None
    scored = sampler.compute_logprobs(prompt).result()
    for i in range(1, 7):
        row = topk[i]
        assert row is not None and len(row) == 5
        assert [lp for _, lp in row] == sorted((lp for _, lp in row), reverse=True)
        assert row[0][1] >= (plps[i] or 0.0) - 1e-5
        assert plps[i] == pytest.approx(scored[i], abs=1e-5)
        actual = prompt.to_ints()[i]
        in_top = dict(row).get(actual)
        assert in_top is None or in_top == pytest.approx(plps[i], abs=1e-5)
    last = sampler.sample(
        prompt,
        1,
        params,
        include_prompt_logprobs=True,
        topk_prompt_logprobs=2,
        prompt_logprobs_last_n=2,
    ).result()
    assert last.prompt_logprobs is not None and last.topk_prompt_logprobs is not None
    assert last.prompt_logprobs[:5] == [None] * 5 and None not in last.prompt_logprobs[5:]
    assert last.topk_prompt_logprobs[:5] == [None] * 5
    tail = sampler.compute_logprobs(prompt, prompt_logprobs_last_n=3).result()
    assert tail[:4] == [None] * 4 and tail[4:] == pytest.approx(scored[4:], abs=1e-6)
    only_topk = sampler.sample(prompt, 1, params, topk_prompt_logprobs=1).result()
    assert only_topk.prompt_logprobs is None and only_topk.topk_prompt_logprobs is not None
    with pytest.raises(ValueError, match="include_prompt_logprobs"):
        sampler.sample(prompt, 1, params, prompt_logprobs_last_n=2)


def test_unsupported_arguments_raise_the_sdks_error_in_one_line(
    service: LocalServiceClient,
) -> None:
    trainer = service.create_lora_training_client("tiny")
    sampler = trainer.save_weights_and_get_sampling_client()
    prompt = types.ModelInput.from_ints([1, 2, 3])
    calls: list[Callable[[], object]] = [
        lambda: sampler.sample(prompt, 1, types.SamplingParams(), topk_sample_logprobs=2),
        lambda: sampler.sample(prompt, 1, types.SamplingParams(), prompt_alt_tokens_k=1),
        lambda: trainer.optim_step(types.DimuonParams(learning_rate=0.1)),
        lambda: trainer.save_weights_and_get_sampling_client(kind="inflight"),
        lambda: trainer.load_state("x", weights_access_token="tok"),
        lambda: trainer.save_weights_external("x"),
        lambda: service.copy_weights("x"),
        lambda: service.create_lora_training_client(
            "tiny", optimizer=types.DimuonOptimizerConfig()
        ),
    ]
    for call in calls:
        with pytest.raises(tinker.TinkerError) as exc:
            call()
        assert "\n" not in str(exc.value) and len(str(exc.value)) > 20


def test_rest_client_reads_runs_from_checkpoints_and_deletes_them(tmp_path: Path) -> None:
    service = LocalServiceClient(device="cpu", base_dir=tmp_path)
    trainer = service.create_lora_training_client(
        "tiny", rank=8, user_metadata={"renderer_name": "role_colon"}
    )
    path = trainer.save_state("step-1", ttl_seconds=3600).result().path
    rest = service.create_rest_client()
    run = rest.get_training_run_by_tinker_path(path).result()
    assert run.training_run_id == trainer.model_id and run.base_model == "tiny"
    assert run.user_metadata == {"renderer_name": "role_colon"} and run.lora_rank == 8
    assert rest.get_training_run(trainer.model_id).result().user_metadata == run.user_metadata
    # A resumed run keeps the metadata (tinker-cookbook checks the renderer name on resume).
    resumed = service.create_training_client_from_state_with_optimizer(path)
    assert resumed.user_metadata == {"renderer_name": "role_colon"}
    with pytest.raises(ValueError, match="no local checkpoint"):
        rest.get_training_run_by_tinker_path("tinker://run/weights/x").result()
    asyncio.run(rest.delete_checkpoint_from_tinker_path_async(path))
    assert not Path(path).exists()
    with pytest.raises(ValueError):
        rest.delete_checkpoint_from_tinker_path(str(tmp_path)).result()  # not a checkpoint
    assert tmp_path.exists()
