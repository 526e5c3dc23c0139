"""`cookbook play`: a person plays the policy's side in the terminal. Driven here as a person
would: read the observation, type a reply; through a real subprocess's stdin (a whole game of
tic-tac-toe), or in this process with stdin and stdout that take turns the same way."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PROMPT = "your reply> "


def needs(package: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None, reason=f"{package} is not installed"
    )


def drive(
    args: list[str], answer: Callable[[str], str], timeout_s: float = 120.0
) -> tuple[int, str]:
    """Run `cookbook play ARGS`; at each prompt, type `answer(observation text)`. Returns the
    exit status and everything printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cookbook", "play", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    out = ""
    while time.monotonic() < deadline:
        char = proc.stdout.read(1)
        if not char:
            break
        out += char
        if out.endswith(PROMPT):
            observation = out.rsplit("--- observation", 1)[-1]
            proc.stdin.write(answer(observation) + "\n")
            proc.stdin.flush()
    proc.stdin.close()
    status = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    return status, out + proc.stderr.read()


class _Screen(io.StringIO):
    """`cookbook play`'s stdout, in this process: what it printed, waited on by `_Keyboard`."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.closed_by_test = False

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
        return written


class _Keyboard(io.TextIOBase):
    """`cookbook play`'s stdin, in this process: the next line comes only once a new prompt is
    on `screen`, and is `answer(the observation shown)`, as a person would type it."""

    def __init__(self, screen: _Screen, answer: Callable[[str], str], timeout_s: float) -> None:
        self.screen, self.answer, self.timeout_s = screen, answer, timeout_s
        self.answered = 0

    def readline(self, size: int | None = -1) -> str:
        screen = self.screen
        with screen.changed:
            prompted = screen.changed.wait_for(
                lambda: screen.closed_by_test or screen.getvalue().count(PROMPT) > self.answered,
                timeout=self.timeout_s,
            )
            if not prompted or screen.closed_by_test:
                return ""  # the end of input
            self.answered += 1
            observation = screen.getvalue().rsplit("--- observation", 1)[-1]
        return self.answer(observation) + "\n"


def drive_here(
    args: list[str],
    answer: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    timeout_s: float = 120.0,
) -> tuple[int, str]:
    """`drive`, in this process: `cookbook play ARGS` through `main`, its stdin and stdout
    taking turns like a person at a terminal."""
    from cookbook.cli import main as cookbook_main

    screen = _Screen()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stdin", _Keyboard(screen, answer, timeout_s))
    try:
        status = cookbook_main(["play", *args])
    finally:
        with screen.changed:  # the stdin reader (a daemon thread) sees the end of input
            screen.closed_by_test = True
            screen.changed.notify_all()
    return status, screen.getvalue() + capsys.readouterr().err


def _user_text(observation: str) -> str:
    """What the user turn of the tiny chat format says."""
    match = re.search(r"<\|user\|>(.*?)<\|eos\|>", observation, re.S)
    assert match is not None, observation
    return match.group(1)


def first_free_square(observation: str) -> str:
    """Tic-tac-toe's compact board lists the free squares as their digits."""
    return next(c for c in _user_text(observation) if c.isdigit())


@needs("cookbook_tictactoe")
def test_a_person_plays_a_whole_game_of_tictactoe() -> None:
    status, out = drive(["--env", "tictactoe", "--seed", "3"], first_free_square)
    assert status == 0, out
    assert out.startswith("tictactoe: you play the policy's side.")
    assert out.count(PROMPT) >= 3  # a game of at least three moves of ours
    assert "opponent_move:" in out  # the env's own opponent answered each move
    result = out.split("episode over\n")[-1]
    assert re.search(r"total reward -?\d", result)
    assert "illegal_move=0" in result and "game_length=" in result


@needs("cookbook_math")
def test_a_person_answers_an_arithmetic_problem(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (`drive_here`); the whole game of tic-tac-toe above goes through a real pipe."""

    def solve(observation: str) -> str:
        a, b = re.fullmatch(r"(\d+)\+(\d+)=", _user_text(observation)).groups()  # type: ignore[union-attr]
        return str(int(a) + int(b))

    status, out = drive_here(["--env", "arithmetic", "env.digits=1"], solve, capsys, monkeypatch)
    assert status == 0, out
    assert out.count(PROMPT) == 1
    assert "reward 1.1, episode over | metrics correct=1 format_ok=1" in out
    assert "total reward 1.1 (steps 1.1 + group 0)" in out


@needs("cookbook_tictactoe")
def test_against_a_checkpoint_it_plays_the_other_seat(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-process, with every square typed in turn: the game ends whatever the seeded policy
    on the other seat plays (an illegal move, ours or its, ends it too)."""
    from cookbook.backends import make_service_client
    from cookbook.cli import main as cookbook_main

    training = make_service_client("local").create_lora_training_client(base_model="tiny")
    state = training.save_state(str(tmp_path / "state")).result().path
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{i}\n" for i in (4, 0, 8, 2, 6))))
    args = ["--env", "tictactoe", "env.self_play=true", "group_size=2", "--against", state]
    assert cookbook_main(["play", *args]) == 0
    out = capsys.readouterr().out
    assert "of a group of 2 envs" in out
    assert "[env 1, the --against policy, replied:" in out
    assert "env 0: total reward" in out and "env 1: total reward" in out


@needs("cookbook_tictactoe")
def test_mistakes_and_quitting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cookbook.cli import main as cookbook_main

    checkpoint = tmp_path / "a-checkpoint"
    checkpoint.mkdir()
    (checkpoint / "meta.json").write_text("{}")  # looks like one: refused before loading

    whole_game = ["play", "--env", "tictactoe", "env.opening_plies=0"]  # from the empty board
    monkeypatch.setattr(sys, "stdin", io.StringIO("/quit\n"))
    assert cookbook_main(whole_game) == 1
    assert capsys.readouterr().out.rstrip().endswith("stopped: /quit")
    monkeypatch.setattr(sys, "stdin", io.StringIO("4\n"))  # the game needs more moves
    assert cookbook_main(whole_game) == 1
    assert "stopped: the input ended before the episode did" in capsys.readouterr().out
    for args, says in [
        (["--against", "/no/such/run"], "error: --against: load_checkpoint_path /no/such/run"),
        (["--against", str(checkpoint)], "--against plays the other seats of a game, but env"),
        (
            ["env.opponent=self"],
            "self-play (env.opponent with self or pool) needs an even group_size",
        ),
        (["env.opponnent=x"], "cookbook play: unknown key 'env.opponnent' (did you mean"),
    ]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        assert cookbook_main(["play", "--env", "tictactoe", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
