"""Both backends fit `cookbook.backends.protocol`; the tinker backend fails fast and clearly
(no key, a malformed key, nobody listening) instead of retrying for minutes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tinker import types

from cookbook.backends import make_service_client
from cookbook.backends.protocol import SamplingClient, ServiceClient, TrainingClient
from cookbook.errors import UserError


def test_local_clients_fit_the_protocol() -> None:
    service: ServiceClient = make_service_client("local", "cpu")
    trainer: TrainingClient = service.create_lora_training_client("tiny", seed=0)
    sampler: SamplingClient = trainer.save_weights_and_get_sampling_client()
    tok = trainer.get_tokenizer()
    assert tok.decode(tok.encode("héllo")) == "héllo" and tok.vocab_size == 261
    response = sampler.sample(
        types.ModelInput.from_ints(tok.encode("hi")), 2, types.SamplingParams(max_tokens=3)
    ).result()
    assert isinstance(response, types.SampleResponse) and len(response.sequences) == 2
    assert isinstance(trainer.get_info(), types.GetInfoResponse)


def test_tinker_backend_needs_a_well_formed_api_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    monkeypatch.delenv("TINKER_CREDENTIAL_CMD", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stored login either
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(UserError, match="TINKER_API_KEY"):
        make_service_client("tinker", base_url="http://127.0.0.1:9")
    monkeypatch.setenv("TINKER_API_KEY", "sk-not-a-tinker-key")
    with pytest.raises(UserError, match="must start with 'tml-'") as exc:
        make_service_client("tinker", base_url="http://127.0.0.1:9")
    assert "\n" not in str(exc.value)


def test_tinker_backend_unreachable_server_is_one_line_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TINKER_API_KEY", "tml-test")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach a Tinker server") as exc:
        make_service_client("tinker", base_url=f"http://127.0.0.1:{port}")
    assert "\n" not in str(exc.value) and f":{port}" in str(exc.value)
    assert time.monotonic() - start < 60  # the SDK alone retries for minutes
    with pytest.raises(UserError, match="not an http"):
        make_service_client("tinker", base_url="127.0.0.1:8000")


def test_backend_options_that_do_not_apply_are_refused() -> None:
    with pytest.raises(UserError, match="backend=tinker"):
        make_service_client("local", base_url="http://127.0.0.1:8000")
    with pytest.raises(UserError, match="backend=local"):
        make_service_client("tinker", device="cpu")
    with pytest.raises(UserError, match="unknown backend"):
        make_service_client("remote")


def test_backend_package_imports_stay_light() -> None:
    code = (
        "import sys, cookbook.backends, cookbook.backends.local, cookbook.backends.tinker_remote;"
        "heavy = [m for m in ('torch', 'transformers', 'tinker', 'peft') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
