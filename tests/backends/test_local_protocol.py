"""Both backends fit `cookbook.backends.protocol` (checked by mypy through the annotations
below, and at run time for the local one); the remote one fails clearly without a key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tinker import types

from cookbook.backends import make_service_client
from cookbook.backends.protocol import SamplingClient, ServiceClient, TrainingClient
from cookbook.backends.tinker_remote import (
    TinkerServiceClient,
    TinkerTrainingClient,
    make_tinker_service_client,
)
from cookbook.errors import UserError


def _remote_fits(service: TinkerServiceClient, trainer: TinkerTrainingClient) -> None:
    """Never called: mypy checks that the remote adapters satisfy the protocol."""
    as_service: ServiceClient = service
    as_trainer: TrainingClient = trainer
    del as_service, as_trainer


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


def test_tinker_backend_needs_an_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    with pytest.raises(UserError, match="TINKER_API_KEY"):
        make_tinker_service_client()
    with pytest.raises(UserError, match="TINKER_API_KEY"):
        make_service_client("tinker")


def test_backend_package_imports_stay_light() -> None:
    code = (
        "import sys, cookbook.backends, cookbook.backends.local, cookbook.backends.tinker_remote;"
        "heavy = [m for m in ('torch', 'transformers', 'tinker', 'peft') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
