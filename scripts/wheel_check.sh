#!/usr/bin/env bash
# The package without the repository: build the wheel and the sdist, install the wheel into a
# fresh virtual environment in a temporary folder, and run there what a new user runs first.
# Protocols, reference rates and the built-in plugins must come with the wheel (package data and
# entry points); nothing may be read from the checkout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
quiet() { { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

"$repo/.venv/bin/python" -m build --sdist --wheel --outdir "$work/dist" "$repo" 2>&1 | quiet | tail -n 1
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --disable-pip-version-check --no-compile -q "$work"/dist/*.whl 2>&1 | quiet
cd "$work"
export GSR_BENCH_CACHE="$work/cache"
bin="$work/venv/bin"
"$bin/python" -c "import gsr_bench, sys; assert '$repo' not in gsr_bench.__file__, gsr_bench.__file__"
"$bin/gsr-bench" list
"$bin/gsr-bench" plugins
"$bin/gsr-bench" run -m bicubic --protocol smoke --results "$work/results" --no-leaderboard -q
echo "wheel check passed: $(ls "$work/dist")"
