"""The `tinker` backend: the real `tinker.ServiceClient`, on the Tinker service or on any server
that speaks its API (`cookbook serve`).

The SDK retries an unreachable server for minutes and reports a bad key with a traceback, so
`make_tinker_service_client` first checks the key's form and sends one request with a short
timeout (the SDK's own first request, `POST /api/v1/client/config`): an unreachable server,
a refused key or a malformed one is one `UserError` line. The client returned is the SDK's own,
unwrapped: the loops use it as they use the local backend (`cookbook.backends.protocol`).
Checkpoint paths are the server's (`tinker://...`) and pass through untouched.

A server that goes away mid-run would leave the program waiting for ever (the SDK retries a
pending result without end), so while the client lives a watchdog thread asks the server's
`/api/v1/healthz` every `WATCH_EVERY_S`; once it has not answered for `GONE_AFTER_S`, the main
thread gets `ServerGoneError` (a `UserError`: the CLI prints one line) wherever it waits.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import ServiceClient

PROBE_TIMEOUT_S = 5.0
"""How long the reachability check waits for the server before giving up."""
WATCH_EVERY_S = 5.0
"""How often the watchdog asks a live client's server whether it still answers."""
GONE_AFTER_S = 60.0
"""How long the server may not answer before the run stops with `ServerGoneError`."""
STOP_SIGNAL = signal.SIGUSR1
"""The signal that wakes the main thread to raise `ServerGoneError` (its handler is installed
by the first `make_tinker_service_client` on the main thread, chained to any earlier one)."""


class ServerGoneError(UserError):
    """The Tinker server stopped answering in the middle of a run."""


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

    client = tinker.ServiceClient(base_url=url, api_key=key)
    watch(url, client)
    return cast("ServiceClient", client)


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


_gone: list[ServerGoneError] = []
"""The error the stop signal raises (set by the watchdog just before it sends the signal)."""
_previous_handler: Callable[[int, FrameType | None], object] | int | None = None
_handler_installed = False


def watch(base_url: str, client: object) -> bool:
    """Start the watchdog of `base_url` for as long as `client` lives and is not closed; False
    when it cannot be started (off the main thread, where no signal handler can be installed)."""
    global _previous_handler, _handler_installed
    if threading.current_thread() is not threading.main_thread():
        return False
    if not _handler_installed:
        _previous_handler = signal.signal(STOP_SIGNAL, _on_stop_signal)
        _handler_installed = True
    thread = threading.Thread(
        target=_watch,
        args=(base_url, weakref.ref(client), threading.main_thread().ident),
        name="cookbook-tinker-watchdog",
        daemon=True,
    )
    thread.start()
    return True


def _watch(base_url: str, client: weakref.ref[object], main_thread: int | None) -> None:
    import httpx

    failing_since: float | None = None
    with httpx.Client(timeout=PROBE_TIMEOUT_S) as http:
        while _live(client):
            time.sleep(WATCH_EVERY_S)
            try:
                http.get(f"{base_url.rstrip('/')}/api/v1/healthz")  # any answer: it is there
                failing_since = None
                continue
            except httpx.TransportError as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                if time.monotonic() - failing_since < GONE_AFTER_S or not _live(client):
                    continue
                _gone.append(
                    ServerGoneError(
                        f"the Tinker server at {base_url} stopped answering ({type(exc).__name__} "
                        f"for {GONE_AFTER_S:g} s), so the run stopped; check the server (start "
                        "it again with `cookbook serve`) and rerun"
                    )
                )
                if main_thread is not None:
                    signal.pthread_kill(main_thread, STOP_SIGNAL)
                return


def _live(client: weakref.ref[object]) -> bool:
    """The client still exists and was not closed (`ServiceClient.close()`, or its `with`)."""
    alive = client()
    return alive is not None and not getattr(alive, "_closed", False)


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    if _gone:
        raise _gone.pop()
    if callable(_previous_handler):
        _previous_handler(signum, frame)
