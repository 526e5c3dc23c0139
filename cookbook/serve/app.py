"""The HTTP side of `cookbook serve`: the routes the `tinker` SDK calls, on aiohttp.

Routes and bodies follow the SDK's HTTP layer (`tinker/resources/*.py`, `tinker/lib/*`): JSON
bodies validated with the SDK's own request models, `forward_backward` in protobuf, results of
`forward_backward` and `sample` returned as protobuf, everything else as JSON. Work is handed
to the local backend at once (samples a few ms later, with the sampler's other requests that
arrived meanwhile: `state.SampleGather`) and answered with a request id; `retrieve_future` holds the
request and answers the moment the result is ready (a callback from the backend's thread wakes
the event loop), or says "try again" after `LONG_POLL_S`, as the service does. Each request is
one route call on the event loop: no thread hop besides the backend's own worker.

Errors never take the server down: a body that does not parse is HTTP 400, an unknown id 404, a
request the backend refuses is a failed future (`{"error": ..., "category": "user"}`, which the
SDK raises as `RequestFailedError`), and a client that disconnects mid-request only cancels
its own wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future as ConcurrentFuture
from typing import Any, TypeVar

import pydantic
from aiohttp import web
from tinker import types

from cookbook.backends.local.batch import UnsupportedError
from cookbook.backends.local.sampling import LocalSamplingClient as LocalSamplerType
from cookbook.backends.local.service import server_capabilities
from cookbook.errors import UserError
from cookbook.serve import wire
from cookbook.serve.state import NotFoundError, ServerState, chain

log = logging.getLogger("cookbook.serve")

LONG_POLL_S = 30.0
"""How long `retrieve_future` holds a request for a result before answering "try again" (as the
service does; the SDK waits 45 s for the answer and logs a warning line for each "try again")."""

M = TypeVar("M", bound=pydantic.BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE: web.AppKey[ServerState] = web.AppKey("state", ServerState)
API_KEY: web.AppKey[str | None] = web.AppKey("api_key")


def make_app(state: ServerState, api_key: str | None = None) -> web.Application:
    """The server: every route of the Tinker API the SDK's clients use."""
    app = web.Application(middlewares=[_guard], client_max_size=1 << 30)
    app[STATE] = state
    app[API_KEY] = api_key
    routes = Routes(state)
    r = app.router
    r.add_get("/api/v1/healthz", routes.healthz)
    r.add_post("/api/v1/client/config", routes.client_config)
    r.add_post("/api/v1/client/dynamic_config", routes.dynamic_config)
    r.add_post("/api/v1/telemetry", routes.telemetry)
    r.add_get("/api/v1/get_server_capabilities", routes.capabilities)
    r.add_post("/api/v1/create_session", routes.create_session)
    r.add_post("/api/v1/session_heartbeat", routes.heartbeat)
    r.add_post("/api/v1/sessions/{session_id}/finish", routes.finish_session)
    r.add_post("/api/v1/create_model", routes.create_model)
    r.add_post("/api/v1/get_info", routes.get_info)
    r.add_post("/api/v1/forward_backward", routes.forward_backward)
    r.add_post("/api/v1/optim_step", routes.optim_step)
    r.add_post("/api/v1/save_weights", routes.save_weights)
    r.add_post("/api/v1/save_weights_for_sampler", routes.save_weights_for_sampler)
    r.add_post("/api/v1/load_weights", routes.load_weights)
    r.add_post("/api/v1/create_sampling_session", routes.create_sampling_session)
    r.add_get("/api/v1/samplers/{sampler_id}", routes.get_sampler)
    r.add_post("/api/v1/asample", routes.asample)
    r.add_post("/api/v1/retrieve_future", routes.retrieve_future)
    r.add_post("/api/v1/cancel_future", routes.cancel_future)
    r.add_get("/api/v1/training_runs/{run_id}", routes.training_run)
    r.add_delete(
        "/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id:.+}", routes.delete_checkpoint
    )
    r.add_post("/api/v1/weights_info", routes.weights_info)
    app.cleanup_ctx.append(_janitor)
    return app


