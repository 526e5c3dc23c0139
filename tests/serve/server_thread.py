"""`cookbook serve` on a background thread of the test process (a free localhost port)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from cookbook.backends.local.service import LocalServiceClient
from cookbook.serve.app import make_app
from cookbook.serve.state import ServerState


@contextmanager
def running_server(root: Path, api_key: str | None = None) -> Iterator[tuple[str, ServerState]]:
    """Yield the server's base URL and state; stop it afterwards."""
    state = ServerState(LocalServiceClient(device="cpu", base_dir=root / "_bare"), root)
    loop = asyncio.new_event_loop()
    ready: dict[str, object] = {}
    started = threading.Event()

    async def start() -> None:
        runner = web.AppRunner(make_app(state, api_key), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready["runner"] = runner
        ready["port"] = runner.addresses[0][1]
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="cookbook-serve-test", daemon=True)
    thread.start()
    assert started.wait(30), "the test server did not start"
    try:
        yield f"http://127.0.0.1:{ready['port']}", state
    finally:
        runner = ready["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
