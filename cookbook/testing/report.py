"""The result of a contract check: one named item per check, passed, failed or skipped, with the
reason. `ContractReport.raise_for_failures()` turns failures into one readable AssertionError
(what pytest shows); `cookbook check` renders the same report as a table."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from cookbook.errors import UserError

Status = Literal["passed", "failed", "skipped"]


class CheckFailed(Exception):
    """Raised inside a check to fail it with a readable one-line reason."""


@dataclass(frozen=True)
class CheckResult:
    """One check of a contract."""

    name: str
    """What was checked (`builds`, `determinism`, ...)."""
    status: Status
    """`passed`, `failed`, or `skipped` (a check it needs failed, or it does not apply)."""
    detail: str = ""
    """What was seen (on success) or what is wrong and where (on failure)."""
    time_s: float = 0.0
    """Wall time the check took."""

    @property
    def failed(self) -> bool:
        """Whether this check failed."""
        return self.status == "failed"


@dataclass
class ContractReport:
    """Every check run against one env, dataset or eval."""

    kind: str
    """`env`, `dataset` or `eval`."""
    target: str
    """The registered name, or the builder class name when checked directly."""
    results: list[CheckResult] = field(default_factory=list)
    """The checks in the order they ran."""

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped ones do not count against it)."""
        return not any(r.failed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        """The failed checks."""
        return [r for r in self.results if r.failed]

    def result(self, name: str) -> CheckResult:
        """The result of check `name` (KeyError when no check of that name ran)."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r}; ran: {', '.join(r.name for r in self.results)}")

    @property
    def time_s(self) -> float:
        """Total time of the checks."""
        return sum(r.time_s for r in self.results)

    def format(self) -> str:
        """A plain-text summary, one line per check."""
        head = f"{self.kind} {self.target}: " + ("passed" if self.passed else "FAILED")
        width = max((len(r.name) for r in self.results), default=0)
        lines = [head]
        for r in self.results:
            mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[r.status]
            lines.append(f"  {mark} {r.name.ljust(width)}  {r.detail}".rstrip())
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise `AssertionError` listing every failed check (the whole report follows)."""
        if self.passed:
            return
        names = ", ".join(r.name for r in self.failures)
        raise AssertionError(
            f"{self.kind} {self.target} breaks the contract ({names}):\n{self.format()}"
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready record (`cookbook check --json`)."""
        return {
            "kind": self.kind,
            "target": self.target,
            "passed": self.passed,
            "checks": [
                {"name": r.name, "status": r.status, "detail": r.detail, "time_s": r.time_s}
                for r in self.results
            ],
        }


class Checklist:
    """Runs named checks into a report: times each, turns exceptions into failures, and skips a
    check whose prerequisites did not pass."""

    def __init__(self, report: ContractReport) -> None:
        self.report = report

    def ok(self, name: str) -> bool:
        """Whether check `name` ran and passed."""
        return any(r.name == name and r.status == "passed" for r in self.report.results)

    def skip(self, name: str, reason: str) -> None:
        """Record `name` as skipped."""
        self.report.results.append(CheckResult(name, "skipped", reason))

    def run(self, name: str, check: Callable[[], str], needs: Iterable[str] = ()) -> bool:
        """Run `check` (it returns a detail line, or raises to fail) unless a check in `needs`
        did not pass; returns whether it passed."""
        missing = [n for n in needs if not self.ok(n)]
        if missing:
            self.skip(name, f"needs {', '.join(missing)}")
            return False
        t0 = time.perf_counter()
        try:
            detail = check()
        except (CheckFailed, UserError) as e:  # already one readable line
            self._add(name, "failed", " ".join(str(e).split()), t0)
            return False
        except Exception as e:  # foreign plugin code: any error is this check's failure
            self._add(name, "failed", describe_error(e), t0)
            return False
        self._add(name, "passed", detail, t0)
        return True

    def add(self, name: str, status: Status, detail: str, time_s: float = 0.0) -> None:
        """Record a check whose work was done elsewhere."""
        self.report.results.append(CheckResult(name, status, detail, time_s))

    def _add(self, name: str, status: Status, detail: str, t0: float) -> None:
        self.add(name, status, detail, time.perf_counter() - t0)


def describe_error(e: BaseException, where: bool = True) -> str:
    """`Type: message (at file:line in function)`, pointing at the innermost frame, on one line
    (`where=False`: without the place). An exception group (a failed TaskGroup) is described by
    its first real error."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    frames = traceback.extract_tb(e.__traceback__) if where else []
    if frames:
        last = frames[-1]
        text += f" (at {_short_path(last.filename)}:{last.lineno} in {last.name})"
    return text


def _short_path(path: str) -> str:
    """The last two parts of a path: enough to find the file, short enough for one line."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])
