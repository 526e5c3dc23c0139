"""A run's training client made from a checkpoint (`cookbook.runs.setup`): resume restores the
optimizer, `load_checkpoint_path` does not, and the new run's `seed` still decides the samples of
requests that bring no seed (the local backend reads it from the client's user metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tinker import types

from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient
from cookbook.runs.setup import checkpoint_training_client


def _unseeded_tokens(client: LocalTrainingClient) -> list[list[int]]:
    sampler = client.save_weights_and_get_sampling_client().result()
    params = types.SamplingParams(max_tokens=8, temperature=1.0)  # no seed: the client's draws
    response = sampler.sample(types.ModelInput.from_ints([1, 2, 3]), 4, params).result()
    return [list(s.tokens) for s in response.sequences]


def test_a_client_from_a_checkpoint_takes_the_new_runs_seed(tmp_path: Path) -> None:
    service = LocalServiceClient(device="cpu", base_dir=tmp_path)
    source = service.create_lora_training_client("tiny-32x1", seed=1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 256, 12).tolist()
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(np.ones(11, dtype=np.float32)),
        },
    )
    source.forward_backward([datum], "cross_entropy").result()
    source.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    path = source.save_state("mid").result().path

    def client(seed: int, with_optimizer: bool = False) -> LocalTrainingClient:
        made = checkpoint_training_client(service, path, seed, with_optimizer=with_optimizer)
        assert isinstance(made, LocalTrainingClient)
        return made

    a, a_again, b = client(5), client(5), client(6)
    assert a.step == 0  # load_checkpoint_path: the weights, a fresh optimizer
    assert client(1, with_optimizer=True).step == 1  # resume: optimizer state and step count
    assert _unseeded_tokens(a) == _unseeded_tokens(a_again)
    assert _unseeded_tokens(a) != _unseeded_tokens(b)
    # Without a seed in the metadata, the checkpoint's own seed (as before).
    plain = service.create_training_client_from_state(path)
    assert _unseeded_tokens(plain) == _unseeded_tokens(client(1))
