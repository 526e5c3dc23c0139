"""`LocalRestClient`: the part of `tinker.RestClient` that training loops use, on local files.

tinker-cookbook reads a checkpoint's training run (`get_training_run_by_tinker_path`, for the
renderer name in its metadata) when it resumes, and deletes superseded rolling checkpoints
(`delete_checkpoint_from_tinker_path`). Locally a "tinker path" is the checkpoint directory a
save returned; its `meta.json` records the run. Methods return futures, as the SDK's do;
a path that is not a local checkpoint gives a `ValueError` through the future (a `tinker://`
path lives on a Tinker server: use `cookbook serve` or the service for those).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Future as ConcurrentFuture
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from tinker import types

from cookbook.backends.local import checkpoints
from cookbook.backends.local.worker import LocalFuture
from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.local.training import LocalTrainingClient

T = TypeVar("T")


class CheckpointNotFoundError(UserError, ValueError):
    """The path is not a local checkpoint (or the run id is not known)."""


class LocalRestClient:
    """Training runs and checkpoints of one `LocalServiceClient`."""

    def __init__(self, runs: Mapping[str, LocalTrainingClient]) -> None:
        self._runs = runs

    def get_training_run(
        self,
        training_run_id: types.ModelID,
        access_scope: Literal["owned", "accessible"] = "owned",
    ) -> LocalFuture[types.TrainingRun]:
        """A run of this service client, by its model id."""

        def find() -> types.TrainingRun:
            client = self._runs.get(training_run_id)
            if client is None:
                raise CheckpointNotFoundError(
                    f"no training run {training_run_id!r} in this process; read a checkpoint's "
                    "run with get_training_run_by_tinker_path(path)"
                )
            info = client.get_info()
            return types.TrainingRun(
                training_run_id=training_run_id,
                base_model=info.model_data.model_name or "",
                model_owner="local",
                is_lora=bool(info.is_lora),
                lora_rank=info.lora_rank,
                last_request_time=datetime.now(UTC),
                user_metadata=dict(client.user_metadata) or None,
            )

        return _settled(find)

    async def get_training_run_async(
        self,
        training_run_id: types.ModelID,
        access_scope: Literal["owned", "accessible"] = "owned",
    ) -> types.TrainingRun:
        """`await get_training_run(...)`."""
        return await self.get_training_run(training_run_id, access_scope)

    def get_training_run_by_tinker_path(
        self, tinker_path: str, access_scope: Literal["owned", "accessible"] = "owned"
    ) -> LocalFuture[types.TrainingRun]:
        """The run that saved the checkpoint at `tinker_path` (a local checkpoint directory)."""
        return _settled(lambda: training_run_of(tinker_path))

    async def get_training_run_by_tinker_path_async(
        self, tinker_path: str, access_scope: Literal["owned", "accessible"] = "owned"
    ) -> types.TrainingRun:
        """`await get_training_run_by_tinker_path(...)`."""
        return await self.get_training_run_by_tinker_path(tinker_path, access_scope)

    def delete_checkpoint_from_tinker_path(self, tinker_path: str) -> LocalFuture[None]:
        """Delete the checkpoint directory at `tinker_path` (only a cookbook checkpoint)."""

        def delete() -> None:
            directory, _ = _read(tinker_path)
            shutil.rmtree(directory)

        return _settled(delete)

    async def delete_checkpoint_from_tinker_path_async(self, tinker_path: str) -> None:
        """`await delete_checkpoint_from_tinker_path(...)`."""
        await self.delete_checkpoint_from_tinker_path(tinker_path)

    def get_server_capabilities(self) -> LocalFuture[types.GetServerCapabilitiesResponse]:
        """The models this backend serves."""
        from cookbook.backends.local.service import server_capabilities

        return _settled(server_capabilities)


def training_run_of(path: str, run_id: str | None = None) -> types.TrainingRun:
    """The `TrainingRun` recorded in the checkpoint at `path` (`run_id` overrides the id it
    records, for servers that name runs themselves)."""
    _, meta = _read(path)
    lora = meta.get("lora")
    rank = lora.get("rank") if isinstance(lora, dict) else None
    run_meta = meta.get("run_user_metadata")
    saved_at = meta.get("saved_at")
    when = (
        datetime.fromtimestamp(saved_at, UTC)
        if isinstance(saved_at, int | float)
        else datetime.now(UTC)
    )
    return types.TrainingRun(
        training_run_id=run_id or str(meta.get("model_id") or path),
        base_model=str(meta.get("base_model", "")),
        model_owner="local",
        is_lora=isinstance(lora, dict),
        lora_rank=rank if isinstance(rank, int) else None,
        last_request_time=when,
        user_metadata=(
            {str(k): str(v) for k, v in run_meta.items()} if isinstance(run_meta, dict) else None
        ),
    )


def _read(path: str) -> tuple[Path, dict[str, object]]:
    try:
        return checkpoints.read_meta(path)
    except UserError as exc:
        raise CheckpointNotFoundError(str(exc)) from None


def _settled(compute: Callable[[], T]) -> LocalFuture[T]:
    """A finished future of `compute()`'s value or exception."""
    done: ConcurrentFuture[T] = ConcurrentFuture()
    try:
        done.set_result(compute())
    except Exception as exc:  # delivered through the future, as the SDK does
        done.set_exception(exc)
    return LocalFuture(done)
