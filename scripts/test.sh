#!/usr/bin/env bash
# Runs every test: lit (dialect, passes, pipelines, PTX/cubin, C ABI) and pytest
# (CPU always; GPU tests skip with a reason on a host without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ninja -C build
ninja -C build check-mixir
$PY -m pytest -q test/python "$@"
