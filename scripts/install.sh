#!/usr/bin/env bash
# Install cookbook and every plugin of this repo into .venv (created if missing).
# Safe to rerun. Used by newcomers (see README) and by .ci/run, so the two never drift.
set -euo pipefail
cd "$(dirname "$0")/.."

# A Python >= 3.11: $PYTHON if set, else the first suitable one on PATH.
if [ ! -x .venv/bin/python ]; then
    PYTHON="${PYTHON:-}"
    if [ -z "$PYTHON" ]; then
        for candidate in python3.11 python3.12 python3.13 python3; do
            if command -v "$candidate" >/dev/null 2>&1 &&
                "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
                PYTHON="$candidate"
                break
            fi
        done
    fi
    if [ -z "$PYTHON" ]; then
        echo "error: cookbook needs Python >= 3.11; install it or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet)

# Without a GPU, pin torch first: an unpinned torch resolves to the multi-GB CUDA build.
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "no GPU found: installing torch==2.13.0 (CPU)"
    "${pip[@]}" torch==2.13.0
fi

# Before 0.2 the core's distribution was called `cookbook` (a name taken on the public index);
# any distribution of that name here owns the import package `cookbook` too, so it goes.
# Its build metadata in the repository root would still be found by anything run from here.
if .venv/bin/python -m pip show --quiet cookbook >/dev/null 2>&1; then
    echo "removing the distribution 'cookbook' (the core is 'cookbook-core' now)"
    .venv/bin/python -m pip uninstall --quiet --yes cookbook
fi
rm -rf cookbook.egg-info

echo "installing cookbook-core ([hf,dev])"
"${pip[@]}" -e ".[hf,dev]"

# tinker-cookbook's own loops run in the tests (tests/serve): its pin on tml-renderers is not on
# the index, so its other requirements come from a file and it installs with --no-deps.
echo "installing tinker-cookbook 0.6.1 (requirements/tinker-cookbook.txt)"
"${pip[@]}" -r requirements/tinker-cookbook.txt
"${pip[@]}" --no-deps tinker-cookbook==0.6.1

shopt -s nullglob
plugins=()
for dir in plugins/*/ envs_contrib/ envs_contrib/*/; do
    if [ -f "$dir/pyproject.toml" ]; then
        plugins+=(-e "${dir%/}")
    fi
done
if [ ${#plugins[@]} -gt 0 ]; then
    echo "installing plugins: ${plugins[*]//-e /}"
    "${pip[@]}" "${plugins[@]}"
fi
echo "done: .venv/bin/cookbook is ready (try: .venv/bin/cookbook list)"
