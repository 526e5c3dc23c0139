"""Backends: the tinker client API, run locally on PyTorch (`local`) or remotely (`tinker`).

`make_service_client` is the one door the loops use; it imports the chosen backend lazily so the
CLI stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient

BACKENDS = ("local", "tinker")


def make_service_client(backend: str = "local", device: str | None = None) -> ServiceClient:
    """A service client for `backend` (`local`: in-process PyTorch on `device`, default CUDA when
    present else CPU; `tinker`: the Tinker service, needs TINKER_API_KEY)."""
    if backend == "local":
        from cookbook.backends.local.service import LocalServiceClient

        return LocalServiceClient(device=device)
    if backend == "tinker":
        from cookbook.backends.tinker_remote import make_tinker_service_client

        return make_tinker_service_client()
    raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
