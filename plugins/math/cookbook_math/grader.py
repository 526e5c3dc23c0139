"""Grading model answers: a fast exact path in-process, a symbolic path in a killable worker.

Model output is hostile input. Nothing here evaluates it:

- plain numbers (`68`, `-3.5`, `1,234`, `7/2`, `\\frac{7}{2}`, `1e3`) are compared exactly as
  `Fraction`s in-process (`cookbook_math.answers`), in microseconds;
- anything else (`2\\sqrt{3}`, `x+1`, sets, intervals) goes to math-verify's LaTeX parser in a
  separate worker process (`_symbolic_worker.py`) that is killed when a call overruns its time
  limit (and restarted in the background), so a parser-hanging or memory-eating answer costs at
  most `timeout_s` and is graded wrong.

Time is budgeted per call: `timeout_s` runs from the moment the call is made and covers the wait
for a free worker too, so a batch of hostile answers costs at most its timeout however many there
are (those no worker could take in time are graded wrong), and a killed worker restarts in the
background, never inside a call. The pool has a worker per core (4 to 8). The first call waits
for one worker to start (a few seconds of imports, the only wait not counted); the others start
in the background.

Use `grade_response_async` from async code (env steps): the fast path runs inline, the
symbolic path in a thread so the event loop keeps running.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import queue
import re
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeAlias

from cookbook.errors import UserError
from cookbook_math.answers import (
    MAX_ANSWER_CHARS,
    MAX_NESTING,
    AnswerMode,
    extract_answer,
    is_well_formed,
    nesting_depth,
    normalize_answer,
    parse_number,
)

DEFAULT_TIMEOUT_S = 3.0
"""Time limit of one symbolic comparison (the worker is killed past it)."""
STARTUP_TIMEOUT_S = 120.0
"""How long a fresh worker may take to import sympy and math-verify (slow on busy machines)."""
DEFAULT_NUM_WORKERS = min(8, max(4, os.cpu_count() or 4))
"""Symbolic workers in the process-wide pool: a hostile answer keeps one busy up to its whole
timeout, so a few per core keep honest answers of the same batch flowing."""
MAX_EXPONENT = 1000
"""Largest power of ten the exact path reads in `1e3` notation (beyond: not a plain number)."""

Verdict: TypeAlias = Literal["equal", "different", "timeout", "error"]

_WORKER_SCRIPT = Path(__file__).with_name("_symbolic_worker.py")


class SymbolicWorker:
    """One worker process, started on first use and restarted after a timeout or crash.

    Not thread-safe: `SymbolicGrader` hands each worker to one thread at a time.
    """

    def __init__(self, script: Path = _WORKER_SCRIPT) -> None:
        self.script = script
        """The worker program (the real one unless a test stands in a misbehaving one)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._next_id = 0
        self.restarts = 0
        """How many times the process was killed for overrunning or died (for tests, metrics)."""

    def start(self) -> None:
        """Make sure a live process is ready (a fresh one if the last one died or was killed);
        `UserError` when it cannot start."""
        if self.alive:
            return
        if self._proc is not None:
            self.restarts += 1
            self.kill()
        self._start()

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> subprocess.Popen[bytes]:
        # -I: isolated mode, nothing from the current directory or PYTHON* variables is imported.
        proc = subprocess.Popen(
            [sys.executable, "-I", str(self.script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),
        )
        self._proc, self._buffer = proc, b""
        line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        message = _json_object(line)
        if not message.get("ready"):
            self.kill()
            error = message.get("error", "it did not start in time")
            raise UserError(
                f"the math grader's worker failed to start ({error}); "
                "install the grading library with `pip install math-verify`"
            )
        return proc

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the worker, or None at the deadline or when it died."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        # A selector, not select.select: that refuses descriptors >= 1024, which a process
        # holding many files (a long test session, a server) reaches.
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    @property
    def pid(self) -> int | None:
        """The running process's id (None before the first call or after a kill)."""
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """Stop the process now (the next call starts a fresh one)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                # stdin may still hold a request the dead process never read: closing flushes
                # it and raises BrokenPipeError, after closing the pipe all the same.
                with contextlib.suppress(OSError):
                    stream.close()

    def compare(self, gold: str, pred: str, timeout_s: float) -> Verdict:
        """Whether `pred` equals `gold` symbolically; `timeout` if it took over `timeout_s`.

        A worker found dead (killed from outside, crashed on an earlier input) is replaced and
        the request sent once more, so an honest answer is not marked wrong for it.
        """
        verdict = self._attempt(gold, pred, timeout_s)
        if verdict == "died":
            verdict = self._attempt(gold, pred, timeout_s)
        return "error" if verdict == "died" else verdict

    def _attempt(self, gold: str, pred: str, timeout_s: float) -> Verdict | Literal["died"]:
        self.start()
        return self.send(gold, pred, timeout_s)

    def send(self, gold: str, pred: str, timeout_s: float) -> Verdict | Literal["died"]:
        """One request to the running process (call `start` first): its verdict, `timeout`
        (the process is then killed) or `died`."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return "died"
        assert proc.stdin is not None
        self._next_id += 1
        request = {
            "id": self._next_id,
            "gold": gold,
            "pred": pred,
            "soft_timeout_s": 0.7 * timeout_s,
        }
        deadline = time.monotonic() + timeout_s
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except OSError:  # BrokenPipeError included: it died before reading
            self.restarts += 1
            self.kill()
            return "died"
        line = self._read_line(deadline)
        if line is None:
            # Overran (stuck in C code) or died: either way, a fresh process next time.
            self.restarts += 1
            self.kill()
            return "timeout" if time.monotonic() >= deadline else "died"
        reply = _json_object(line)
        verdict = reply.get("verdict")
        if reply.get("id") != self._next_id:
            return "error"
        if verdict == "equal" or verdict == "different" or verdict == "timeout":
            return verdict
        return "error"


def _json_object(line: bytes | None) -> dict[str, object]:
    """The JSON object on `line`, or an empty dict for nothing or garbage."""
    try:
        value = json.loads(line) if line else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SymbolicGrader:
    """A pool of `SymbolicWorker`s shared by all threads of the process, with a time budget per
    call (see the module docstring)."""

    def __init__(self, num_workers: int = DEFAULT_NUM_WORKERS) -> None:
        self._owner_pid = os.getpid()
        self.workers = [SymbolicWorker() for _ in range(num_workers)]
        # Last in, first out: calls one after another keep using the same worker.
        self._idle: queue.LifoQueue[SymbolicWorker] = queue.LifoQueue()
        self._warm = threading.Event()
        self._warming = threading.Lock()

    def compare(self, gold: str, pred: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
        """Compare on the next free worker within `timeout_s` from now, the wait for a worker
        included (`timeout` when none was free in time). A worker found dead is replaced in the
        background and the request goes to another, once. The first call waits for the first
        worker to start (not billed)."""
        self._warm_up()
        deadline = time.monotonic() + timeout_s
        for _ in range(2):
            try:
                worker = self._idle.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return "timeout"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._idle.put(worker)
                return "timeout"
            verdict = worker.send(gold, pred, remaining)
            if worker.alive:
                self._idle.put(worker)
            else:
                self._restart_later(worker)
            if verdict != "died":
                return verdict
        return "error"

    def _warm_up(self) -> None:
        """On first use: start one worker (the first call waits for it; a `UserError` when it
        cannot start) and the others in the background, each joining the pool when ready."""
        if self._warm.is_set():
            return
        with self._warming:
            if self._warm.is_set():
                return
            first, *rest = self.workers
            first.start()
            self._idle.put(first)
            for worker in rest:
                self._restart_later(worker)
            self._warm.set()

    def _restart_later(self, worker: SymbolicWorker) -> None:
        """Start a (fresh) process for `worker` on a thread of its own, then make it available
        (a call never waits through a restart)."""

        def restart() -> None:
            try:
                worker.start()
            except Exception:  # cannot start again: the pool goes on without it
                return
            self._idle.put(worker)

        threading.Thread(target=restart, name="cookbook-math-restart", daemon=True).start()

    def close(self) -> None:
        """Stop every worker process (only in the process that made them: a forked child
        running this at exit must not kill its parent's workers)."""
        if os.getpid() != self._owner_pid:
            return
        for worker in self.workers:
            worker.kill()


_grader: SymbolicGrader | None = None
_grader_pid = -1
_grader_lock = threading.Lock()


def symbolic_grader() -> SymbolicGrader:
    """The process-wide worker pool (created on first use, stopped at exit).

    A forked child gets its own pool: the parent's pipes must not be shared.
    """
    global _grader, _grader_pid
    with _grader_lock:
        if _grader is None or _grader_pid != os.getpid():
            _grader, _grader_pid = SymbolicGrader(), os.getpid()
            atexit.register(_grader.close)
        return _grader


_SCIENTIFIC_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d{1,6})")


def _number(text: str) -> Fraction | None:
    """`parse_number`, plus `1e3` / `2.5E-2` notation (exactly, up to `MAX_EXPONENT`)."""
    value = parse_number(text)
    if value is not None:
        return value
    match = _SCIENTIFIC_RE.fullmatch(text.strip())
    if match is None or abs(int(match.group(2))) > MAX_EXPONENT:
        return None
    return Fraction(Decimal(match.group(1)).scaleb(int(match.group(2))))


def _fast_verdict(answer: str, gold: str) -> bool | None:
    """True/False when decided without the worker, None when a symbolic check is needed."""
    if len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    answer_n, gold_n = normalize_answer(answer), normalize_answer(gold)
    if not answer_n:
        return False
    if answer_n == gold_n:
        return True
    answer_value, gold_value = _number(answer_n), _number(gold_n)
    if answer_value is not None and gold_value is not None:
        return answer_value == gold_value
    if gold_value is not None and not any(c.isdigit() or c == "\\" for c in answer_n):
        return False  # a number can only equal something with a digit or a LaTeX constant
    if nesting_depth(answer_n) > MAX_NESTING or nesting_depth(gold_n) > MAX_NESTING:
        return False
    return None


def answers_match(
    answer: str, gold: str, *, symbolic: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """Whether an extracted answer equals the reference answer.

    Exact for numbers; with `symbolic`, other forms are compared by math-verify in the worker
    within `timeout_s` (wrong when it overruns).
    """
    fast = _fast_verdict(answer, gold)
    if fast is not None:
        return fast
    if not symbolic:
        return False
    verdict = symbolic_grader().compare(normalize_answer(gold), normalize_answer(answer), timeout_s)
    return verdict == "equal"


async def answers_match_async(
    answer: str, gold: str, *, symbolic: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """`answers_match` that does not block the event loop on the symbolic path."""
    fast = _fast_verdict(answer, gold)
    if fast is not None:
        return fast
    if not symbolic:
        return False
    verdict = await asyncio.to_thread(
        symbolic_grader().compare, normalize_answer(gold), normalize_answer(answer), timeout_s
    )
    return verdict == "equal"


@dataclass(frozen=True)
class Grade:
    """The verdict on one response."""

    correct: bool
    """The extracted answer equals the reference."""
    format_ok: bool
    """The response states its answer in the requested form."""
    answer: str | None
    """What was extracted (None when nothing was)."""


def _extract(
    response: str, answer_mode: AnswerMode, format_mode: AnswerMode
) -> tuple[str | None, bool]:
    return extract_answer(response, answer_mode), is_well_formed(response, format_mode)


def grade_response(
    response: str,
    gold: str,
    *,
    answer_mode: AnswerMode = "auto",
    format_mode: AnswerMode | None = None,
    symbolic: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Grade:
    """Extract the answer of `response` (`answer_mode`), compare it with `gold` and check the
    format (`format_mode`, default the same as `answer_mode`)."""
    answer, format_ok = _extract(response, answer_mode, format_mode or answer_mode)
    correct = answer is not None and answers_match(
        answer, gold, symbolic=symbolic, timeout_s=timeout_s
    )
    return Grade(correct=correct, format_ok=format_ok, answer=answer)


async def grade_response_async(
    response: str,
    gold: str,
    *,
    answer_mode: AnswerMode = "auto",
    format_mode: AnswerMode | None = None,
    symbolic: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Grade:
    """`grade_response` for async code (the symbolic path runs in a thread)."""
    answer, format_ok = _extract(response, answer_mode, format_mode or answer_mode)
    correct = answer is not None and await answers_match_async(
        answer, gold, symbolic=symbolic, timeout_s=timeout_s
    )
    return Grade(correct=correct, format_ok=format_ok, answer=answer)
