#!/usr/bin/env bash
# Runs every test: lit (dialect, passes, pipelines, PTX/cubin, C ABI) and pytest
# (CPU always; GPU tests skip with a reason on a host without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ninja -C build
ninja -C build check-mixir
# The Python custom-op fallback (used where libmixir_torch.so is not built), then
# everything through the C++ ops.
MIXIR_PYTHON_OPS=1 $PY -m pytest -q test/python/test_scan_grad.py test/python/test_errors.py
$PY -m pytest -q test/python "$@"
