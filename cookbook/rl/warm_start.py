"""A short supervised phase before RL, on the env's registered warm-start dataset.

A randomly initialised tiny model almost never produces a well-formed answer, so RL from scratch
has no signal (the tiny model's measured learning curves are in plugins/math/README.md). A few
hundred `cross_entropy` steps on examples of the answer format fix that. The steps are those of
`cookbook sft` (`cookbook.supervised.train.train_steps`), at a constant learning rate. Checkpoints
of this phase are stored at RL step 0 with `warm_start_steps_done` in their `extra`, so a resumed
run continues where it stopped and never redoes a finished warm start.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import chz

from cookbook.runs.checkpoints import Checkpoint
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

    dataset: SupervisedDatasetBuilder = chz.field(meta_factory=None)
    """The dataset to fine-tune on (`cookbook rl`: the env's registered warm-start dataset, or
    the one named by `warm_start.dataset=NAME`; its options are `warm_start.dataset.KEY=VALUE`).
    No default to build: a warm start is set only when there is a dataset for it."""
    steps: int = 200
    """Optimiser steps (0 skips the phase)."""
    learning_rate: float = 3e-3
    """Adam learning rate of this phase."""
    batch_size: int = 64
    """Examples per batch (passed to the dataset builder as `groups_per_batch`)."""
    save_every: int = 100
    """Checkpoint every this many steps and at the end (0: only at the end)."""


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
    from tinker import types as tinker_types

    from cookbook.runs.setup import save_checkpoint
    from cookbook.supervised.train import train_steps

    if steps_done >= config.steps:
        return
    train_ds, _ = config.dataset(replace(ctx, groups_per_batch=config.batch_size))
    if len(train_ds) == 0:
        return
    log = run_dir.warm_start_metrics
    log.truncate_from(steps_done)
    adam = tinker_types.AdamParams(learning_rate=config.learning_rate)
    with RunProgress(
        "warm start",
        config.steps,
        start_step=steps_done,
        headline=("train/loss",),
        enabled=show_progress,
    ) as progress:
        for step, metrics in train_steps(
            training_client,
            train_ds,
            start_step=steps_done,
            end_step=config.steps,
            adam_params_at=lambda _: adam,
        ):
            log.log(step, metrics)
            progress.update(step, metrics)
            done = step + 1
            if done == config.steps or (config.save_every and done % config.save_every == 0):
                # Weights + optimizer state, as the RL step-0 checkpoint.
                await save_checkpoint(
                    training_client,
                    run_dir,
                    0,
                    with_sampler=False,
                    subdir=f"warm{done:06d}",
                    extra={WARM_START_DONE: done},
                )
