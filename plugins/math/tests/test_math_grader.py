"""The grader: exact and symbolic equivalence, and hostile model output.

The symbolic cases run the real math-verify worker process; the hard-kill case stands in a
worker program that hangs the way C code does (ignoring SIGALRM), since no honest input is
guaranteed to hang sympy in C on every version.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cookbook_math.grader import (
    DEFAULT_NUM_WORKERS,
    SymbolicGrader,
    SymbolicWorker,
    answers_match,
    grade_response,
    grade_response_async,
    symbolic_grader,
)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("68", "68"),
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "0.50"),
        ("1,000", "1000"),
        ("$18.00", "18"),
        ("-22", "-22"),
        ("\\dfrac{19}{12}", "19/12"),
        ("1e3", "1000"),
        ("2.5E-2", "0.025"),
        ("-1e+3", "-1000"),
    ],
)
def test_numbers_compare_exactly_without_the_worker(answer: str, gold: str) -> None:
    assert answers_match(answer, gold, symbolic=False)


def test_scientific_notation_is_a_number_not_eulers_e() -> None:
    """`1e3` went to the symbolic parser, which read it as 1 * e * 3."""
    assert answers_match("1e3", "1000")
    assert grade_response("#### 1e3", "1000", answer_mode="hash").correct
    assert not answers_match("1e3", "999", symbolic=False)
    assert not answers_match("1e999999999", "3", timeout_s=1.0)  # no giant integer is built


@pytest.mark.parametrize(
    ("answer", "gold"),
    [("67", "68"), ("0.33", "1/3"), ("", "1"), ("x", "1"), ("2\\sqrt{3}", "\\sqrt{12}")],
)
def test_numbers_only_mode_is_strict(answer: str, gold: str) -> None:
    assert not answers_match(answer, gold, symbolic=False)


@pytest.mark.parametrize(
    ("answer", "gold", "equal"),
    [
        ("\\sqrt{12}", "2\\sqrt{3}", True),
        ("1+x", "x+1", True),
        ("\\frac{2\\pi}{3}", "\\frac{2}{3}\\pi", True),
        ("-2, 8", "8, -2", True),
        ("\\sqrt{12}", "3\\sqrt{2}", False),
        ("x-1", "x+1", False),
    ],
)
def test_symbolic_equivalence(answer: str, gold: str, equal: bool) -> None:
    assert answers_match(answer, gold) is equal


HOSTILE_ANSWERS = [
    "9**9**9**9",
    "9^{9^{9^{9}}}",
    "10^{10^{9}}",
    "(" * 200 + "1" + ")" * 200,
    "\\frac{" * 40 + "1" + "}{2}" * 40,
    "1" * 100_000,
    "lambda: 0",
    "\\frac{1}{",
    "\\sqrt{",
    "}}}{{{\\left(\\right.",
    "\\begin{matrix} 1 & 2 \\end{matrix",
    "\x00\x01\x02\ufffd",
    "a" * 5000,
    "\\boxed{" * 3000,
]


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS, ids=range(len(HOSTILE_ANSWERS)))
def test_hostile_answers_are_graded_wrong(answer: str) -> None:
    assert answers_match(answer, "3", timeout_s=1.0) is False
    reply = f"The answer is \\boxed{{{answer}}}"
    grade = grade_response(reply, "\\sqrt{3}", answer_mode="boxed", timeout_s=1.0)
    assert grade.correct is False


def test_code_in_answers_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f'__import__("os").system("touch {marker}")',
        f"(lambda: __import__('os').system('touch {marker}'))()",
        f"\\boxed{{__import__('os').system('touch {marker}')}}",
        f"exec(\"open('{marker}', 'w')\")",
        f"eval(compile(\"open('{marker}','w')\", 'x', 'exec'))",
    ]
    for payload in payloads:
        assert answers_match(payload, "0", timeout_s=2.0) is False
        assert answers_match(payload, "x", timeout_s=2.0) is False
        grade = grade_response(f"#### {payload}", "0", answer_mode="hash", timeout_s=2.0)
        assert grade.correct is False
    assert not marker.exists()


def _hanging_worker(tmp_path: Path) -> Path:
    """A worker that says it is ready, then hangs on the first request and ignores SIGALRM,
    like a big-integer computation inside C."""
    script = tmp_path / "hanging_worker.py"
    script.write_text(
        "import json, signal, sys, time\n"
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "print(json.dumps({'ready': True}), flush=True)\n"
        "sys.stdin.readline()\n"
        "time.sleep(3600)\n"
    )
    return script


def test_a_worker_stuck_past_the_limit_is_killed_and_replaced(tmp_path: Path) -> None:
    worker = SymbolicWorker(script=_hanging_worker(tmp_path))
    try:
        assert worker.compare("1", "x", timeout_s=0.5) == "timeout"
        assert worker.restarts == 1 and worker.pid is None  # killed, not left running
        # The next call gets a fresh process (which hangs again, and is killed again).
        assert worker.compare("1", "x", timeout_s=0.5) == "timeout"
        assert worker.restarts == 2
    finally:
        worker.kill()


def test_a_worker_that_dies_is_restarted() -> None:
    worker = SymbolicWorker()
    try:
        assert worker.compare("2\\sqrt{3}", "\\sqrt{12}", timeout_s=10.0) == "equal"
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert worker.compare("x+1", "1+x", timeout_s=10.0) == "equal"
        assert worker.restarts == 1 and worker.pid != pid
    finally:
        worker.kill()


def test_a_process_holding_over_a_thousand_files_still_grades() -> None:
    """A long test session or server can hold descriptors past 1024, where select.select fails;
    the worker's pipes then get such numbers."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    worker = SymbolicWorker()
    try:
        assert worker.compare("x+1", "1+x", timeout_s=10.0) == "equal"
        assert worker._proc is not None and worker._proc.stdout is not None
        assert worker._proc.stdout.fileno() >= 1024
    finally:
        worker.kill()
        for fd in held:
            os.close(fd)


