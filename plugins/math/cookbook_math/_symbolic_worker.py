"""The symbolic-equivalence worker: a separate process that compares two answers with math-verify.

Started by `cookbook_math.grader` as `python -I this_file.py` (so it imports nothing from the
parent's working directory) and spoken to over stdin/stdout, one JSON object per line:

    <- {"ready": true}                       (or {"ready": false, "error": "..."})
    -> {"id": 1, "gold": "2\\sqrt{3}", "pred": "\\sqrt{12}", "soft_timeout_s": 2.0}
    <- {"id": 1, "verdict": "equal"}         (or "different", "timeout", "error")

Why a process: grading must stop on time even when the answer is built to hang the parser
(`9^{9^{9^9}}` makes sympy compute a gigantic integer inside C code, where no signal reaches).
The parent kills this process when it overruns and starts a fresh one. Inside, a SIGALRM timer
stops the Python-level parsing early so the common slow case costs no restart.

Model output is never executed: only math-verify's LaTeX parser (ANTLR, no `eval`) sees it, and
sympy's `parse_expr` (which does `eval`) is wrapped to accept plain numerals only (the parser
makes numbers through it), so no other text could reach `eval` by any code path. Memory is capped so a huge number fails with MemoryError instead of swapping.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn, TextIO

MEMORY_LIMIT_BYTES = 2 << 30


class _SoftTimeout(BaseException):
    """Raised by SIGALRM. A BaseException so math-verify's `except Exception` cannot swallow it."""


def _on_alarm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _SoftTimeout


_NUMERAL_RE = re.compile(r"[0-9.,\s]{1,200}")


def _numerals_only(parse_expr: Callable[..., object]) -> Callable[..., object]:
    """Wrap sympy's `parse_expr` (which evals) so that it accepts only plain numerals.

    The LaTeX parser turns number tokens into sympy numbers through it (`sympy.Number("12")`);
    anything else reaching it would be model text about to be evaluated, so it is refused.
    """

    def guarded(text: object, *args: object, **kwargs: object) -> object:
        if not isinstance(text, str) or not _NUMERAL_RE.fullmatch(text):
            raise ValueError("parse_expr is limited to numerals in the grading worker")
        return parse_expr(text, *args, **kwargs)

    return guarded


def _send(out: TextIO, message: dict[str, object]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main() -> None:
    """Serve comparison requests until stdin closes."""
    # Keep the protocol channel private: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = (
            MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(hard, MEMORY_LIMIT_BYTES)
        )
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        pass  # some sandboxes forbid it; the parent's hard timeout still holds
    try:
        import latex2sympy2_extended.latex2sympy2 as l2s
        import math_verify.parser as mv_parser
        import sympy.parsing.sympy_parser as sympy_parser
        from math_verify import LatexExtractionConfig, parse, verify
    except ImportError as e:
        _send(out, {"ready": False, "error": f"{type(e).__name__}: {e}"})
        return
    guarded = _numerals_only(sympy_parser.parse_expr)
    sympy_parser.parse_expr = guarded
    mv_parser.parse_expr = guarded
    l2s.parse_expr = guarded
    extraction = [LatexExtractionConfig()]
    signal.signal(signal.SIGALRM, _on_alarm)
    # One comparison before saying ready: the parser's first use builds its tables (a second or
    # more), which belongs to the start, not to the first answer's time limit.
    verify(parse("$\\sqrt{2}$", extraction), parse("$\\sqrt{2}$", extraction))
    _send(out, {"ready": True})

    for line in sys.stdin:
        try:
            request = json.loads(line)
            request_id = int(request["id"])
            gold, pred = str(request["gold"]), str(request["pred"])
            soft_timeout_s = float(request["soft_timeout_s"])
        except (ValueError, KeyError, TypeError):
            _send(out, {"id": -1, "verdict": "error"})
            continue
        verdict = "error"
        try:
            signal.setitimer(signal.ITIMER_REAL, max(soft_timeout_s, 0.01))
            try:
                gold_parsed = parse(f"${gold}$", extraction, parsing_timeout=None)
                pred_parsed = parse(f"${pred}$", extraction, parsing_timeout=None)
                equal = bool(gold_parsed and pred_parsed) and verify(
                    gold_parsed, pred_parsed, timeout_seconds=None
                )
                verdict = "equal" if equal else "different"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            verdict = "timeout"
        except (Exception, RecursionError, MemoryError):
            verdict = "error"
        _send(out, {"id": request_id, "verdict": verdict})


if __name__ == "__main__":
    main()
