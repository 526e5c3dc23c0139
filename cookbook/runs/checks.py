"""Up-front checks of a loop's settings: run before anything heavy (no torch, no model, no run
directory), so a mistake costs a second and one `UserError` line, never a warm start.

    require(
        finite_numbers(config, "warm_start"),
        (config.learning_rate > 0, "learning_rate must be > 0"),
        ...
    )
    check_seed(config.seed)
    check_episodes_fit(config.group_size * config.groups_per_batch, "group_size x ...")
    check_start_inputs(config.model_name, config.backend, config.load_checkpoint_path, log_dir)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import chz

from cookbook.errors import UserError

MAX_SEED = 2**63 - 1
"""The largest seed every random generator of a run takes (torch's, numpy's, the samplers')."""

BYTES_PER_EPISODE = 64 * 1024
"""Memory an episode of a batch takes at the least (its tokens, logprobs, transitions and env
object; measured episodes of the tiny model's envs take more), for the batch-size bound."""

MAX_LORA_RANK = 4096
"""The largest LoRA rank accepted (a full-rank adapter of a 4096-wide layer)."""

Check = tuple[bool, str]
"""A condition that must hold, and the message when it does not."""


def require(*checks: Check | Iterable[Check]) -> None:
    """Raise `UserError` with the message of the first check that fails (a check, or an
    iterable of them as `finite_numbers` gives)."""
    for item in checks:
        group = [item] if isinstance(item, tuple) else item
        for ok, message in group:
            if not ok:
                raise UserError(message)


def finite_numbers(config: object, *nested: str) -> list[Check]:
    """One check per float of `config` (a loop's chz config): its own fields, the values of its
    float dicts (`loss_fn_config`), and the fields of the nested loop configs named in `nested`
    (`warm_start`). A plugin's builder (env, dataset, evals) is its own business: an option may
    mean something with `inf` there."""
    checks: list[Check] = []
    for name in chz.chz_fields(config):
        value = getattr(config, name)
        if name in nested and chz.is_chz(value):
            checks += [(ok, f"{name}.{message}") for ok, message in finite_numbers(value)]
        elif isinstance(value, Mapping):
            checks += [
                _finite(f"{name}.{key}", item) for key, item in value.items() if _is_number(item)
            ]
        elif _is_number(value):
            checks.append(_finite(name, value))
    return checks


def _is_number(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool)


def _finite(name: str, value: float) -> Check:
    return (
        isinstance(value, int) or math.isfinite(value),
        f"{name}={value} is not a finite number; give a value such as {name}=1e-3",
    )


def check_seed(seed: int) -> None:
    """A `UserError` for a seed outside what the random generators take (0 to 2**63 - 1)."""
    if not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed={seed} is out of range; use a whole number from 0 to {MAX_SEED}")


def check_lora_rank(rank: int) -> None:
    """A `UserError` for a LoRA rank below 1 or above `MAX_LORA_RANK`."""
    if not 1 <= rank <= MAX_LORA_RANK:
        raise UserError(
            f"lora_rank={rank} is out of range; use 1 to {MAX_LORA_RANK} (8-64 is usual)"
        )


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_episodes_fit(episodes: int, settings: str) -> None:
    """A `UserError` when a batch of `episodes` episodes (the product `settings` names) could not
    fit in this machine's memory even at `BYTES_PER_EPISODE` each."""
    memory = physical_memory()
    if memory is None or episodes * BYTES_PER_EPISODE <= memory:
        return
    limit = memory // BYTES_PER_EPISODE
    raise UserError(
        f"{settings} = {episodes} episodes per batch would not fit in this machine's "
        f"{memory / 2**30:.0f} GiB of memory (over {BYTES_PER_EPISODE // 1024} KiB each); keep "
        f"it under {limit}"
    )


def check_start_inputs(
    model_name: str,
    backend: str,
    load_checkpoint_path: str | None,
    log_dir: str | Path | None = None,
) -> None:
    """The model and starting weights exist (local backend): before any run directory is made
    and any model loads. `load_checkpoint_path` is not checked when `log_dir` holds a checkpoint
    already (the run resumes from its own; the path is not read again)."""
    from cookbook.runs.checkpoints import resolve_checkpoint
    from cookbook.runs.setup import check_model_name

    check_model_name(model_name, backend)
    if load_checkpoint_path is None:
        return
    if log_dir is not None and (Path(log_dir) / "checkpoints.json").exists():
        return
    resolve_checkpoint(load_checkpoint_path)