def test_a_worker_that_cannot_start_is_a_user_error(tmp_path: Path) -> None:
    from cookbook.errors import UserError

    script = tmp_path / "broken_worker.py"
    script.write_text(
        "import json; print(json.dumps({'ready': False, 'error': 'no math_verify'}))\n"
    )
    worker = SymbolicWorker(script=script)
    with pytest.raises(UserError, match="no math_verify"):
        worker.compare("1", "x", timeout_s=1.0)


def test_async_grading_leaves_the_event_loop_free() -> None:
    async def run() -> tuple[bool, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        # The soft timer stops this one after 0.7 * timeout_s of parsing in the worker.
        grade = await grade_response_async(
            "\\boxed{9^{9^{9^{9}}}}", "3", answer_mode="boxed", timeout_s=1.0
        )
        done.set()
        await task
        return grade.correct, ticks

    correct, ticks = asyncio.run(run())
    assert correct is False
    assert ticks > 1  # the loop ran other tasks while the worker was busy


def test_pool_answers_from_several_threads() -> None:
    async def run() -> list[bool]:
        pairs = [("\\sqrt{8}", "2\\sqrt{2}"), ("x+2", "2+x"), ("\\sqrt{8}", "3"), ("7", "7")] * 3
        grades = await asyncio.gather(
            *(grade_response_async(f"\\boxed{{{a}}}", g, answer_mode="boxed") for a, g in pairs)
        )
        return [g.correct for g in grades]

    assert asyncio.run(run()) == [True, True, False, True] * 3
    assert len(symbolic_grader().workers) >= 1


def _slow_to_restart_worker(tmp_path: Path) -> Path:
    """A worker whose first process starts at once and hangs on its request (ignoring SIGALRM,
    like C code), and whose later processes take a minute to start."""
    script = tmp_path / "slow_restart_worker.py"
    marker = tmp_path / "started-once"
    script.write_text(
        "import json, pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if marker.exists():\n"
        "    time.sleep(60)\n"
        "marker.touch()\n"
        "print(json.dumps({'ready': True}), flush=True)\n"
        "sys.stdin.readline()\n"
        "time.sleep(3600)\n"
    )
    return script


def test_a_batch_of_hostile_answers_costs_at_most_its_timeout(tmp_path: Path) -> None:
    """One worker, six concurrent answers that would each hang it: the first is sent and killed
    at its limit; the others, finding no free worker within their own limit, are graded
    `timeout` without being sent (before, each waited its turn: six limits plus five
    restarts). A call made while the worker restarts does not wait for the restart."""
    grader = SymbolicGrader(num_workers=1)
    (worker,) = grader.workers
    worker.script = _slow_to_restart_worker(tmp_path)
    try:
        worker.start()  # the first start is not billed to any call
        with ThreadPoolExecutor(6) as pool:
            verdicts = list(pool.map(lambda _: grader.compare("1", "x", 0.5), range(6)))
        assert verdicts == ["timeout"] * 6
        assert worker.restarts == 1  # only the first answer reached the worker
        t0 = time.monotonic()
        assert grader.compare("1", "x", 0.5) == "timeout"
        assert time.monotonic() - t0 < 30  # the restart takes 60 s: it was not waited for
    finally:
        grader.close()


def test_the_pool_has_a_worker_per_core_and_at_least_four() -> None:
    assert 4 <= DEFAULT_NUM_WORKERS <= 8
    assert min(os.cpu_count() or 4, 8) <= DEFAULT_NUM_WORKERS


def test_worker_runs_isolated_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module planted in the current directory under a name the worker imports must not load.
    (tmp_path / "math_verify.py").write_text(f"open({str(tmp_path / 'planted')!r}, 'w')\n")
    monkeypatch.chdir(tmp_path)
    worker = SymbolicWorker()
    try:
        assert worker.compare("x+1", "1+x", timeout_s=10.0) == "equal"
    finally:
        worker.kill()
    assert not (tmp_path / "planted").exists()
