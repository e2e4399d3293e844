#!/usr/bin/env bash
# Runs GPU tests and benchmarks on a GPU host that has torch, triton and a CUDA
# toolkit but no LLVM/MLIR (the lent H100/H200): the compiler libraries come
# prebuilt from this machine, packed by `scripts/gpu_run.sh pack`.
#
#   bash scripts/gpu_run.sh pack                 # here: .device/lib.tar.gz (+ wheels in .whl)
#   bash scripts/gpu_run.sh run 'CMD' ['CMD'...] # there: unpack, build nothing, run each CMD
#
# `run` unpacks the libraries into python/mixir/_lib, installs the carried wheels
# (fla, mlstm_kernels) into /tmp/site, points Triton's cache (with autotuning
# results) at .device/triton-cache when one was carried, then runs each command
# with a time limit ($STEP_LIMIT seconds, default 300) so that one slow step does
# not lose the others. Output goes to the terminal and $OUT/log.txt; the Triton
# cache's autotuning results go back as $OUT/triton-cache.tar.gz for the next
# call to carry (as .device/triton-cache.tar.gz).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

case "${1:-}" in
pack)
  mkdir -p .device
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  tar -C python/mixir/_lib -czf .device/lib.tar.gz libmixir_c.so libmixir_runtime.so \
    $(cd python/mixir/_lib && ls libmixir_torch.so 2>/dev/null)
  ls -la .device
  ;;
run)
  shift
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT" python/mixir/_lib
  tar -C python/mixir/_lib -xzf .device/lib.tar.gz || exit 1
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >/dev/null 2>&1 || echo "wheel install failed"
    export PYTHONPATH=/tmp/site
  fi
  export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
  export PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  export TRITON_CACHE_DIR=/tmp/triton-cache TRITON_CACHE_AUTOTUNING=1
  mkdir -p "$TRITON_CACHE_DIR"
  [[ -f .device/triton-cache.tar.gz ]] && tar -C "$TRITON_CACHE_DIR" -xzf .device/triton-cache.tar.gz
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  for cmd in "$@"; do
    echo "== $cmd"
    start=$(date +%s)
    timeout "${STEP_LIMIT:-300}" bash -c "$cmd"
    echo "== rc=$? after $(( $(date +%s) - start )) s"
  done 2>&1 | tee "$OUT/log.txt"
  # Only the autotuning results travel back (compiled kernels are too large to):
  # a later call compiles each chosen config once instead of benchmarking all.
  (cd "$TRITON_CACHE_DIR" && find . -name '*.autotune.json' | tar -czf "$OUT/triton-cache.tar.gz" -T -)
  ;;
*)
  echo "usage: $0 pack | run CMD..." >&2
  exit 2
  ;;
esac
