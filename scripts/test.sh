#!/usr/bin/env bash
# Runs every test: lit (dialect, passes, pipelines, PTX/cubin, C ABI, the fuzzer's
# findings), a bounded fuzz campaign and pytest (CPU always; GPU tests skip with a
# reason on a host without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ninja -C build
ninja -C build check-mixir
# A bounded fuzz campaign over the compiler (mixer-fuzz): a fixed number of
# mutants from fixed seeds on every core, so that a run is reproducible
# (FUZZ_RUNS=0 skips it).
if [[ "${FUZZ_RUNS:-4000}" != 0 ]]; then
  FUZZ_RUNS=${FUZZ_RUNS:-4000} bash scripts/fuzz.sh 0
fi
$PY -m pytest -q test/python "$@"
