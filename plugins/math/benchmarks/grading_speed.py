"""How long grading takes: the exact path, the symbolic worker, and hostile inputs.

    .venv/bin/python plugins/math/benchmarks/grading_speed.py

Prints medians side by side; no targets are asserted (numbers depend on the machine).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cookbook_math.grader import answers_match, grade_response, symbolic_grader


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `fn` in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    """Print the table."""
    start = time.perf_counter()
    symbolic_grader().compare("1", "1", timeout_s=60.0)
    print(f"{'worker start (first call)':45s} {1000 * (time.perf_counter() - start):9.1f} ms")
    rows: list[tuple[str, Callable[[], object], int]] = [
        ("exact: reply '68' vs 68", lambda: grade_response("68", "68", answer_mode="last_number"), 2000),
        ("exact: '\\boxed{\\frac{7}{2}}' vs 3.5", lambda: grade_response("\\boxed{\\frac{7}{2}}", "3.5"), 2000),
        ("exact: 100k-char garbage reply", lambda: grade_response("x" * 100_000, "3"), 50),
        ("symbolic: \\sqrt{12} vs 2\\sqrt{3}", lambda: answers_match("\\sqrt{12}", "2\\sqrt{3}"), 30),
        ("symbolic: x^2+2x+1 vs (x+1)^2", lambda: answers_match("x^2+2x+1", "(x+1)^2"), 30),
        ("hostile: 9^{9^{9^{9}}} (limit 1 s)", lambda: answers_match("9^{9^{9^{9}}}", "3", timeout_s=1.0), 3),
        ("hostile: __import__('os')... (limit 1 s)", lambda: answers_match("__import__('os').system('x')", "3", timeout_s=1.0), 10),
    ]  # fmt: skip
    for name, fn, repeat in rows:
        print(f"{name:45s} {median_ms(fn, repeat):9.3f} ms")
    print(f"{'hostile batch: 32 x 9^{9^{9^{9}}} at once (3 s)':45s} {batch_ms(32, 3.0):9.1f} ms")
    print(f"worker restarts: {[w.restarts for w in symbolic_grader().workers]}")


def batch_ms(n: int, timeout_s: float) -> float:
    """Wall time until the last of `n` concurrent hostile answers is graded (target: about
    `timeout_s`, whatever `n`)."""

    def one(_: int) -> bool:
        return answers_match("9^{9^{9^{9}}}", "3", timeout_s=timeout_s)

    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    return 1000 * (time.perf_counter() - start)


if __name__ == "__main__":
    main()
