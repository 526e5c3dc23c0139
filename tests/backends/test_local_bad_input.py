"""Bad input: one clear line naming the datum and field, and nothing half-applied."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from backend_helpers import ce_datum, random_tokens, rl_datum
from tinker import types

from cookbook.backends import make_service_client
from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient
from cookbook.errors import UserError


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.fixture
def trainer(service: LocalServiceClient) -> LocalTrainingClient:
    return service.create_lora_training_client("tiny", seed=0)


def test_mismatched_lengths_name_datum_and_field(trainer: LocalTrainingClient) -> None:
    good = ce_datum(list(range(10)))
    short = types.Datum(
        model_input=types.ModelInput.from_ints(list(range(8))),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.arange(1, 9)),
            "weights": types.TensorData.from_numpy(np.ones(7, np.float32)),
        },
    )
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([good, short], "cross_entropy")
    assert "datum 1" in _one_line(exc) and "'weights'" in str(exc.value)


def test_missing_input_unknown_loss_and_unknown_keys(trainer: LocalTrainingClient) -> None:
    ce = ce_datum(list(range(10)))
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([ce], "importance_sampling")
    assert "datum 0" in _one_line(exc) and "'logprobs'" in str(exc.value)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([ce], cast("types.LossFnType", "reinforce"))
    assert "unknown loss_fn 'reinforce'" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([ce], "cross_entropy", {"beta": 0.1})
    assert "'beta'" in _one_line(exc)
    rl = rl_datum(list(range(6)), [-1.0] * 5, [1.0] * 5)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([rl], "cross_entropy")
    assert "datum 0" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([rl], "ppo", {"clip_low_threshold": 1.5})
    assert "clip_low_threshold" in _one_line(exc)


def test_token_ids_outside_vocab_and_empty_batch(trainer: LocalTrainingClient) -> None:
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([ce_datum([1, 2, 3]), ce_datum([5, 300, 7])], "cross_entropy")
    assert "datum 1" in _one_line(exc) and "300" in str(exc.value)
    with pytest.raises(UserError) as exc:
        trainer.forward([ce_datum([1, 2, -4])], "cross_entropy")
    assert "target_tokens" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([], "cross_entropy")
    assert "empty batch" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        trainer.forward_backward([ce_datum(list(range(100)) * 6)], "cross_entropy")
    assert "context" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        trainer.optim_step(types.AdamParams(learning_rate=-1.0))
    assert "learning_rate" in _one_line(exc)


def test_failed_requests_leave_no_partial_gradient(trainer: LocalTrainingClient) -> None:
    rng = np.random.default_rng(0)
    good = [ce_datum(random_tokens(rng, 12)) for _ in range(3)]
    trainer.forward_backward(good, "cross_entropy")
    before = trainer.accumulated_gradients()
    with pytest.raises(UserError):
        trainer.forward_backward([*good, ce_datum([1, 2, 999])], "cross_entropy")

    def explodes(
        data: list[types.Datum], lps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("loss blew up")

    with pytest.raises(RuntimeError, match="loss blew up"):
        trainer.forward_backward_custom(good, explodes).result()

    def constant(
        data: list[types.Datum], lps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.ones(()), {}

    with pytest.raises(UserError, match="does not depend"):
        trainer.forward_backward_custom(good, constant).result()
    after = trainer.accumulated_gradients()
    assert after.keys() == before.keys()
    for name in before:
        assert torch.equal(after[name], before[name]), name


def test_paths_that_hold_no_model(service: LocalServiceClient, tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        service.create_lora_training_client(str(tmp_path))
    assert "holds no model" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        service.create_lora_training_client(str(tmp_path / "missing"))
    assert "directory" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        service.create_lora_training_client("tiny-7x2")
    assert "tiny" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        service.create_sampling_client(model_path=str(tmp_path))
    assert "no local checkpoint" in _one_line(exc)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError) as exc:
        service.create_lora_training_client(str(tmp_path))
    _one_line(exc)


def test_checkpoints_of_the_wrong_kind_or_size(service: LocalServiceClient) -> None:
    small = service.create_lora_training_client("tiny", seed=0)
    big = service.create_lora_training_client("tiny-32x1", seed=0)
    sampler_path = small.save_weights_for_sampler("s").result().path
    state_path = small.save_state("st").result().path
    with pytest.raises(UserError, match="no optimizer state"):
        small.load_state_with_optimizer(sampler_path).result()
    with pytest.raises(UserError, match=r"does not fit|shape"):
        big.load_state(state_path).result()
    with pytest.raises(UserError, match="no local checkpoint"):
        small.load_state(state_path + "-nope").result()


def test_unknown_backend_and_device() -> None:
    with pytest.raises(UserError, match="unknown backend"):
        make_service_client("nope")
    with pytest.raises(UserError, match="device"):
        LocalServiceClient(device="tpu9")
