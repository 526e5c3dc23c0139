"""Learning-rate schedules shared by the SFT and RL loops: a function of the step alone, so a
resumed run continues the same curve."""

from __future__ import annotations

import math
from typing import Literal, get_args

from cookbook.errors import UserError

LRSchedule = Literal["constant", "linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(LRSchedule)


def schedule_check(schedule: str) -> tuple[bool, str]:
    """The (ok, message) pair config validators list for an `lr_schedule` value."""
    return schedule in SCHEDULES, f"lr_schedule={schedule!r} is not one of: {', '.join(SCHEDULES)}"


def learning_rate_at(
    step: int, total_steps: int, base_lr: float, schedule: LRSchedule, warmup_steps: int = 0
) -> float:
    """The learning rate of `step` (0-based): linear warm-up over `warmup_steps`, then constant
    or a linear/cosine decay that reaches 0 after the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    if schedule == "linear":
        return base_lr * (1.0 - progress)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise UserError(f"lr_schedule={schedule!r} is not one of: {', '.join(SCHEDULES)}")
