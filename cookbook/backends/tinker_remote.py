"""The `tinker` backend: the real `tinker.ServiceClient`, on the Tinker service or on any server
that speaks its API (`cookbook serve`).

The SDK retries an unreachable server for minutes and reports a bad key with a traceback, so
`make_tinker_service_client` first checks the key's form and sends one request with a short
timeout (the SDK's own first request, `POST /api/v1/client/config`): an unreachable server,
a refused key or a malformed one is one `UserError` line. The client returned is the SDK's own,
unwrapped: the loops use it as they use the local backend (`cookbook.backends.protocol`).
Checkpoint paths are the server's (`tinker://...`) and pass through untouched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient

PROBE_TIMEOUT_S = 5.0
"""How long the reachability check waits for the server before giving up."""


def resolve_base_url(base_url: str | None) -> str:
    """`base_url`, else `$TINKER_BASE_URL`, else the Tinker service (as the SDK resolves it)."""
    from tinker.lib.base_url import resolve_base_url as sdk_resolve

    return sdk_resolve(base_url)


def make_tinker_service_client(base_url: str | None = None) -> ServiceClient:
    """A `tinker.ServiceClient` on `base_url` (default: `$TINKER_BASE_URL`, else the Tinker
    service), after checking that the server answers and takes the API key."""
    url = resolve_base_url(base_url)
    key = _api_key()
    probe(url, key)
    import tinker

    return cast("ServiceClient", tinker.ServiceClient(base_url=url, api_key=key))


def _api_key() -> str | None:
    """`$TINKER_API_KEY`, checked for the form the SDK accepts; None when the SDK finds its own
    credentials (`$TINKER_CREDENTIAL_CMD` or a stored login)."""
    key = os.environ.get("TINKER_API_KEY", "").strip()
    if key:
        if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
            raise UserError(
                "TINKER_API_KEY holds characters no API key has (a space, a line break, a "
                "non-ASCII letter); check the value you exported"
            )
        if not key.startswith(("tml-", "eyJ")):
            raise UserError(
                "TINKER_API_KEY must start with 'tml-' (the form Tinker API keys have); "
                "check the value you exported"
            )
        return key
    if os.environ.get("TINKER_CREDENTIAL_CMD"):
        return None
    from tinker.lib.credentials import JsonCredentialStore, default_credentials_path

    if JsonCredentialStore(default_credentials_path()).get_default_key() is not None:
        return None
    raise UserError(
        "the tinker backend needs an API key: export TINKER_API_KEY=tml-... (for `cookbook "
        "serve` any tml- key it was started with), or use backend=local to train here"
    )


def probe(base_url: str, api_key: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One request to `base_url` with a short timeout; a `UserError` line when the server is not
    there, does not speak the Tinker API, or refuses the key."""
    import httpx
    from tinker._version import __version__ as sdk_version

    if not base_url.startswith(("http://", "https://")):
        raise UserError(f"base_url {base_url!r} is not an http(s) URL; give http://HOST:PORT")
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        response = httpx.post(
            f"{base_url.rstrip('/')}/api/v1/client/config",
            json={"sdk_version": sdk_version},
            headers=headers,
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise UserError(
            f"cannot reach a Tinker server at {base_url} ({type(exc).__name__}); check "
            "base_url / TINKER_BASE_URL, or start one with `cookbook serve`"
        ) from None
    if response.status_code in (401, 403):
        raise UserError(
            f"the Tinker server at {base_url} refused the API key (HTTP {response.status_code}); "
            "check TINKER_API_KEY"
        )
    if response.status_code >= 400 and response.status_code != 404:
        raise UserError(
            f"the server at {base_url} answered HTTP {response.status_code} to the Tinker API; "
            "is it a Tinker server?"
        )
