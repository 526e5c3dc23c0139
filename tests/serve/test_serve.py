"""`cookbook serve` driven by the real `tinker` SDK, and by hostile clients over raw HTTP."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tinker
from server_thread import running_server
from tinker import types

from cookbook.backends.local.service import LocalServiceClient
from cookbook.cli import main as cookbook_main
from cookbook.serve import SDK_VERSIONS
from cookbook.serve.state import ServerState

ADAM = types.AdamParams(learning_rate=1e-2, eps=1e-6)


def _datum(tokens: list[int]) -> types.Datum:
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": np.asarray(tokens[1:], np.int64),
            "weights": np.ones(len(tokens) - 1, np.float32),
        },
    )


def test_sdk_version_is_one_this_server_was_verified_against() -> None:
    assert tinker.__version__ in SDK_VERSIONS, (
        f"tinker {tinker.__version__} is installed; cookbook serve is verified against "
        f"{SDK_VERSIONS}: rerun tests/serve with it and add it to cookbook.serve.SDK_VERSIONS"
    )


def test_sdk_trains_samples_saves_and_resumes_like_in_process(
    shared_server: tuple[str, ServerState], tmp_path: Path
) -> None:
    url, server_state = shared_server
    rng = np.random.default_rng(0)
    batches = [[_datum(rng.integers(0, 256, 16).tolist()) for _ in range(2)] for _ in range(4)]
    local = LocalServiceClient(device="cpu", base_dir=tmp_path / "local")
    expected = local.create_lora_training_client("tiny", rank=8, seed=3)

    service = tinker.ServiceClient(base_url=url)
    remote = service.create_lora_training_client("tiny", rank=8, seed=3).result()
    losses = []
    for batch in batches[:2]:
        fwd = remote.forward_backward(batch, "cross_entropy")
        step = remote.optim_step(ADAM)
        want = expected.forward_backward(batch, "cross_entropy")
        expected.optim_step(ADAM)
        losses.append(fwd.result().metrics["loss:sum"])
        assert losses[-1] == pytest.approx(want.result().metrics["loss:sum"], rel=1e-5)
        assert step.result().metrics is not None
    logprobs = remote.forward(batches[0], "cross_entropy").result().loss_fn_outputs[0]
    assert logprobs["logprobs"].shape == [15]

    state = remote.save_state("mid", user_metadata={"k": "v"}).result().path
    sampler_path = remote.save_weights_for_sampler("mid").result().path
    assert state.startswith("tinker://") and "/weights/mid" in state
    # Names that are paths (the cookbook's loops pass run-directory paths) stay distinct and
    # stay under the server's checkpoint root.
    odd = ["/runs/a/step1/state", "/runs/b/step1/state", "../../../escape"]
    odd_paths = [remote.save_state(name).result().path for name in odd]
    assert len(set(odd_paths)) == 3 and all(p.startswith("tinker://") for p in odd_paths)
    assert all(
        Path(server_state.local_path(p)).is_relative_to(server_state.root) for p in odd_paths
    )
    resumed = service.create_training_client_from_state_with_optimizer(state).result()
    fresh = service.create_training_client_from_state(state).result()
    for client in (remote, resumed):
        for batch in batches[2:]:
            client.forward_backward(batch, "cross_entropy")
            client.optim_step(ADAM)
    final = [
        c.forward(batches[0], "cross_entropy").result().metrics["loss:sum"]
        for c in (remote, resumed)
    ]
    assert final[0] == pytest.approx(final[1], rel=1e-5)  # weights and Adam state came back
    assert fresh.get_info().model_data.model_name == "tiny"

    sampler = remote.save_weights_and_get_sampling_client().result()
    prompt = types.ModelInput.from_ints([10, 11, 12, 13])
    response = sampler.sample(
        prompt, 3, types.SamplingParams(max_tokens=4, seed=1), include_prompt_logprobs=True
    ).result()
    assert len(response.sequences) == 3 and all(len(s.tokens) <= 4 for s in response.sequences)
    assert len({s.sequence_id for s in response.sequences}) == 3
    scored = sampler.compute_logprobs(prompt).result()
    assert scored[0] is None and scored[1:] == pytest.approx(response.prompt_logprobs[1:], abs=1e-5)
    from_disk = service.create_sampling_client(model_path=sampler_path).result()
    assert from_disk.get_base_model() == "tiny"

    run = tinker.RestClient(base_url=url).get_training_run_by_tinker_path(state).result()
    assert run.base_model == "tiny" and run.lora_rank == 8
    tinker.RestClient(base_url=url).delete_checkpoint_from_tinker_path(sampler_path).result()
    with pytest.raises(tinker.TinkerError):
        service.create_sampling_client(model_path=sampler_path).result()
    service.close("success").result()


def test_refused_requests_fail_their_future_not_the_server(
    shared_server: tuple[str, ServerState],
) -> None:
    url, _ = shared_server
    service = tinker.ServiceClient(base_url=url)
    trainer = service.create_lora_training_client("tiny", rank=4).result()
    bad = types.Datum(
        model_input=types.ModelInput.from_ints([1, 2, 3]),
        loss_fn_inputs={"target_tokens": np.asarray([1, 2], np.int64), "weights": np.ones(2)},
    )
    with pytest.raises(tinker.RequestFailedError, match="datum 0"):
        trainer.forward_backward([bad], "cross_entropy").result()
    with pytest.raises(tinker.RequestFailedError, match="unknown loss_fn"):
        trainer.forward_backward([_datum([1, 2, 3])], "reinforce").result()  # type: ignore[arg-type]
    with pytest.raises(tinker.RequestFailedError, match="clip_low_threshold"):
        trainer.forward_backward([_datum([1, 2, 3])], "ppo", {"clip_low_threshold": "x"}).result()
    # The same client keeps working after refused requests.
    assert trainer.forward([_datum([1, 2, 3, 4])], "cross_entropy").result().metrics
    with pytest.raises(tinker.TinkerError):
        service.create_lora_training_client("/no/such/model/dir").result()
    service.close("success").result()


def test_many_clients_at_once_each_in_order(shared_server: tuple[str, ServerState]) -> None:
    url, state = shared_server
    service = tinker.ServiceClient(base_url=url)
    rng = np.random.default_rng(1)
    datum = _datum(rng.integers(0, 256, 12).tolist())
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def train(worker: int) -> None:
        try:
            trainer = service.create_lora_training_client("tiny", rank=4, seed=worker).result()
            futures = []
            for _ in range(3):  # submitted back to back: each forward sees the step before
                futures.append(trainer.forward([datum], "cross_entropy"))
                trainer.forward_backward([datum], "cross_entropy")
                trainer.optim_step(types.AdamParams(learning_rate=5e-2))
            results[worker] = [f.result().metrics["loss:sum"] for f in futures]
        except BaseException as exc:
            errors.append(exc)

    runs_before = set(state.runs)
    threads = [threading.Thread(target=train, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    for losses in results.values():
        assert losses[0] > losses[1] > losses[2]
    mine = set(state.runs) - runs_before
    assert len(results) == 4 and len(mine) == 4
    service.close("success").result()
    assert not mine & set(state.runs)  # a finished session releases its models


def test_malformed_bodies_unknown_ids_and_disconnects_get_errors(
    shared_server: tuple[str, ServerState],
) -> None:
    url, _ = shared_server
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/api/v1/create_session", content=b"{not json").status_code == 400
        assert http.post("/api/v1/create_model", json={"model_seq_id": 0}).status_code == 400
        fwd = http.post(
            "/api/v1/forward_backward",
            content=b"\xff\x00garbage",
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert fwd.status_code == 400 and "ForwardBackwardRequest" in fwd.json()["error"]
        missing = http.post("/api/v1/retrieve_future", json={"request_id": "req-nope"})
        assert missing.status_code == 404
        model = http.post("/api/v1/get_info", json={"model_id": "nope:train:0"})
        assert model.status_code == 404
        assert http.get("/api/v1/samplers/nope").status_code == 404
        session = http.post("/api/v1/session_heartbeat", json={"session_id": "nope"})
        assert session.status_code == 404
    # A client that hangs up mid-request (here: mid-body) costs the server nothing.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /api/v1/create_session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 1000\r\n\r\n{"tags": ['
        )
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/api/v1/healthz").json() == {"status": "ok"}


def test_api_key_is_checked_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server(tmp_path / "serve", api_key="tml-secret") as (url, _):
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/api/v1/healthz").status_code == 200
            wrong = http.post("/api/v1/client/config", json={"sdk_version": "0"})
            assert wrong.status_code == 401
            right = http.post(
                "/api/v1/client/config",
                json={"sdk_version": "0"},
                headers={"X-API-Key": "tml-secret"},
            )
            assert right.status_code == 200
        from cookbook.backends import make_service_client
        from cookbook.errors import UserError

        monkeypatch.setenv("TINKER_API_KEY", "tml-wrong")
        with pytest.raises(UserError, match="refused the API key"):
            make_service_client("tinker", base_url=url)
        monkeypatch.setenv("TINKER_API_KEY", "tml-secret")
        service = make_service_client("tinker", base_url=url)
        trainer = service.create_lora_training_client("tiny", rank=4).result()
        assert trainer.get_info().model_data.model_name == "tiny"
        assert isinstance(service, tinker.ServiceClient)
        service.close("success").result()  # no heartbeats to this server once it stops


def test_a_server_that_dies_mid_run_stops_the_client_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK alone would wait for ever on a result from a server that went away (it retries
    a pending result without end): the backend's watchdog stops the waiting main thread."""
    import cookbook.backends.tinker_remote as tinker_remote
    from cookbook.backends import make_service_client

    monkeypatch.setattr(tinker_remote, "WATCH_EVERY_S", 0.1)
    monkeypatch.setattr(tinker_remote, "GONE_AFTER_S", 0.5)
    with running_server(tmp_path / "serve") as (url, _):
        service = make_service_client("tinker", base_url=url)
        trainer = service.create_lora_training_client("tiny-32x1", rank=4).result()
        trainer.forward_backward([_datum([1, 2, 3])], "cross_entropy").result()
    start = time.monotonic()
    with pytest.raises(tinker_remote.ServerGoneError, match="stopped answering") as exc:
        trainer.forward_backward([_datum([1, 2, 3])], "cross_entropy").result()
    assert time.monotonic() - start < 120  # a hang guard only: the SDK alone waits for ever
    assert url in str(exc.value) and "\n" not in str(exc.value)
    # Stop the SDK's heartbeats to the dead server (they log a warning after 2 minutes, and
    # close() would first retry finishing the session for 5).
    assert isinstance(service, tinker.ServiceClient)
    holder = service._session_holder
    assert holder is not None
    holder.run_coroutine_threadsafe(service._close_holders()).result(30)


