"""Run set-up shared by every loop (`cookbook rl`, `sft`, `eval`): the run directory opened and
checked, the service and training clients, the `BuildContext` builders get, where the starting
weights come from, and checkpoint save and load.

    check_model_name(config.model_name, config.backend)  # before anything heavy
    with start_run(config, config.log_dir, fresh=fresh, argv=argv, changeable=...) as run_dir:
        service = make_service(config.backend, config.device, config.base_url)
        training_client = make_starting_training_client(  # resumed, from a checkpoint or fresh
            service, config.model_name, config.lora_rank, seed, run_dir, config.load_checkpoint_path
        )
        ctx = build_context(config.model_name, training_client, seed=..., log_dir=run_dir.path)
        ...
        run_dir.start_steps(config, argv)  # the loop starts (not when already complete)
        await save_checkpoint(training_client, run_dir, step)  # SFT: asyncio.run(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.model_names import is_tiny_model
from cookbook.runs.checkpoints import Checkpoint, resolve_checkpoint
from cookbook.runs.run_dir import RunDir, RunLock, open_run_dir, os_errors_as_user_errors

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient, TrainingClient
    from cookbook.build_context import BuildContext

CHANGEABLE_ON_RESUME = frozenset(
    {
        "log_dir",
        "max_steps",
        "eval_every",
        "save_every",
        "evals",
        "show_progress",
        "base_url",
        "log_to",
    }
)
"""Config fields any resumed run may change: a moved run directory, a longer run, other eval and
checkpoint cadences, other evals (they do not touch the weights), the display, a server's
address, the trackers metrics are mirrored to. A loop adds its own (`cookbook.rl.train`: time limits, threads, env fault limits)."""


def start_run(
    config: object,
    log_dir: str | Path,
    *,
    fresh: bool = False,
    argv: list[str] | None = None,
    changeable: Collection[str] = CHANGEABLE_ON_RESUME,
) -> RunDir:
    """Lock `log_dir` for this process (one line naming the live run's pid when another holds
    it), open it for the run `config` describes (resuming what is there unless `fresh`), refuse
    to resume it with settings other than the stored ones (fields in `changeable` may differ),
    and write `config.json` of a new run (a resumed run's is rewritten by
    `RunDir.start_steps`). Every loop starts here; use the result as a context manager, which
    releases the lock at the end.

    A config with `log_to` (tracker names, `cookbook.trackers`) gets its metrics lines mirrored
    there from here on; `RunDir.close()` (or interpreter exit) closes the trackers."""
    from cookbook.trackers import parse_tracker_names

    log_to = parse_tracker_names(getattr(config, "log_to", None))  # a bad name fails first
    lock = RunLock.acquire(log_dir)
    try:
        run_dir = open_run_dir(log_dir, fresh=fresh)
        run_dir.lock = lock
        with os_errors_as_user_errors(run_dir.path):
            if run_dir.resume_from is not None:
                run_dir.check_resumable(config, changeable)
            else:
                run_dir.write_config(config, argv)
            if log_to:
                run_dir.open_trackers(log_to, config)
    except BaseException:
        lock.release()
        raise
    return run_dir


def check_model_name(model_name: str, backend: str) -> None:
    """A `UserError` for a model the local backend cannot load, before anything heavy runs:
    `tiny`/`tiny-DxL`, or a local directory (a Hugging Face model's, with its config.json).
    Names on the `tinker` backend are the server's to check."""
    if backend != "local" or is_tiny_model(model_name):
        return
    path = Path(model_name).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise UserError(
            f"model_name={model_name}: {what}; use model_name=tiny or a local Hugging Face "
            "model directory"
        )
    if not (path / "config.json").is_file():
        raise UserError(
            f"model_name={model_name} has no config.json; give a Hugging Face model directory "
            "(as save_pretrained writes it) or model_name=tiny"
        )


def make_service(backend: str, device: str | None, base_url: str | None = None) -> ServiceClient:
    """The service client of `backend`; `base_url` points the `tinker` backend at a server (a
    `cookbook serve` or another Tinker-compatible endpoint) when set."""
    from cookbook.backends import make_service_client

    return make_service_client(backend, device, base_url)


def make_training_client(
    service: ServiceClient, model_name: str, lora_rank: int, seed: int
) -> TrainingClient:
    """A LoRA training client (the tiny model trains all its weights); a model that cannot be
    loaded is a `UserError` saying what to pass instead."""
    try:
        # The SDK returns a future of the client (its use as the client is deprecated there).
        future = service.create_lora_training_client(
            base_model=model_name, rank=lora_rank, seed=seed
        )
        return future.result()
    except UserError:
        raise
    except (FileNotFoundError, OSError, ValueError) as e:
        raise UserError(
            f"cannot load model {model_name!r} ({e}); use model_name=tiny or a local Hugging Face "
            "model directory"
        ) from None


def build_context(
    model_name: str,
    training_client: TrainingClient,
    *,
    seed: int,
    group_size: int = 8,
    groups_per_batch: int = 16,
    log_dir: str | Path | None = None,
) -> BuildContext:
    """The context builders get: the client's tokenizer, the model's renderer, the run's seed
    and batch shape, and its log directory."""
    from cookbook.build_context import BuildContext

    return BuildContext.for_model(
        model_name,
        training_client.get_tokenizer(),
        seed=seed,
        group_size=group_size,
        groups_per_batch=groups_per_batch,
        log_dir=None if log_dir is None else str(log_dir),
    )


def make_starting_training_client(
    service: ServiceClient,
    model_name: str,
    lora_rank: int,
    seed: int,
    run_dir: RunDir,
    load_checkpoint_path: str | None,
) -> TrainingClient:
    """The run's training client, on the weights it starts from: its own newest checkpoint
    (weights and optimizer state, found again if the run directory was moved) when it resumes,
    else `load_checkpoint_path` (weights only: a new run keeps its own optimizer schedule), else
    the base model (`make_training_client`). A checkpoint makes a new client
    (`create_training_client_from_state[_with_optimizer]`; the SDK deprecates `load_state` on a
    client); the run's `seed` goes with it as user metadata, which the local backend reads as
    the client's seed (`cookbook/backends/local/service.py`)."""
    if run_dir.resume_from is not None:
        return checkpoint_training_client(
            service, run_dir.resume_from.state_path, seed, with_optimizer=True
        )
    state_path = None if load_checkpoint_path is None else resolve_checkpoint(load_checkpoint_path)
    return weights_training_client(service, model_name, lora_rank, seed, state_path)


def weights_training_client(
    service: ServiceClient, model_name: str, lora_rank: int, seed: int, state_path: str | None
) -> TrainingClient:
    """A training client on the weights of the checkpoint at `state_path` (weights only, a fresh
    optimizer), or on the base model when it is `None`: what `cookbook eval`, `play --against`
    and a new run from `load_checkpoint_path` start from."""
    if state_path is not None:
        return checkpoint_training_client(service, state_path, seed)
    return make_training_client(service, model_name, lora_rank, seed)


def checkpoint_training_client(
    service: ServiceClient, state_path: str, seed: int, with_optimizer: bool = False
) -> TrainingClient:
    """A training client made from the `save_state` checkpoint at `state_path`: its weights,
    and with `with_optimizer` its optimizer state and step count (an exact resume). A checkpoint
    that cannot be loaded is a `UserError`."""
    make = (
        service.create_training_client_from_state_with_optimizer
        if with_optimizer
        else service.create_training_client_from_state
    )
    try:
        return make(state_path, user_metadata={"seed": str(seed)}).result()
    except UserError:
        raise
    except (FileNotFoundError, OSError, ValueError) as e:
        raise UserError(f"cannot load checkpoint {state_path} ({e})") from None


async def save_checkpoint(
    training_client: TrainingClient,
    run_dir: RunDir,
    step: int,
    *,
    with_sampler: bool = True,
    subdir: str | None = None,
    extra: Mapping[str, float | int | str] | None = None,
) -> Checkpoint:
    """Save weights + optimizer state (and sampler weights) as the checkpoint to resume at
    `step`, and list it in the index once everything is written. `subdir` names a directory
    under the step's own (several saves at one step: the warm start's)."""
    directory = run_dir.checkpoints.state_dir(step)
    if subdir is not None:
        directory = directory / subdir
    directory.mkdir(parents=True, exist_ok=True)
    # Both saves are submitted before waiting on either: the backend runs them back to back.
    state = training_client.save_state(str(directory / "state"))
    sampler = (
        training_client.save_weights_for_sampler(str(directory / "sampler"))
        if with_sampler
        else None
    )
    try:
        state_path = (await state).path
    except BaseException:
        if sampler is not None:
            with contextlib.suppress(Exception):
                await sampler  # no write may go on after the error (a full disk, say)
        raise
    checkpoint = Checkpoint(
        step=step,
        state_path=state_path,
        sampler_path=None if sampler is None else (await sampler).path,
        extra=dict(extra or {}),
    )
    run_dir.checkpoints.add(checkpoint)
    return checkpoint
