"""`backend=tinker` without a working server: `cookbook rl`, `sft` and `eval` each stop with one
line (nothing printed forever, no traceback, no run directory left behind) when nothing listens
on the port, when a server accepts and never answers, and when the API key is malformed."""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cookbook.backends import tinker_remote
from cookbook.cli import main as cookbook_main

COMMANDS = {
    "rl": ["rl", "--env", "fixture-letters"],
    "sft": ["sft", "--dataset", "fixture-sft"],
    "eval": ["eval", "--eval", "fixture-echo"],
}


def _args(command: str, url: str, place: Path) -> list[str]:
    where = f"output_path={place}/results.json" if command == "eval" else f"log_dir={place}"
    return [*COMMANDS[command], "backend=tinker", f"base_url={url}", where]


def _one_line(capsys: pytest.CaptureFixture[str], args: list[str], place: Path) -> str:
    status = cookbook_main(args)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not place.exists()  # checked before the run directory is made
    return err


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINKER_API_KEY", "tml-test")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_nothing_listening_is_one_line(
    rl_plugin: Path,
    api_key: None,
    closed_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    err = _one_line(capsys, _args(command, url, tmp_path / "out"), tmp_path / "out")
    assert f"cannot reach a Tinker server at {url} (ConnectError)" in err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_server_that_never_answers_is_one_line(
    rl_plugin: Path,
    api_key: None,
    silent_server: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    # The real probe, with a shorter wait than its 5 s default (the test waits three times).
    monkeypatch.setattr(
        tinker_remote, "probe", functools.partial(tinker_remote.probe, timeout_s=0.5)
    )
    url = f"http://127.0.0.1:{silent_server}"
    err = _one_line(capsys, _args(command, url, tmp_path / "out"), tmp_path / "out")
    assert f"cannot reach a Tinker server at {url} (ReadTimeout)" in err


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("garbage", "must start with 'tml-'"),
        ("tml-caf\u00e9", "characters no API key has"),
        ("tml-a\nb", "characters no API key has"),
        ("tml-a b", "characters no API key has"),
    ],
)
def test_a_malformed_key_is_one_line(
    rl_plugin: Path,
    silent_server: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    says: str,
) -> None:
    monkeypatch.setenv("TINKER_API_KEY", key)
    url = f"http://127.0.0.1:{silent_server}"
    for command in COMMANDS:
        err = _one_line(capsys, _args(command, url, tmp_path / "out"), tmp_path / "out")
        assert "TINKER_API_KEY" in err and says in err
