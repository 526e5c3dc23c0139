"""Backends: the tinker client API, run locally on PyTorch (`local`) or remotely (`tinker`).

`make_service_client` is the one door the loops use; it imports the chosen backend lazily so the
CLI stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient

BACKENDS = ("local", "tinker")


def make_service_client(
    backend: str = "local", device: str | None = None, base_url: str | None = None
) -> ServiceClient:
    """A service client for `backend`: `local` runs in-process on `device` (default CUDA when
    present, else CPU); `tinker` is the real SDK client on `base_url` (default
    `$TINKER_BASE_URL`, else the Tinker service; `cookbook serve` is one such server), checked
    to answer before it is returned (needs TINKER_API_KEY)."""
    if backend == "local":
        if base_url is not None:
            raise UserError(
                f"base_url={base_url} is for backend=tinker (a Tinker server such as `cookbook "
                "serve`); drop it to train in-process, or add backend=tinker"
            )
        from cookbook.backends.local.service import LocalServiceClient

        return LocalServiceClient(device=device)
    if backend == "tinker":
        if device is not None:
            raise UserError(
                f"device={device} applies to backend=local; the Tinker server picks its own "
                "devices (`cookbook serve --device`)"
            )
        from cookbook.backends.tinker_remote import make_tinker_service_client

        return make_tinker_service_client(base_url)
    raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
