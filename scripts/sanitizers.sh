#!/usr/bin/env bash
# ASan + UBSan: the compiler (libmixir_c, mixer-opt, mixer-fuzz) and the C ABI
# test built instrumented in build-asan/ (its libraries in build-asan/lib-python,
# apart from the package's), then the whole lit suite and a short fuzz
# campaign on that build. Any sanitizer report fails it (leaks included).
#
#   bash scripts/sanitizers.sh [FUZZ_SECONDS]     # default 60; 0 skips the campaign
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=build-asan
LLVM_PREFIX=/usr/lib/llvm-22
t0=$(date +%s)
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIXIR_SANITIZE=address,undefined \
  -DMIXIR_PYTHON_LIB_DIR="$ROOT/$B/lib-python" -DMLIR_DIR=$LLVM_PREFIX/lib/cmake/mlir \
  -DLLVM_EXTERNAL_LIT=$LLVM_PREFIX/bin/lit >/dev/null
ninja -C $B mixer-opt mixer-fuzz mixir-capi-test
echo "== built in $(( $(date +%s) - t0 )) s"
# allow_user_poisoning=0: LLVM headers compiled into our instrumented code poison
# their allocators' slabs (LLVM_ADDRESS_SANITIZER_BUILD), which the prebuilt,
# uninstrumented LLVM then writes: reports that are not ours.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:allow_user_poisoning=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
$LLVM_PREFIX/bin/lit -sv $B/test
echo "== lit under ASan + UBSan done after $(( $(date +%s) - t0 )) s"
SECS=${1:-60}
if [[ "$SECS" != 0 ]]; then
  mkdir -p $B/fuzz
  $B/bin/mixer-fuzz --seconds "$SECS" --seed 11 --dict tools/mixer-fuzz/mixer.dict \
    --crashes $B/fuzz/crashes test | tail -3
fi
echo "== sanitizers clean, $(( $(date +%s) - t0 )) s in all"
