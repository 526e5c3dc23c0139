"""Serve tests share one server and one random Hugging Face model per session (each costs seconds
on 2 shared cores), and run the server's torch work on one thread."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from server_thread import running_server

from cookbook.serve.state import ServerState


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the real SDK needs to talk to a local server: a key of the accepted form (the server
    checks none), and no telemetry."""
    monkeypatch.setenv("TINKER_API_KEY", "tml-test")
    monkeypatch.setenv("TINKER_TELEMETRY", "0")
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ServerState]]:
    """One `cookbook serve` (no API key) for every test of the session that does not need a
    server of its own: its base URL and state. Tests must not assume they are its only client."""
    with running_server(tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture
def ttt_server(
    shared_server: tuple[str, ServerState], caplog: pytest.LogCaptureFixture
) -> tuple[str, ServerState]:
    """`shared_server` for a `cookbook rl --env tictactoe` through the SDK: skipped without the
    tictactoe plugin; the SDK's warnings (blocking calls on the loop, deprecations) captured for
    the test to assert on."""
    pytest.importorskip("cookbook_tictactoe", reason="the tictactoe plugin is not installed")
    caplog.set_level(logging.WARNING, logger="tinker")
    return shared_server


@pytest.fixture(scope="session")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small random Llama (hidden 32, 2 layers) with its tokenizer, saved once."""
    from cookbook.backends.local.random_hf import save_random_hf_model

    return str(save_random_hf_model(tmp_path_factory.mktemp("hf") / "llama", "llama", seed=0))
