"""A short supervised phase before RL, on the env's registered warm-start dataset.

A randomly initialised tiny model almost never produces a well-formed answer, so RL from scratch
has no signal (see notes/tiny-rl-prototype.md). A few hundred `cross_entropy` steps on examples of
the answer format fix that. Checkpoints of this phase are stored at RL step 0 with
`warm_start_steps_done` in their `extra`, so a resumed run continues where it stopped and never
redoes a finished warm start. The full `cookbook sft` loop lives in `cookbook.supervised`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import chz
import numpy as np

from cookbook.runs.checkpoints import Checkpoint
from cookbook.runs.metrics import MetricsLog
from cookbook.runs.progress import RunProgress
from cookbook.supervised.types import SupervisedDatasetBuilder

if TYPE_CHECKING:
    from cookbook.backends.protocol import TrainingClient
    from cookbook.build_context import BuildContext
    from cookbook.runs.run_dir import RunDir

WARM_START_DONE = "warm_start_steps_done"
"""Key in a checkpoint's `extra`: warm-start steps finished when it was taken."""


@chz.chz
class WarmStartConfig:
    """The supervised phase run before RL."""

    dataset_builder: SupervisedDatasetBuilder
    """The dataset to fine-tune on (usually the env's registered `warm_start_dataset`)."""
    steps: int = 200
    """Optimiser steps (0 skips the phase)."""
    learning_rate: float = 3e-3
    """Adam learning rate of this phase."""
    batch_size: int = 64
    """Examples per batch (passed to the dataset builder as `groups_per_batch`)."""
    save_every: int = 100
    """Checkpoint every this many steps (and at the end)."""


def warm_start_steps_done(checkpoint: Checkpoint | None) -> int:
    """Warm-start steps already finished according to `checkpoint` (0 for none)."""
    if checkpoint is None:
        return 0
    value = checkpoint.extra.get(WARM_START_DONE, 0)
    return int(value) if isinstance(value, int | float) else 0


async def run_warm_start(
    training_client: TrainingClient,
    config: WarmStartConfig,
    ctx: BuildContext,
    run_dir: RunDir,
    steps_done: int = 0,
    show_progress: bool = True,
) -> None:
    """Train `config.steps` cross-entropy steps (from `steps_done` on), checkpointing as it goes.

    Metrics go to `<log_dir>/warm_start_metrics.jsonl` (one line per step, exactly once)."""
    from dataclasses import replace

    from tinker import types as tinker_types

    if steps_done >= config.steps:
        return
    train_ds, _ = config.dataset_builder(replace(ctx, groups_per_batch=config.batch_size))
    if len(train_ds) == 0:
        return
    log = MetricsLog(run_dir.path / "warm_start_metrics.jsonl")
    log.truncate_from(steps_done)
    adam = tinker_types.AdamParams(learning_rate=config.learning_rate)
    num_batches = len(train_ds)
    train_ds.set_epoch(steps_done // num_batches)
    with RunProgress(
        "warm start",
        config.steps,
        start_step=steps_done,
        headline=("loss",),
        enabled=show_progress,
    ) as progress:
        for step in range(steps_done, config.steps):
            t0 = time.perf_counter()
            if step % num_batches == 0 and step > steps_done:
                train_ds.set_epoch(step // num_batches)
            data_D = train_ds.get_batch(step % num_batches)
            fwd_bwd = training_client.forward_backward(data_D, "cross_entropy")
            optim = training_client.optim_step(adam)
            fwd_bwd_out = await fwd_bwd
            await optim
            weight_total = sum(
                float(np.sum(d.loss_fn_inputs["weights"].to_numpy())) for d in data_D
            )
            loss_sum = fwd_bwd_out.metrics.get("loss:sum", float("nan"))
            metrics = {
                "loss": loss_sum / max(weight_total, 1.0),
                "tokens": float(sum(d.model_input.length for d in data_D)),
                "time/step": time.perf_counter() - t0,
            }
            log.log(step, metrics)
            progress.update(step, metrics)
            if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
                await save_warm_start_checkpoint(training_client, run_dir, step + 1)


async def save_warm_start_checkpoint(
    training_client: TrainingClient, run_dir: RunDir, steps_done: int
) -> None:
    """Save weights + optimizer state as the RL step-0 checkpoint."""
    directory = run_dir.checkpoints.state_dir(0) / f"warm{steps_done:06d}"
    directory.mkdir(parents=True, exist_ok=True)
    state = await training_client.save_state(str(directory / "state"))
    run_dir.checkpoints.add(
        Checkpoint(step=0, state_path=state.path, extra={WARM_START_DONE: steps_done})
    )
