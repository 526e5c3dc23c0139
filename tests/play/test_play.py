"""`cookbook play`: a person plays the policy's side in the terminal. Driven here as a person
would, through a real subprocess's stdin: read the observation, type a reply."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
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
def test_a_person_answers_an_arithmetic_problem() -> None:
    def solve(observation: str) -> str:
        a, b = re.fullmatch(r"(\d+)\+(\d+)=", _user_text(observation)).groups()  # type: ignore[union-attr]
        return str(int(a) + int(b))

    status, out = drive(["--env", "arithmetic", "env.digits=1"], solve)
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

    monkeypatch.setattr(sys, "stdin", io.StringIO("/quit\n"))
    assert cookbook_main(["play", "--env", "tictactoe"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("stopped: /quit")
    monkeypatch.setattr(sys, "stdin", io.StringIO("4\n"))  # the game needs more moves
    assert cookbook_main(["play", "--env", "tictactoe"]) == 1
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
