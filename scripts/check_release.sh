#!/usr/bin/env bash
# The release path as a user meets it, from the wheels of scripts/build.sh (run that first;
# .ci/run runs both): in a fresh virtual environment,
#
#     pip install --find-links dist cookbook-env-tictactoe
#
# must install this repository's core, textarena layer and plugin (and nothing named `cookbook`
# from elsewhere: that name belongs to an unrelated project on the public index), and then
# `cookbook rl --env tictactoe` must train. The environment is removed afterwards; pip's cache
# is used as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
[ -d dist ] || { echo "error: no dist/; run scripts/build.sh first" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# .venv's interpreter makes the new environment from its base Python, not from .venv.
"${PYTHON:-.venv/bin/python}" -m venv "$work/venv"
# --no-compile: byte-compiling ~1.4 GB of dependencies (torch above all) took most of the time.
pip=("$work/venv/bin/python" -m pip install --quiet --no-compile)

# As in scripts/install.sh: without a GPU, an unpinned torch would be the multi-GB CUDA build.
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "== fresh venv: torch==2.13.0 (CPU)"
    "${pip[@]}" torch==2.13.0
fi
echo "== fresh venv: pip install --find-links dist cookbook-env-tictactoe"
"${pip[@]}" --find-links dist --report "$work/report.json" cookbook-env-tictactoe

echo "== where every cookbook distribution came from"
"$work/venv/bin/python" - "$work/report.json" "$repo/dist" <<'PY'
"""Every installed distribution named cookbook* is a file of dist/, the three the plugin needs
are there, and none is the foreign `cookbook`."""
import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

report, dist = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]).resolve()
installed = {}
for item in report["install"]:
    name = item["metadata"]["name"].lower().replace("_", "-")
    url = item["download_info"]["url"]
    installed[name] = (item["metadata"]["version"], url)
problems = []
if "cookbook" in installed:
    problems.append(f"installed 'cookbook' {installed['cookbook'][0]} from {installed['cookbook'][1]}")
for name in ("cookbook-core", "cookbook-textarena", "cookbook-env-tictactoe"):
    if name not in installed:
        problems.append(f"{name} was not installed")
for name, (version, url) in sorted(installed.items()):
    if not name.startswith("cookbook"):
        continue
    path = Path(unquote(urlparse(url).path)).resolve()
    if urlparse(url).scheme != "file" or path.parent != dist:
        problems.append(f"{name} {version} came from {url}, not from {dist}")
    else:
        print(f"  {name} {version} from dist/{path.name}")
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

echo "== cookbook rl --env tictactoe max_steps=2 warm_start.steps=5 (in the fresh venv)"
(
    cd "$work"
    "$work/venv/bin/cookbook" plugins
    "$work/venv/bin/cookbook" rl --env tictactoe max_steps=2 warm_start.steps=5 log_dir=run
    steps="$(wc -l <run/metrics.jsonl)"
    [ "$steps" -ge 2 ] || { echo "error: run/metrics.jsonl has $steps lines" >&2; exit 1; }
)
echo "release check passed"
