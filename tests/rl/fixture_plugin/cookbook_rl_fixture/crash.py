"""Stop a run at an exact point, as a crash would: the process SIGKILLs itself.

A test runs `cookbook rl|sft` in a subprocess with `crash_at_batch=N crash_marker=PATH`; the run
dies when it asks for batch N, and the same command run again goes past that point (the marker
file says the crash already happened), so resume is tested without racing a timer.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def crash_once(marker: str) -> None:
    """SIGKILL this process unless `marker` exists; create `marker` first."""
    path = Path(marker)
    if path.exists():
        return
    path.write_text("crashed here once\n", encoding="utf-8")
    os.kill(os.getpid(), signal.SIGKILL)
