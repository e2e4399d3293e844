#!/usr/bin/env bash
# compute-sanitizer over every kernel the GPU suite compiles, on the GPU host:
#  1. the GPU suite once, recording each test's compiled calls (MIXIR_RECORD_TESTS);
#  2. every distinct kernel replayed once without a tool (scripts/replay_kernels.py,
#     which also fills the compile cache, so that the sanitized processes only load);
#  3. memcheck, racecheck and initcheck, each over SHARDS interleaved parts of the
#     kernels, all side by side (one launch per kernel: 597 kernels x 3 tools took
#     about 95 s on the H200 in 15 processes);
#  4. OUT/sanitizer.json and OUT/sanitizer.txt: kernels run and reports per tool.
#
#   OUT=DIR bash scripts/sanitize_gpu.sh [SHARDS]       # default 5 shards per tool
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sanitize}
SHARDS=${1:-5}
REC=${REC:-/tmp/mixir-records}
L=$OUT/logs
mkdir -p "$L"
start=$(date +%s)
rm -rf "$REC"
MIXIR_RECORD_TESTS=$REC timeout 300 python3 -m pytest -m gpu -n 14 -q -p no:cacheprovider \
  test/python > "$L/suite.txt" 2>&1
echo "suite rc=$? after $(( $(date +%s) - start )) s" >> "$L/suite.txt"
timeout 300 python3 scripts/replay_kernels.py "$REC" > "$L/replay-plain.txt" 2>&1
echo "plain rc=$?" >> "$L/replay-plain.txt"
for tool in memcheck racecheck initcheck; do
  for s in $(seq 0 $((SHARDS - 1))); do
    extra=""; [[ $tool == memcheck ]] && extra="--leak-check no"
    ( timeout 400 compute-sanitizer --tool $tool $extra --print-limit 50 \
        python3 scripts/replay_kernels.py "$REC" --shard "$s/$SHARDS" --verbose \
        > "$L/$tool-$s.txt" 2>&1
      echo "rc=$?" >> "$L/$tool-$s.txt" ) &
  done
done
wait
python3 - "$L" "$OUT" $(( $(date +%s) - start )) <<'PY'
import json, re, sys
from pathlib import Path
logs, out, seconds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
summary = {"seconds": seconds, "suite": (logs / "suite.txt").read_text().strip().splitlines()[-2:],
           "plain": (logs / "replay-plain.txt").read_text().strip().splitlines()[-2:], "tools": {}}
for tool in ("memcheck", "racecheck", "initcheck"):
    t = {"kernels_started": 0, "kernels_replayed": 0, "errors": 0, "hazards": 0,
         "failed": 0, "shards_ok": 0, "shards": 0}
    for f in sorted(logs.glob(f"{tool}-*.txt")):
        text = f.read_text()
        t["shards"] += 1
        t["kernels_started"] += len(re.findall(r"^kernel \d+:", text, re.M))
        m = re.search(r"replayed (\d+) kernels .*; (\d+) failed", text)
        if m:
            t["kernels_replayed"] += int(m.group(1))
            t["failed"] += int(m.group(2))
        t["errors"] += sum(int(x) for x in re.findall(r"ERROR SUMMARY: (\d+) error", text))
        t["hazards"] += sum(int(x) for x in re.findall(r"\((\d+) errors, \d+ warnings\)", text))
        t["hazards"] += sum(int(x) for x in re.findall(r"\(\d+ errors, (\d+) warnings\)", text))
        t["shards_ok"] += text.rstrip().endswith("rc=0")
    summary["tools"][tool] = t
(out / "sanitizer.json").write_text(json.dumps(summary, indent=1) + "\n")
lines = [f"{k}: {v}" for k, v in summary["tools"].items()]
(out / "sanitizer.txt").write_text("\n".join(summary["suite"] + summary["plain"] + lines) + "\n")
print("\n".join(lines))
PY
tar czf "$OUT/sanitizer-logs.tgz" -C "$OUT" logs && rm -rf "$L"
