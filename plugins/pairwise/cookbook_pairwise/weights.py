"""Where a judge's or a reference policy's weights come from, and their sampling clients.

A weights reference is one of:
- a run directory (it has `checkpoints.json`): its newest checkpoint (sampler weights if saved,
  else the training state);
- a checkpoint directory saved by the local backend (it has `meta.json`);
- a base model: `tiny` / `tiny-DxL` (initialised from the seed) or a local Hugging Face directory.

On a Tinker server (`backend=tinker`: the Tinker service, or `cookbook serve`) a reference is
instead a `tinker://` path, a run directory trained there (its newest checkpoint), or a base model
name the server hosts (`remote_weights`).

`start_of_run` finds the weights a run started from (after its warm start), the default reference
of the `pairwise-win-rate` eval. Sampling clients are made once per process, backend, server and
weights (every group of a run shares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient


@dataclass(frozen=True)
class Weights:
    """Saved weights (`model_path`) or a base model (`base_model` with its `seed`)."""

    model_path: str | None = None
    base_model: str | None = None
    seed: int = 0

    def describe(self) -> str:
        """One line for logs and errors."""
        if self.model_path is not None:
            return self.model_path
        return f"base model {self.base_model} (seed {self.seed})"


def _relocated(run_dir: Path, path: str) -> str:
    """A checkpoint path listed in a run's index, found again under the run directory when the run
    was moved (the index stores the paths the backend returned when saving)."""
    if Path(path).exists():
        return path
    parts = Path(path).parts
    if "checkpoints" in parts:
        last = len(parts) - 1 - parts[::-1].index("checkpoints")
        moved = run_dir.joinpath(*parts[last:])
        if moved.exists():
            return str(moved)
    return path


def _is_run_dir(path: Path) -> bool:
    """A run's log directory: a checkpoint index, or the `config.json` a run writes (which, unlike
    a Hugging Face model's, records the command)."""
    if not path.is_dir():
        return False
    if (path / "checkpoints.json").is_file():
        return True
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "command" in data and "config" in data


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "meta.json").is_file()


def latest_weights(run_dir: Path) -> str:
    """The newest checkpoint of a run: its sampler weights if saved, else its training state."""
    from cookbook.runs.checkpoints import CheckpointIndex

    try:
        latest = CheckpointIndex(run_dir).latest()
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"{run_dir}/checkpoints.json is unreadable ({e})") from None
    if latest is None:
        raise UserError(f"run {run_dir} has no checkpoint yet; train longer or give a checkpoint")
    return _relocated(run_dir, latest.sampler_path or latest.state_path)


def resolve_weights(ref: str, seed: int = 0) -> Weights:
    """The weights `ref` names (a run directory, a checkpoint, or a base model name/directory)."""
    path = Path(ref).expanduser()
    if _is_run_dir(path):
        return Weights(model_path=latest_weights(path))
    if _is_checkpoint(path):
        return Weights(model_path=str(path))
    if ref.startswith("tiny") or (path.is_dir() and (path / "config.json").is_file()):
        return Weights(base_model=ref, seed=seed)
    if path.exists():
        raise UserError(
            f"{ref} is neither a run directory (no checkpoints.json), a checkpoint (no meta.json) "
            "nor a Hugging Face model directory (no config.json)"
        )
    raise UserError(
        f"no weights at {ref!r}: give a run directory, a checkpoint directory, tiny, or a local "
        "Hugging Face model directory"
    )


def remote_weights(ref: str) -> Weights:
    """The weights `ref` names on a Tinker server: a `tinker://` path, a run directory trained
    there (its newest checkpoint), or the name of a base model the server hosts."""
    if ref.startswith("tinker://"):
        return Weights(model_path=ref)
    path = Path(ref).expanduser()
    if _is_run_dir(path):
        latest = latest_weights(path)
        if not latest.startswith("tinker://"):
            raise UserError(
                f"run {ref} was trained on the local backend (its checkpoints are files here, not "
                "on a Tinker server); judge with it using backend=local"
            )
        return Weights(model_path=latest)
    if _is_checkpoint(path):
        raise UserError(
            f"{ref} is a local checkpoint, which a Tinker server cannot load; use backend=local, "
            "or a tinker:// path"
        )
    return Weights(base_model=ref)