# --- middleware -------------------------------------------------------------------------------


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API key (when the server has one), and every error as one JSON line, never a crash.
    One middleware, not two: each layer costs a coroutine per request."""
    key = request.app[API_KEY]
    if key is not None and request.path != "/api/v1/healthz":
        given = request.headers.get("X-API-Key", "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            return _error(401, "this server needs its API key (X-API-Key / TINKER_API_KEY)")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFoundError as exc:
        return _error(404, str(exc))
    except (pydantic.ValidationError, json.JSONDecodeError, wire.WireError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _error(400, f"malformed request body for {request.path}: {first}")
    except UserError as exc:
        return _error(400, str(exc))
    except Exception as exc:  # a bug here must not take the server down
        log.exception("error serving %s", request.path)
        return _error(500, f"{type(exc).__name__}: {exc}")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "category": "user"}, status=status)


async def _janitor(app: web.Application) -> Any:  # aiohttp's cleanup-context shape
    async def sweep() -> None:
        while True:
            await asyncio.sleep(60)
            app[STATE].expire()

    task = asyncio.create_task(sweep())
    yield
    task.cancel()


# --- routes -----------------------------------------------------------------------------------


def _json(model: pydantic.BaseModel) -> web.Response:
    """`model` as the JSON the SDK reads (serialised by pydantic's own encoder, in one step)."""
    return web.Response(
        body=model.model_dump_json(exclude_none=True).encode(), content_type="application/json"
    )


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    return model.model_validate_json(raw or b"{}")


async def _run(fn: Callable[[], object]) -> None:
    """Run a slow, blocking step (loading a model) off the event loop."""
    await asyncio.to_thread(fn)


class Routes:
    """One method per route; each parses with the SDK's model and answers with one."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    # service

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(types.HealthResponse(status="ok"))

    async def client_config(self, request: web.Request) -> web.Response:
        await _body(request, types.ClientConfigRequest)
        # Measured with benchmarks/serve.py: the Rust transport saves 10-25% of the SDK client's
        # CPU; compression costs CPU on both sides for localhost bodies; chunks (parallel or
        # not) only split batches over 1024 datums or 5 MB; sample_no_retries changes nothing
        # measurable; the retrieve_futures poller adds requests (a poll, then the usual fetch).
        return _json(
            types.ClientConfigResponse(
                pjwt_auth_enabled=False,
                parallel_fwdbwd_chunks=False,  # one chunk at a time keeps seq order simple
                proto_compress_fwdbwd=False,
                use_pyqwest_transport=True,  # the SDK's Rust HTTP client: less client CPU
                sample_use_retrieve_futures=False,
                sample_enable_stuck_detection=False,  # CPU sampling may be slow; not stuck
                custom_loss_server_side=False,
                sample_join_sampling_session=False,
            )
        )

    async def dynamic_config(self, request: web.Request) -> web.Response:
        return _json(types.ClientDynamicConfigResponse())

    async def telemetry(self, request: web.Request) -> web.Response:
        await request.read()  # accepted and dropped: nothing leaves this machine
        return _json(types.TelemetryResponse(status="accepted"))

    async def capabilities(self, request: web.Request) -> web.Response:
        return _json(server_capabilities())

    async def create_session(self, request: web.Request) -> web.Response:
        body = await _body(request, types.CreateSessionRequest)
        meta = {str(k): str(v) for k, v in (body.user_metadata or {}).items()}
        session_id = self.state.create_session(meta)
        return _json(types.CreateSessionResponse(session_id=session_id))

    async def heartbeat(self, request: web.Request) -> web.Response:
        body = await _body(request, types.SessionHeartbeatRequest)
        self.state.heartbeat(body.session_id)
        return _json(types.SessionHeartbeatResponse())

    async def finish_session(self, request: web.Request) -> web.Response:
        self.state.finish_session(request.match_info["session_id"])
        return web.json_response({})

    # training

    async def create_model(self, request: web.Request) -> web.Response:
        body = await _body(request, types.CreateModelRequest)
        self.state.session(body.session_id)
        model_id = f"{body.session_id}:train:{body.model_seq_id}"
        lora = body.lora_config or types.LoraConfig(rank=32)
        service = self.state.service

        def build() -> types.CreateModelResponse:
            client = service.create_lora_training_client(
                body.base_model,
                rank=lora.rank,
                seed=lora.seed,
                train_mlp=lora.train_mlp,
                train_attn=lora.train_attn,
                train_unembed=lora.train_unembed,
                user_metadata={str(k): str(v) for k, v in (body.user_metadata or {}).items()},
                optimizer=body.optimizer_config,
            )
            self.state.add_run(model_id, client, body.session_id)
            return types.CreateModelResponse(model_id=model_id)

        request_id = self.state.register(_in_thread(build), "json")
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=model_id))

    async def get_info(self, request: web.Request) -> web.Response:
        body = await _body(request, types.GetInfoRequest)
        info = self.state.run(body.model_id).client.get_info()
        tokenizer_id = self.state.tokenizer_id(info.model_data.model_name or "")
        model_data = info.model_data.model_copy(update={"tokenizer_id": tokenizer_id})
        return _json(info.model_copy(update={"model_id": body.model_id, "model_data": model_data}))

    async def forward_backward(self, request: web.Request) -> web.Response:
        if wire.PROTOBUF not in request.headers.get("Content-Type", ""):
            raise wire.WireError("forward_backward takes a protobuf body (the SDK sends one)")
        call = wire.decode_forward_backward(await request.read())
        client = self.state.run(call.model_id).client
        method = client.forward if call.forward_only else client.forward_backward
        loss_fn = call.loss_fn

        def submit() -> ConcurrentFuture[types.ForwardBackwardOutput]:
            return method(call.data, loss_fn, call.loss_fn_config).future()  # type: ignore[arg-type]  # checked by the backend

        request_id = self.state.in_order(call.model_id, call.seq_id, "proto_fwdbwd", submit)
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=call.model_id))

    async def optim_step(self, request: web.Request) -> web.Response:
        body = await _body(request, types.OptimStepRequest)
        client = self.state.run(body.model_id).client

        def submit() -> ConcurrentFuture[types.OptimStepResponse]:
            return client.optim_step(body.optim_params).future()

        request_id = self.state.in_order(body.model_id, body.seq_id, "json", submit)
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=body.model_id))

    async def save_weights(self, request: web.Request) -> web.Response:
        body = await _body(request, types.SaveWeightsRequest)
        client = self.state.run(body.model_id).client
        name = body.path or f"state-{body.seq_id}"
        directory, tinker_path = self.state.save_dir(body.model_id, "weights", name)

        def submit() -> ConcurrentFuture[types.SaveWeightsResponse]:
            saved = client.save_state(
                str(directory), body.ttl_seconds, body.overwrite, body.user_metadata
            )
            return _map(saved.future(), lambda _: types.SaveWeightsResponse(path=tinker_path))

        request_id = self.state.in_order(body.model_id, body.seq_id, "json", submit)
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=body.model_id))

    async def save_weights_for_sampler(self, request: web.Request) -> web.Response:
        body = await _body(request, types.SaveWeightsForSamplerRequest)
        run = self.state.run(body.model_id)
        client = run.client
        if body.kind != "snapshot":
            raise UserError(f"sampler kind {body.kind!r}: this server makes snapshot samplers only")
        if body.path is not None:
            directory, tinker_path = self.state.save_dir(
                body.model_id, "sampler_weights", body.path
            )

            def submit() -> ConcurrentFuture[types.SaveWeightsForSamplerResponseInternal]:
                saved = client.save_weights_for_sampler(
                    str(directory), body.ttl_seconds, body.user_metadata
                )
                return _map(
                    saved.future(),
                    lambda _: types.SaveWeightsForSamplerResponseInternal(path=tinker_path),
                )

        else:
            sampler_id = f"{run.session_id}:sample:{body.sampling_session_seq_id}"
            base_model = client.get_info().model_data.model_name or ""

            def submit() -> ConcurrentFuture[types.SaveWeightsForSamplerResponseInternal]:
                def register(sampler: object) -> types.SaveWeightsForSamplerResponseInternal:
                    assert isinstance(sampler, LocalSamplerType)
                    self.state.add_sampler(sampler_id, sampler, run.session_id, base_model, None)
                    return types.SaveWeightsForSamplerResponseInternal(
                        sampling_session_id=sampler_id
                    )

                return _map(client.submit_sampling_snapshot().future(), register)

        request_id = self.state.in_order(body.model_id, body.seq_id, "json", submit)
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=body.model_id))

    async def load_weights(self, request: web.Request) -> web.Response:
        body = await _body(request, types.LoadWeightsRequest)
        path = self.state.local_path(body.path)
        if body.session_id is not None:  # a new training client made from the checkpoint
            self.state.session(body.session_id)
            model_id = f"{body.session_id}:train:{body.model_seq_id}"
            service = self.state.service
            meta = {str(k): str(v) for k, v in (body.user_metadata or {}).items()} or None

            def build() -> types.LoadWeightsResponse:
                make = (
                    service.create_training_client_from_state_with_optimizer
                    if body.optimizer
                    else service.create_training_client_from_state
                )
                client = make(path, None, meta)
                self.state.add_run(model_id, client, body.session_id or "")
                return types.LoadWeightsResponse(path=body.path, model_id=model_id)

            request_id = self.state.register(_in_thread(build), "json")
            return _json(types.UntypedAPIFuture(request_id=request_id, model_id=model_id))
        if body.model_id is None:
            raise UserError("load_weights needs model_id (or session_id to make a new model)")
        client = self.state.run(body.model_id).client
        load = client.load_state_with_optimizer if body.optimizer else client.load_state

        def submit() -> ConcurrentFuture[types.LoadWeightsResponse]:
            loaded = load(path)
            return _map(
                loaded.future(),
                lambda _: types.LoadWeightsResponse(path=body.path, model_id=body.model_id),
            )

        request_id = self.state.in_order(body.model_id, body.seq_id, "json", submit)
        return _json(types.UntypedAPIFuture(request_id=request_id, model_id=body.model_id))

    # sampling

    async def create_sampling_session(self, request: web.Request) -> web.Response:
        body = await _body(request, types.CreateSamplingSessionRequest)
        self.state.session(body.session_id)
        sampler_id = f"{body.session_id}:sample:{body.sampling_session_seq_id}"
        model_path = body.model_path
        local = self.state.local_path(model_path) if model_path else None
        service = self.state.service
        holder: dict[str, LocalSamplerType] = {}

        def build() -> None:
            holder["sampler"] = service.create_sampling_client(
                model_path=local, base_model=None if local else body.base_model
            )

        await _run(build)
        sampler = holder["sampler"]
        base_model = sampler.get_base_model()
        self.state.add_sampler(sampler_id, sampler, body.session_id, base_model, model_path)
        return _json(types.CreateSamplingSessionResponse(sampling_session_id=sampler_id))

    async def get_sampler(self, request: web.Request) -> web.Response:
        sampler_id = request.match_info["sampler_id"]
        sampler = self.state.samplers.get(sampler_id)
        if sampler is None:
            raise NotFoundError(f"unknown sampler {sampler_id!r}")
        return _json(
            types.GetSamplerResponse(
                sampler_id=sampler_id, base_model=sampler.base_model, model_path=sampler.model_path
            )
        )

    async def asample(self, request: web.Request) -> web.Response:
        body = await _body(request, types.SampleRequest)
        if body.sampling_session_id is None:
            raise UserError("asample needs a sampling_session_id (create a sampling client)")
        sampler = self.state.samplers.get(body.sampling_session_id)
        if sampler is None:
            raise NotFoundError(f"unknown sampler {body.sampling_session_id!r}")
        outer: ConcurrentFuture[types.SampleResponse] = ConcurrentFuture()

        def submit() -> None:
            try:
                if body.target_prompt_logprobs is not None:
                    raise UnsupportedError(
                        "sample: target_prompt_logprobs is not computed by this server; use "
                        "include_prompt_logprobs / topk_prompt_logprobs"
                    )
                inner = sampler.client.sample(
                    body.prompt,
                    body.num_samples,
                    body.sampling_params,
                    include_prompt_logprobs=bool(body.prompt_logprobs),
                    topk_prompt_logprobs=body.topk_prompt_logprobs,
                    topk_sample_logprobs=body.topk_sample_logprobs,
                    prompt_alt_tokens_k=body.prompt_alt_tokens_k,
                    prompt_logprobs_last_n=body.prompt_logprobs_last_n,
                ).future()
            except Exception as exc:  # refused at submission: the SDK reads it from the future
                outer.set_exception(exc)
            else:
                chain(inner, outer)

        sampler.gather.add(submit)  # with the sampler's other requests: one batched generation
        request_id = self.state.register(outer, "proto_sample")
        ids = [f"{request_id}:{i}" for i in range(max(body.num_samples, 0))]
        return _json(types.UntypedAPIFuture(request_id=request_id, sample_sequence_ids=ids))

    # futures

    async def retrieve_future(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request, types.FutureRetrieveRequest)
        pending = self.state.get_pending(body.request_id)
        future = pending.future
        if not future.done() and not await _settled(future, LONG_POLL_S):
            return web.json_response(
                {"type": "try_again", "request_id": body.request_id, "queue_state": "active"}
            )
        exc = future.exception()
        if exc is not None:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            category = "user" if isinstance(exc, UserError | ValueError) else "server"
            if category == "server":
                log.error("request %s failed: %r", body.request_id, exc)
            return web.json_response({"error": message, "category": category})
        result = future.result()
        if pending.kind == "proto_fwdbwd":
            return web.Response(
                body=wire.encode_forward_backward_output(result), content_type=wire.PROTOBUF
            )
        if pending.kind == "proto_sample":
            return web.Response(
                body=wire.encode_sample_response(result), content_type=wire.PROTOBUF
            )
        assert isinstance(result, pydantic.BaseModel)
        return _json(result)

    async def cancel_future(self, request: web.Request) -> web.Response:
        await request.read()  # local work is short; it runs to the end
        return web.json_response({})

    # REST

    async def training_run(self, request: web.Request) -> web.Response:
        return _json(self.state.training_run(request.match_info["run_id"]))

    async def delete_checkpoint(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        checkpoint_id = request.match_info["checkpoint_id"]
        directory = self.state.local_path(f"tinker://{run_id}/{checkpoint_id}")
        await _run(lambda: _remove(directory))
        return web.json_response({})

    async def weights_info(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read() or b"{}")
        tinker_path = payload.get("tinker_path") if isinstance(payload, dict) else None
        if not isinstance(tinker_path, str):
            raise wire.WireError("weights_info needs {'tinker_path': ...}")
        run = self.state.training_run(
            types.ParsedCheckpointTinkerPath.from_tinker_path(tinker_path).training_run_id
        )
        return _json(
            types.WeightsInfoResponse(
                base_model=run.base_model, is_lora=run.is_lora, lora_rank=run.lora_rank
            )
        )


# --- helpers ----------------------------------------------------------------------------------

A = TypeVar("A")
B = TypeVar("B")


def _in_thread(fn: Callable[[], A]) -> ConcurrentFuture[A]:
    """Run `fn` on a fresh thread (model building), settling the returned future."""
    import threading

    out: ConcurrentFuture[A] = ConcurrentFuture()

    def go() -> None:
        try:
            out.set_result(fn())
        except BaseException as exc:  # delivered through the future
            out.set_exception(exc)

    threading.Thread(target=go, name="cookbook-serve-build", daemon=True).start()
    return out


async def _settled(future: ConcurrentFuture[Any], timeout_s: float) -> bool:
    """Wait until `future` (settled by a backend thread) is done: True the moment it is, False
    after `timeout_s`. Never cancels `future`: a client that gives up (or hangs up) only ends its
    own wait, and the work runs on for the next `retrieve_future`."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: ConcurrentFuture[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the server stopped meanwhile: nobody waits
            loop.call_soon_threadsafe(_resolve, waiter)

    future.add_done_callback(wake)
    try:
        async with asyncio.timeout(timeout_s):
            await waiter
    except TimeoutError:
        return False
    return True


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _map(source: ConcurrentFuture[A], transform: Callable[[A], B]) -> ConcurrentFuture[B]:
    out: ConcurrentFuture[B] = ConcurrentFuture()

    def settle(done: ConcurrentFuture[A]) -> None:
        try:
            out.set_result(transform(done.result()))
        except BaseException as exc:  # delivered through the future
            out.set_exception(exc)

    source.add_done_callback(settle)
    return out


def _remove(directory: str) -> None:
    import shutil

    shutil.rmtree(directory)
