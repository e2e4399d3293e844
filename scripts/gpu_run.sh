#!/usr/bin/env bash
# Runs GPU tests and benchmarks on a GPU host that has torch, triton and a CUDA
# toolkit but no LLVM/MLIR (the lent H100/H200): the compiler libraries come
# prebuilt from this machine, packed here, carried in .device/ (64 MiB a call).
#
#   bash scripts/gpu_run.sh pack                  # here: .device/lib.tar.xz (+ wheels in .whl)
#   bash scripts/gpu_run.sh pack-old DIR          # here: DIR's python/mixir (an older checkout,
#                                                 #   built) as .device/old.tar.xz, for
#                                                 #   before/after rows (PYTHONPATH=$OLD)
#   bash scripts/gpu_run.sh pack-cache DIR        # here: a compile cache (scripts/precompile.py)
#                                                 #   as .device/mixir-cache.tar.xz
#   bash scripts/gpu_run.sh run 'CMD' ['CMD'...]  # there: unpack, build nothing, run each CMD
#
# `run` unpacks the libraries into python/mixir/_lib, the compile cache into
# $MIXIR_CACHE_DIR, the older checkout into $OLD; installs the carried wheels (fla,
# mlstm_kernels) into /tmp/site; points Triton's cache (with autotuning results) at
# what was carried; records every compiled call into $OUT/calls.jsonl (the input
# of scripts/precompile.py); then runs each command with a time limit ($STEP_LIMIT
# seconds, default 300) so that one slow step does not lose the others. Output goes
# to the terminal and $OUT/log.txt; Triton's autotuning results come back as
# $OUT/triton-cache.tar.gz (carry it as .device/triton-cache.tar.gz).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

exclude() {
  mkdir -p .device
  for p in /.device/ /.whl/; do
    grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude
  done
}

# tar.xz without relying on an xz binary where it is unpacked.
unpack() { python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$1" "$2"; }

case "${1:-}" in
pack)
  exclude
  XZ_OPT=-T2 tar -C python/mixir/_lib -cJf .device/lib.tar.xz libmixir_c.so libmixir_runtime.so \
    $(cd python/mixir/_lib && ls libmixir_torch.so 2>/dev/null)
  ls -la .device
  ;;
pack-old)
  exclude
  XZ_OPT=-T2 tar -C "$2" --exclude=__pycache__ -cJf .device/old.tar.xz python/mixir
  ls -la .device
  ;;
pack-cache)
  exclude
  XZ_OPT=-T2 tar -C "$2" -cJf .device/mixir-cache.tar.xz .
  ls -la .device
  ;;
run)
  shift
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT" python/mixir/_lib
  unpack .device/lib.tar.xz python/mixir/_lib || exit 1
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl >/dev/null 2>&1 || echo "wheel install failed"
    export PYTHONPATH=/tmp/site
  fi
  export OLD=/tmp/old/python
  [[ -f .device/old.tar.xz ]] && mkdir -p /tmp/old && unpack .device/old.tar.xz /tmp/old
  export MIXIR_CACHE_DIR=/tmp/mixir-cache
  mkdir -p "$MIXIR_CACHE_DIR"
  [[ -f .device/mixir-cache.tar.xz ]] && unpack .device/mixir-cache.tar.xz "$MIXIR_CACHE_DIR"
  export MIXIR_RECORD=$OUT/calls.jsonl
  export SITE=${PYTHONPATH:-}
  export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
  export PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  export TRITON_CACHE_DIR=/tmp/triton-cache TRITON_CACHE_AUTOTUNING=1
  mkdir -p "$TRITON_CACHE_DIR"
  [[ -f .device/triton-cache.tar.gz ]] && tar -C "$TRITON_CACHE_DIR" -xzf .device/triton-cache.tar.gz
  echo "compile cache: $(ls "$MIXIR_CACHE_DIR" | wc -l) entries carried"
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
  echo "usage: $0 pack | pack-old DIR | pack-cache DIR | run CMD..." >&2
  exit 2
  ;;
esac
