#!/usr/bin/env bash
# A bounded fuzz campaign: mixer-fuzz mutates the lit inputs (test/**/*.mlir)
# and runs every mutant through parse -> verify -> both pipelines in a child
# process; any crash, abort, hang or out-of-memory is a finding, saved under
# $FUZZ_OUT/crashes and failing the campaign. A finding, once fixed, goes into
# test/Fuzz/corpus/ (replayed by lit).
#
#   bash scripts/fuzz.sh [SECONDS] [JOBS]     # default: 120 s on every core
#   FUZZ_SEED=7 FUZZ_RUNS=50000 bash scripts/fuzz.sh 0 2   # a fixed number of inputs per job
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-120}
JOBS=${2:-$(nproc)}
OUT=${FUZZ_OUT:-build/fuzz}
SEED=${FUZZ_SEED:-1}
RUNS=${FUZZ_RUNS:-0}
mkdir -p "$OUT"
pids=()
for j in $(seq 1 "$JOBS"); do
  build/bin/mixer-fuzz --seconds "$SECS" --runs "$RUNS" --seed $((SEED * 1000 + j)) \
    --dict tools/mixer-fuzz/mixer.dict --crashes "$OUT/crashes" test >"$OUT/job$j.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
grep -h "FINDING" "$OUT"/job*.log || true
# The campaign's totals over all jobs.
python3 - "$OUT" <<'PY'
import re, sys, glob
tot = {k: 0 for k in ("inputs", "refused", "parsed", "verified", "lowered", "findings")}
secs = 0.0
for f in glob.glob(sys.argv[1] + "/job*.log"):
    last = [l for l in open(f) if l.startswith("done: ")]
    if not last:
        print(f"{f}: no summary (the driver itself died)"); tot["findings"] += 1; continue
    nums = dict(re.findall(r"(inputs|refused|parsed|verified|lowered|findings) (\d+)", last[-1]))
    for k in tot: tot[k] += int(nums.get(k, 0))
    secs = max(secs, float(re.search(r"in (\d+) s", last[-1]).group(1)))
rate = tot["inputs"] / secs if secs else 0
print(f"fuzz campaign: {tot['inputs']} inputs in {secs:.0f} s ({rate:.1f}/s over all jobs): "
      f"refused {tot['refused']}, parsed {tot['parsed']}, verified {tot['verified']}, "
      f"lowered {tot['lowered']}; findings {tot['findings']}")
sys.exit(1 if tot["findings"] else 0)
PY
[[ $? -ne 0 ]] && rc=1
exit $rc
