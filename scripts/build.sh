#!/usr/bin/env bash
# Build the wheel and sdist of every distribution of this repo into dist/, then check them:
# `twine check --strict` (the README renders as the index would show it) and
# scripts/check_dists.py (license, classifiers, requires-python, project URLs, dependency
# ranges that the built versions satisfy). Used by the release path and by .ci/run.
#
#     bash scripts/build.sh              # needs .venv (scripts/install.sh); $PYTHON overrides
#
# Each wheel is built from its sdist, as an index would build it, so a file missing from an
# sdist fails here. The build backend is the one in $PYTHON's environment (setuptools, from the
# [dev] extra): no isolated environment per build, which would fetch setuptools eight times.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"

projects=(.)
for dir in plugins/*/ envs_contrib/ envs_contrib/*/; do
    if [ -f "$dir/pyproject.toml" ]; then
        projects+=("${dir%/}")
    fi
done

rm -rf dist
for project in "${projects[@]}"; do
    echo "== building $project"
    "$python" -m build --quiet --no-isolation --sdist --wheel --outdir dist "$project" >/dev/null
    rm -rf "$project/build"  # setuptools' scratch copy, not a repository file
done
ls -1 dist

echo "== twine check"
"$python" -m twine check --strict dist/*
echo "== metadata check"
"$python" scripts/check_dists.py dist "${projects[@]}"
