"""Checkpoints on local disk: a directory with `meta.json`, `weights.pt` and, for training
state, `optimizer.pt`.

A name with a path separator (or an absolute path) is used as is; a bare name goes under the
service client's base directory (`state/NAME` or `sampler_weights/NAME`, so the two kinds never
collide). Writes are atomic: everything goes to a temporary sibling directory that is renamed
into place, so a crash leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

from cookbook.errors import UserError

FORMAT = "cookbook-local/1"
STATE = "state"
SAMPLER = "sampler_weights"


def resolve_path(name: str, base_dir: Path, kind: str) -> Path:
    """Where checkpoint `name` of `kind` (`state` or `sampler_weights`) goes."""
    if not name or name in (".", ".."):
        raise UserError(f"bad checkpoint name {name!r}; give a name like '000010' or a path")
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    if os.path.isabs(name) or any(s in name for s in seps):
        return Path(name).expanduser().absolute()
    return (base_dir / kind / name).absolute()


def write_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp_dir)` and move `tmp_dir` to `final`, replacing an older `final`."""
    if final.exists() and not final.is_dir():
        raise UserError(f"cannot save a checkpoint at {final}: a file is in the way")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as exc:
        full = isinstance(exc, RuntimeError) and _out_of_space(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:  # torch.save reports a full disk as an opaque RuntimeError
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final)) from exc
        raise


def _out_of_space(directory: Path) -> bool:
    """Whether the filesystem of `directory` is (about) full: under 1 MiB left."""
    try:
        stats = os.statvfs(directory)
    except (OSError, AttributeError):
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20


def save_checkpoint(
    final: Path,
    meta: dict[str, object],
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, object] | None,
) -> None:
    """Write one checkpoint directory atomically."""

    def write(tmp: Path) -> None:
        torch.save(weights, tmp / "weights.pt")
        if optimizer is not None:
            torch.save(optimizer, tmp / "optimizer.pt")
        full_meta = {"format": FORMAT, **meta}
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1) + "\n")

    write_atomically(final, write)


def read_meta(path: str) -> tuple[Path, dict[str, object]]:
    """The checkpoint directory and its metadata (one-line UserError when it is not one)."""
    directory = Path(path).expanduser()
    meta_file = directory / "meta.json"
    if not meta_file.is_file():
        raise UserError(f"no local checkpoint at {path!r} (no meta.json); give a saved path")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"unreadable checkpoint metadata {meta_file}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path!r} is not a cookbook local checkpoint ({FORMAT})")
    return directory, meta


def load_weights(directory: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint, on `device`."""
    state = torch.load(directory / "weights.pt", map_location=device, weights_only=True)
    if not isinstance(state, dict):
        raise UserError(f"{directory}/weights.pt is not a weights file")
    return state


def load_optimizer(directory: Path, device: torch.device) -> dict[str, object]:
    """The optimizer state of a `save_state` checkpoint."""
    file = directory / "optimizer.pt"
    if not file.is_file():
        raise UserError(
            f"{directory} has no optimizer state (sampler weights?); load a save_state path"
        )
    state = torch.load(file, map_location=device, weights_only=True)
    if not isinstance(state, dict):
        raise UserError(f"{file} is not an optimizer state file")
    return state
