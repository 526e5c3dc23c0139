"""Learning-rate schedules shared by the SFT and RL loops: a function of the decay's progress,
which is the step's share of the run (so a resumed run continues the same curve) or, for RL runs
with `lr_schedule_by_time`, the larger of that and the share of the time limit already spent."""

from __future__ import annotations

import math
from typing import Literal, get_args

from cookbook.errors import UserError

LRSchedule = Literal["constant", "linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(LRSchedule)

LR_PROGRESS = "lr_progress"
"""Checkpoint `extra` key: the decay's progress at the checkpoint's last step (a resumed
`lr_schedule_by_time` run never goes back up the curve)."""


def schedule_check(schedule: str) -> tuple[bool, str]:
    """The (ok, message) pair config validators list for an `lr_schedule` value."""
    return schedule in SCHEDULES, f"lr_schedule={schedule!r} is not one of: {', '.join(SCHEDULES)}"


def step_progress(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """How far `step` (0-based) is along the decay that follows the warm-up, in [0, 1]."""
    decay_steps = max(total_steps - warmup_steps, 1)
    return min(max(step - warmup_steps, 0) / decay_steps, 1.0)


def decayed_rate(base_lr: float, schedule: LRSchedule, progress: float) -> float:
    """The learning rate at `progress` in [0, 1] of the decay (`constant` ignores it)."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return base_lr
    if schedule == "linear":
        return base_lr * (1.0 - progress)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise UserError(f"lr_schedule={schedule!r} is not one of: {', '.join(SCHEDULES)}")


def learning_rate_at(
    step: int, total_steps: int, base_lr: float, schedule: LRSchedule, warmup_steps: int = 0
) -> float:
    """The learning rate of `step` (0-based): linear warm-up over `warmup_steps`, then constant
    or a linear/cosine decay that reaches 0 after the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return decayed_rate(base_lr, schedule, step_progress(step, total_steps, warmup_steps))
