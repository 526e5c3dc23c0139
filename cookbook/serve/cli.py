"""`cookbook serve [--host H] [--port P] [--api-key KEY] [--device D] [--checkpoint-dir DIR]`."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
from pathlib import Path

from cookbook.errors import UserError

LOCALHOST = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cookbook serve",
        description=(
            "Serve the Tinker API over the local backend: the tinker SDK (and tinker-cookbook) "
            "train and sample here with TINKER_BASE_URL=http://HOST:PORT (or base_url=...) and "
            "TINKER_API_KEY=tml-local (any tml- key when the server checks none)"
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("COOKBOOK_SERVE_API_KEY"),
        help="require this key (X-API-Key, the SDK's TINKER_API_KEY); default: none on "
        "localhost, a generated one (printed) on other addresses; env COOKBOOK_SERVE_API_KEY",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    parser.add_argument(
        "--checkpoint-dir",
        default=str(Path.home() / ".cache" / "cookbook-serve"),
        help="where tinker:// checkpoints are kept (they outlive the server)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port; use 1-65535")
    api_key: str | None = args.api_key
    if api_key is None and args.host not in LOCALHOST:
        api_key = f"tml-{secrets.token_urlsafe(24)}"
        print("listening beyond localhost: clients need the API key below")
    if api_key is not None and not api_key.startswith("tml-"):
        raise UserError("--api-key must start with 'tml-' (the SDK sends only keys of that form)")
    serve(args.host, args.port, api_key, args.device, Path(args.checkpoint_dir).expanduser())
    return 0


def serve(host: str, port: int, api_key: str | None, device: str | None, root: Path) -> None:
    """Run the server until interrupted."""
    sockets = listen(host, port)  # before the heavy imports: a taken port fails at once
    from aiohttp import web

    from cookbook.backends.local.service import LocalServiceClient
    from cookbook.serve.app import make_app
    from cookbook.serve.state import ServerState

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root.mkdir(parents=True, exist_ok=True)
    service = LocalServiceClient(device=device, base_dir=root / "_bare")
    app = make_app(ServerState(service, root), api_key)
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    print(f"cookbook serve: Tinker API on {url} (checkpoints in {root})")
    key = api_key or "tml-local"  # the SDK sends only tml- keys; this server then checks none
    print(f"clients: export TINKER_BASE_URL={url} TINKER_API_KEY={key}", flush=True)
    web.run_app(app, sock=sockets, print=None, access_log=None, shutdown_timeout=5)


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address `host` resolves to (`localhost` may be IPv4 and 6);
    a `UserError` when one cannot be bound (the port is taken, the address is not ours)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: IPv6 sockets do not take IPv4
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets
