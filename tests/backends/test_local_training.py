"""Training client: accumulation, checkpoints, learning, non-finite refusal, ordering."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_helpers import TEXT, ce_datum, random_tokens, rl_datum
from tinker import types

from cookbook.backends.local.service import LocalServiceClient
from cookbook.backends.local.training import LocalTrainingClient, NonFiniteGradientError
from cookbook.tokenizers import ByteTokenizer

# eps well above float noise: Adam divides by sqrt(v) + eps, which would turn a 1e-9 difference
# in a near-zero gradient into a full-size step and hide the equivalences tested here.
ADAM = types.AdamParams(learning_rate=1e-2, eps=1e-6, weight_decay=0.01)


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


def test_two_forward_backwards_then_step_equal_one_call_with_both(
    service: LocalServiceClient,
) -> None:
    rng = np.random.default_rng(1)
    d1, d2 = ce_datum(random_tokens(rng, 15)), ce_datum(random_tokens(rng, 9))
    split = service.create_lora_training_client("tiny", seed=2)
    joint = service.create_lora_training_client("tiny", seed=2)
    split.forward_backward([d1], "cross_entropy")
    split.forward_backward([d2], "cross_entropy")
    joint.forward_backward([d1, d2], "cross_entropy")
    _assert_same(split.accumulated_gradients(), joint.accumulated_gradients(), atol=1e-6)
    split.optim_step(ADAM).result()
    joint.optim_step(ADAM).result()
    _assert_same(split.trainable_weights(), joint.trainable_weights(), atol=1e-6)
    assert split.accumulated_gradients() == {}  # the step cleared the gradient


def test_save_load_continue_equals_never_stopping(service: LocalServiceClient) -> None:
    rng = np.random.default_rng(2)
    batches = [[ce_datum(random_tokens(rng, 12)) for _ in range(3)] for _ in range(6)]

    def train(client: LocalTrainingClient, steps: list[list[types.Datum]]) -> None:
        for batch in steps:
            client.forward_backward(batch, "cross_entropy")
            client.optim_step(ADAM)

    straight = service.create_lora_training_client("tiny", seed=4)
    train(straight, batches)

    first = service.create_lora_training_client("tiny", seed=4)
    train(first, batches[:3])
    saved = first.save_state("mid").result()
    assert Path(saved.path).is_dir()
    train(first, batches[3:])  # the saved checkpoint must not move with later training

    # Resume two ways: load_state into another client, and a client made from the state.
    other = service.create_lora_training_client("tiny", seed=99)
    other.load_state_with_optimizer(saved.path).result()
    assert other.step == 3
    train(other, batches[3:])
    resumed = service.create_training_client_from_state_with_optimizer(saved.path)
    train(resumed, batches[3:])
    want = straight.trainable_weights()
    _assert_same(other.trainable_weights(), want, atol=1e-6)
    _assert_same(resumed.trainable_weights(), want, atol=1e-6)
    _assert_same(first.trainable_weights(), want, atol=1e-6)


def test_cross_entropy_learns_a_fixed_text(service: LocalServiceClient) -> None:
    """A learning check (not a timing): 300 steps on one short text cut the loss by >10x."""
    tok = ByteTokenizer()
    ids = tok.encode(TEXT * 2)
    data = [ce_datum(ids)]
    trainer = service.create_lora_training_client("tiny", seed=0)
    first = trainer.forward(data, "cross_entropy").result().metrics["loss:sum"]
    for _ in range(300):
        trainer.forward_backward(data, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=3e-3))
    last = trainer.forward(data, "cross_entropy").result().metrics["loss:sum"]
    n = len(ids) - 1
    assert first / n == pytest.approx(np.log(261), rel=1e-4)
    assert last < first / 10, (first / n, last / n)


def test_non_finite_loss_is_reported_and_refused(service: LocalServiceClient) -> None:
    trainer = service.create_lora_training_client("tiny", seed=0)
    tokens = list(range(40, 60))
    before = trainer.trainable_weights()
    # log p - q = -log(261) + 100 overflows exp(): the importance ratio is inf.
    bad = rl_datum(tokens, [-100.0] * 19, [1.0] * 19)
    out = trainer.forward_backward([bad], "importance_sampling").result()
    assert not np.isfinite(out.metrics["loss:sum"])
    with pytest.raises(NonFiniteGradientError, match="optim_step refused"):
        trainer.optim_step(ADAM).result()
    _assert_same(trainer.trainable_weights(), before, atol=0.0)
    # The bad gradient was dropped: training goes on normally.
    trainer.forward_backward([ce_datum(tokens)], "cross_entropy")
    metrics = trainer.optim_step(ADAM).result().metrics
    assert metrics is not None and np.isfinite(metrics["grad_norm"])
    assert trainer.step == 1


def test_grad_clip_bounds_the_step(service: LocalServiceClient) -> None:
    rng = np.random.default_rng(5)
    data = [ce_datum(random_tokens(rng, 30)) for _ in range(4)]
    trainer = service.create_lora_training_client("tiny", seed=0)
    trainer.forward_backward(data, "cross_entropy")
    norm = float(
        torch.linalg.vector_norm(
            torch.stack([g.norm() for g in trainer.accumulated_gradients().values()])
        )
    )
    clipped = types.AdamParams(learning_rate=1e-2, grad_clip_norm=norm / 4)
    metrics = trainer.optim_step(clipped).result().metrics
    assert metrics is not None and metrics["grad_norm"] == pytest.approx(norm, rel=1e-5)


def test_requests_run_in_submission_order_and_await_does_not_block() -> None:
    service = LocalServiceClient(device="cpu")
    trainer = service.create_lora_training_client("tiny", seed=0)
    datum = ce_datum(list(range(30, 70)))

    async def main() -> list[float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        # Submitted back to back without waiting: each forward sees the step before it.
        futures = []
        for _ in range(3):
            futures.append(trainer.forward([datum], "cross_entropy"))
            trainer.forward_backward([datum], "cross_entropy")
            trainer.optim_step(types.AdamParams(learning_rate=1e-2))
        losses = [(await f).metrics["loss:sum"] for f in futures]
        task.cancel()
        assert ticks > 3  # the loop kept running while we waited
        return losses

    losses = asyncio.run(main())
    assert losses[0] > losses[1] > losses[2]


def test_checkpoint_names_and_paths(service: LocalServiceClient, tmp_path: Path) -> None:
    trainer = service.create_lora_training_client("tiny", seed=0)
    bare = trainer.save_weights_for_sampler("000001").result().path
    assert Path(bare) == service.base_dir.absolute() / "sampler_weights" / "000001"
    exact = tmp_path / "run" / "ckpt" / "final"
    state = trainer.save_state(str(exact)).result().path
    assert Path(state) == exact
    assert sorted(p.name for p in exact.iterdir()) == ["meta.json", "optimizer.pt", "weights.pt"]
    # The same name again needs overwrite=True (as in the SDK), which replaces it atomically,
    # leaving no temporary directories behind.
    with pytest.raises(ValueError, match="overwrite=True"):
        trainer.save_state(str(exact))
    trainer.save_state(str(exact), overwrite=True).result()
    assert sorted(p.name for p in exact.parent.iterdir()) == ["final"]


def test_a_failed_request_frees_its_tensors_with_its_future(service: LocalServiceClient) -> None:
    """A failed request's exception holds the frames it passed through, and the frame that
    caught it refers back to the future: the step's tensors (its autograd graph, every
    activation: tens of GB on a GPU) must go when the future is dropped, not at the next
    garbage collection."""
    trainer = service.create_lora_training_client("tiny", seed=0)
    seen: list[weakref.ref[torch.Tensor]] = []

    def failing(
        data: list[types.Datum], logprobs: list[torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        seen.append(weakref.ref(logprobs[0]))
        raise ValueError("this loss fails")

    datum = ce_datum(random_tokens(np.random.default_rng(0), 12))
    gc.collect()
    gc.disable()  # only reference counting frees anything from here on
    try:
        future = trainer.forward_backward_custom([datum], failing)
        with pytest.raises(ValueError, match="this loss fails"):
            future.result()
        del future
        assert len(seen) == 1 and seen[0]() is None
    finally:
        gc.enable()
    trainer.forward_backward([datum], "cross_entropy").result()  # the client still works