def test_sample_requests_that_arrive_together_are_submitted_together_in_order() -> None:
    from cookbook.serve.state import SAMPLE_GATHER_MAX_S, Burst, SampleGather

    async def main() -> None:
        burst, submitted = Burst(), []
        first = SampleGather(burst)
        for i in range(3):
            first.add(lambda i=i: submitted.append(i))
        assert not submitted  # held for the next request
        await asyncio.sleep(4 * SAMPLE_GATHER_MAX_S)
        assert submitted == [0, 1, 2] and burst.size == 3
        submitted.clear()
        second = SampleGather(burst)  # the session's next sampler: 3 go as soon as they came
        for i in range(4):
            second.add(lambda i=i: submitted.append(i))
            assert submitted == ([0, 1, 2] if i >= 2 else [])
        await asyncio.sleep(4 * SAMPLE_GATHER_MAX_S)
        assert submitted == [0, 1, 2, 3] and burst.size == 4  # a larger burst: split once

    asyncio.run(main())


def test_serve_command_is_listed_and_refuses_bad_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cookbook_main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out
    assert cookbook_main(["serve", "--api-key", "secret"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "tml-" in err
    with socket.socket() as busy:  # the port is taken: one line, at once, nothing loaded
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cookbook_main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen") and "Traceback" not in err
