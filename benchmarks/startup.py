"""How long `cookbook list` takes to start, beside bare Python and `import torch`.

    .venv/bin/python benchmarks/startup.py [--runs 9]

Run it with every repo plugin installed (scripts/install.sh does that). The target: `cookbook
list` within 0.3 s of `python -c pass`. It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall_times(cmd: list[str], runs: int) -> list[float]:
    """Wall seconds of `runs` runs of `cmd` (after one untimed warm-up for the file cache)."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Time the commands and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command")
    runs = parser.parse_args().runs

    python = sys.executable
    script = Path(python).parent / "cookbook"
    cookbook = [str(script)] if script.is_file() else [python, "-m", "cookbook"]
    plugins = json.loads(
        subprocess.run([*cookbook, "plugins", "--json"], capture_output=True, check=True).stdout
    )
    print(f"plugins installed: {', '.join(p['distribution'] + '=' + p['status'] for p in plugins)}")

    commands = {
        "python -c pass": [python, "-c", "pass"],
        "cookbook --help": [*cookbook, "--help"],
        "cookbook list": [*cookbook, "list"],
        "cookbook plugins": [*cookbook, "plugins"],
        'python -c "import torch"': [python, "-c", "import torch"],
    }
    results = {name: wall_times(cmd, runs) for name, cmd in commands.items()}
    bare = statistics.median(results["python -c pass"])
    print(f"\nmedian of {runs} runs (seconds)")
    print(f"{'command':<28}{'median':>8}{'min':>8}{'vs bare':>10}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<28}{median:>8.3f}{min(times):>8.3f}{median - bare:>+10.3f}")
    gap = statistics.median(results["cookbook list"]) - bare
    verdict = "within" if gap <= 0.3 else "OVER"
    print(f"\ncookbook list is {gap:.3f} s slower than bare Python: {verdict} the 0.3 s target")


if __name__ == "__main__":
    main()
