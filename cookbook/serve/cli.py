"""`cookbook serve [--host H] [--port P] [--api-key KEY] [--device D] [--checkpoint-dir DIR]`."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from pathlib import Path

from cookbook.errors import UserError

LOCALHOST = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cookbook serve",
        description=(
            "Serve the Tinker API over the local backend: the tinker SDK (and tinker-cookbook) "
            "train and sample here with base_url=http://HOST:PORT and any TINKER_API_KEY=tml-..."
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
        print(f"listening beyond localhost: clients need TINKER_API_KEY={api_key}")
    if api_key is not None and not api_key.startswith("tml-"):
        raise UserError("--api-key must start with 'tml-' (the SDK sends only keys of that form)")
    serve(args.host, args.port, api_key, args.device, Path(args.checkpoint_dir).expanduser())
    return 0


def serve(host: str, port: int, api_key: str | None, device: str | None, root: Path) -> None:
    """Run the server until interrupted."""
    from aiohttp import web

    from cookbook.backends.local.service import LocalServiceClient
    from cookbook.serve.app import make_app
    from cookbook.serve.state import ServerState

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root.mkdir(parents=True, exist_ok=True)
    service = LocalServiceClient(device=device, base_dir=root / "_bare")
    app = make_app(ServerState(service, root), api_key)
    print(f"cookbook serve: Tinker API on http://{host}:{port} (checkpoints in {root})")
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=5)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
