#!/usr/bin/env bash
# libFuzzer over the compiler: tools/mixer-fuzz/FuzzTarget.cpp (parse -> verify ->
# both pipelines) linked with -fsanitize=fuzzer, in build-libfuzzer/ with our code
# instrumented for coverage, ASan and UBSan (clang-22; LLVM and MLIR come prebuilt
# and uninstrumented). Seeds: the lit inputs and test/Fuzz/corpus; dictionary:
# tools/mixer-fuzz/mixer.dict. Any crash, sanitizer report, timeout or
# out-of-memory stops it and fails the run (the input is saved under
# build-libfuzzer/fuzz/).
#
#   bash scripts/libfuzzer.sh [SECONDS] [JOBS]     # default 300 s, 2 jobs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=build-libfuzzer
LLVM_PREFIX=/usr/lib/llvm-22
SECS=${1:-300}
JOBS=${2:-2}
t0=$(date +%s)
if ! command -v clang++-22 >/dev/null || [[ ! -d $LLVM_PREFIX/lib/clang/22/lib/linux ]]; then
  echo "libfuzzer.sh: needs clang-22 and libclang-rt-22-dev (apt-get install clang-22 libclang-rt-22-dev)" >&2
  exit 2
fi
cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang-22 \
  -DCMAKE_CXX_COMPILER=clang++-22 -DMIXIR_SANITIZE=address,undefined,fuzzer-no-link \
  -DMIXIR_PYTHON_LIB_DIR="$ROOT/$B/lib-python" -DMLIR_DIR=$LLVM_PREFIX/lib/cmake/mlir \
  -DLLVM_EXTERNAL_LIT=$LLVM_PREFIX/bin/lit >/dev/null
ninja -C $B mixer-libfuzzer
echo "== built in $(( $(date +%s) - t0 )) s"
F=$B/fuzz
rm -rf $F/seeds $F/artifacts && mkdir -p $F/corpus $F/seeds $F/artifacts
# The seeds: every lit input and every earlier finding, one file each.
i=0
for f in $(find test -name '*.mlir' | sort); do cp "$f" $F/seeds/$i.mlir; i=$((i + 1)); done
# libFuzzer's dictionary syntax: one quoted token per line.
grep -v '^#' tools/mixer-fuzz/mixer.dict | grep -v '^$' | sed 's/\\/\\\\/g; s/"/\\"/g; s/.*/"&"/' > $F/mixer.dict
# (allow_user_poisoning=0: see scripts/sanitizers.sh.)
export ASAN_OPTIONS=detect_leaks=1:allow_user_poisoning=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rc=0
$B/bin/mixer-libfuzzer $F/corpus $F/seeds -dict=$F/mixer.dict -max_total_time="$SECS" \
  -timeout=20 -rss_limit_mb=4096 -max_len=16384 -jobs="$JOBS" -workers="$JOBS" \
  -artifact_prefix=$F/artifacts/ -print_final_stats=1 > $F/run.log 2>&1 || rc=$?
# Each job's log is fuzz-<n>.log in the working directory.
for l in fuzz-*.log; do [[ -f $l ]] && mv "$l" $F/; done
grep -h "stat::number_of_executed_units\|stat::average_exec_per_sec\|ERROR:\|SUMMARY:" $F/*.log || true
ls $F/artifacts
echo "== libFuzzer: rc=$rc, $(ls $F/artifacts | wc -l) artifacts, $(( $(date +%s) - t0 )) s in all"
exit $rc