def _run_config(run_dir: Path) -> dict[str, object]:
    """The `config` part of a run's `config.json`."""
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run directory (no config.json)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{run_dir}/config.json is unreadable ({e})") from None
    config = data.get("config", data) if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise UserError(f"{run_dir}/config.json holds no run config")
    return config


def start_of_run(run_dir: str | Path) -> Weights:
    """The weights run `run_dir` started training from.

    In order: the frozen starting policy an RL run saved for its KL penalty (`reference.json`);
    the end of its warm start (its step-0 checkpoint); the checkpoint it was started from
    (`load_checkpoint_path`); its base model at its seed."""
    run = Path(run_dir).expanduser()
    reference = run / "reference.json"
    if reference.is_file():
        try:
            saved = json.loads(reference.read_text(encoding="utf-8"))["sampler_path"]
            return Weights(model_path=_relocated(run, str(saved)))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # fall through to the other records
    from cookbook.runs.checkpoints import CheckpointIndex

    try:
        at_start = [c for c in CheckpointIndex(run).all() if c.step == 0]
    except (OSError, ValueError, TypeError):
        at_start = []
    if at_start:
        return Weights(model_path=_relocated(run, at_start[-1].state_path))
    config = _run_config(run)
    loaded = config.get("load_checkpoint_path")
    seed = config.get("seed", 0)
    seed = seed if isinstance(seed, int) else 0
    if isinstance(loaded, str) and loaded:
        weights = resolve_weights(loaded, seed)
        return weights
    model = config.get("model_name", "tiny")
    return Weights(base_model=model if isinstance(model, str) else "tiny", seed=seed)


_clients: dict[tuple[Weights, str, str | None], tuple[SamplingClient, str]] = {}


def sampling_client(
    weights: Weights, backend: str = "local", base_url: str | None = None
) -> SamplingClient:
    """A sampling client for `weights`, made once per process (see `sampler`)."""
    return sampler(weights, backend, base_url)[0]


def sampler(
    weights: Weights, backend: str = "local", base_url: str | None = None
) -> tuple[SamplingClient, str]:
    """A sampling client for `weights` and the name of its base model, made once per process:
    in-process (`local`), or on the Tinker server at `base_url` (`tinker`; default
    `$TINKER_BASE_URL`, else the Tinker service), which is checked to answer first (one
    `UserError` line when it does not)."""
    key = (weights, backend, base_url)
    made = _clients.get(key)
    if made is None:
        made = _local_client(weights) if backend == "local" else _remote_client(weights, base_url)
        _clients[key] = made
    return made


def _local_client(weights: Weights) -> tuple[SamplingClient, str]:
    from cookbook.backends import make_service_client

    service = make_service_client("local")
    name = weights.base_model or weights.model_path or "tiny"
    if weights.model_path is not None:
        return service.create_sampling_client(model_path=weights.model_path).result(), name
    # The local service takes a seed for base models (the tiny model's initialisation).
    from cookbook.backends.local.service import LocalServiceClient

    assert isinstance(service, LocalServiceClient)
    client = service.create_sampling_client(base_model=weights.base_model, seed=weights.seed)
    return client, name


def _remote_client(weights: Weights, base_url: str | None) -> tuple[SamplingClient, str]:
    import tinker

    from cookbook.runs.setup import make_service

    service = make_service("tinker", None, base_url)
    try:
        if weights.model_path is not None:
            client = service.create_sampling_client(model_path=weights.model_path).result()
        else:
            client = service.create_sampling_client(base_model=weights.base_model).result()
    except tinker.APIError as e:
        raise UserError(
            f"the Tinker server cannot sample from {weights.describe()} ({e}); give a model it "
            "hosts or a tinker:// path it saved"
        ) from None
    # The tinker backend hands out the SDK's own clients, which know the base model of a
    # tinker:// path (the server told them).
    return client, cast("tinker.SamplingClient", client).get_base_model()
