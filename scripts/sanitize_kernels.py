"""compute-sanitizer over one representative call of every kernel the GPU suite compiles.

    # on the GPU host: the suite once, recording each test's compiled calls
    MIXIR_RECORD_TESTS=DIR python -m pytest -m gpu -n 14 test/python
    # then, there too: the fewest tests that compile every recorded kernel, each tool
    python scripts/sanitize_kernels.py DIR --out OUT [--tools memcheck,racecheck,initcheck]

A kernel is a distinct compiled module: the IR the call builder makes of a recorded
call (the op, its attributes, dtypes, layout facts and static sizes: what the
compile cache keys on). The conftest writes a {"test": nodeid}
line before each test's calls (DIR/calls-<worker>.jsonl); a greedy set cover picks
the tests, which then run under each tool in parallel shards (one process per
shard, so every kernel compiles and runs again under the tool). The summary
(OUT/sanitizer.json, OUT/sanitizer.txt) counts the errors each tool reports, and
of them those in mixir's kernels (`<op>_kernel[_N]`); every log is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The functions the C ABI's call builder names after the op; kernels are outlined as
# <function>_kernel, <function>_kernel_0, ...
OUR_KERNEL = re.compile(r"\b(?:scan|scan_adjoint|channel_scan|channel_scan_adjoint|"
                        r"linear_attention|linear_attention_adjoint|mlstm\w*)_kernel(?:_\d+)?\b")


def kernel_of(call: dict, memo: dict) -> str:
    """The kernel a recorded call compiles: the IR the call builder makes of it (what
    the compile cache keys on; sizes that are not static in it do not count)."""
    key = json.dumps(call, sort_keys=True)
    if key not in memo:
        sys.path.insert(0, str(ROOT / "python"))
        from mixir import _compiler
        names = {code: name for name, code in _compiler.DTYPES.items()}
        operands = [_compiler.Operand(o["role"], names[o["dtype"]], o["sizes"], o["strides"],
                                      o["alignment"]) for o in call["operands"]]
        try:
            ir = _compiler.build_call(call["op"], operands, call["attributes"] or None,
                                      call["target"], call["sm_count"], call["shared_memory"],
                                      bool(call["offsets_fit_i32"]))
        except _compiler.CompileError:
            ir = key  # a call the builder refuses: counted as itself
        memo[key] = call["target"] + "\n" + ir
    return memo[key]


def tests_and_kernels(record_dir: Path, seconds: dict = None) -> dict:
    """nodeid -> the set of kernels it compiled first in its worker (and into
    `seconds`, nodeid -> its recorded time)."""
    per_test: dict = {}
    memo: dict = {}
    seconds = {} if seconds is None else seconds
    for path in sorted(record_dir.glob("calls-*.jsonl")):
        test = None
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if "test" in entry:
                test = entry["test"]
                per_test.setdefault(test, set())
            elif "test_seconds" in entry:
                seconds[test] = entry["test_seconds"]
            elif test is not None and entry.get("target", "").startswith("sm_"):
                per_test[test].add(kernel_of(entry, memo))
    return per_test


def cover(per_test: dict, seconds: dict = None) -> list:
    """Greedy weighted set cover: tests in order of the most kernels not yet covered
    per second of the test's own time (plus a second: a sanitizer's fixed cost per
    test), so that cheap forward tests cover what they can before gradient tests."""
    seconds = seconds or {}
    left = set().union(*per_test.values()) if per_test else set()
    chosen = []
    while left:
        test = max(per_test,
                   key=lambda t: (len(per_test[t] & left) / (1.0 + seconds.get(t, 0.0)), t))
        gained = per_test[test] & left
        if not gained:
            break
        chosen.append(test)
        left -= gained
    return chosen


def run_shard(tool: str, shard: int, tests: list, out: Path, timeout: int) -> dict:
    log = out / f"{tool}-{shard}.log"
    cmd = ["compute-sanitizer", f"--tool={tool}", "--print-limit=50", "--error-exitcode=99",
           "--target-processes=all"]
    cmd += [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    start = time.time()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    text = log.read_text(errors="replace")
    # compute-sanitizer's own total, and the errors attributed to our kernels.
    totals = [int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) error", text)]
    reports = re.split(r"\n(?========= (?:Invalid|Uninitialized|Error|Race|Warning))", text)
    ours = sum(1 for r in reports if r.startswith("========= ") and OUR_KERNEL.search(r))
    passed = re.search(r"(\d+) passed", text)
    return {"tool": tool, "shard": shard, "tests": len(tests), "rc": rc,
            "errors": sum(totals), "errors_in_mixir_kernels": ours,
            "passed": int(passed.group(1)) if passed else 0,
            "seconds": round(time.time() - start, 1), "log": log.name}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("record", type=Path, help="the MIXIR_RECORD_TESTS directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tools", default="memcheck,racecheck,initcheck")
    p.add_argument("--shards", type=int, default=4, help="parallel processes per tool")
    p.add_argument("--timeout", type=int, default=480, help="seconds per shard")
    p.add_argument("--select-only", action="store_true", help="print the chosen tests and stop")
    args = p.parse_args()

    seconds: dict = {}
    per_test = tests_and_kernels(args.record, seconds)
    kernels = set().union(*per_test.values()) if per_test else set()
    chosen = cover(per_test, seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sanitizer-tests.txt").write_text("\n".join(chosen) + "\n")
    print(f"{len(kernels)} kernels compiled by {len(per_test)} tests; "
          f"{len(chosen)} tests cover them all")
    if args.select_only:
        return 0
    # Shards of similar size; each tool runs all of them.
    shards = [chosen[i::args.shards] for i in range(args.shards)]
    jobs = [(tool, i, shard) for tool in args.tools.split(",") for i, shard in enumerate(shards)
            if shard]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda j: run_shard(*j, args.out, args.timeout), jobs))
    summary = {"kernels": len(kernels), "tests_recorded": len(per_test), "tests_run": len(chosen),
               "shards": results}
    (args.out / "sanitizer.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [f"{len(kernels)} kernels (distinct compiled calls) of {len(per_test)} GPU tests; "
             f"{len(chosen)} tests cover them, run under each tool in {args.shards} shards"]
    for tool in args.tools.split(","):
        rs = [r for r in results if r["tool"] == tool]
        lines.append(f"{tool}: errors {sum(r['errors'] for r in rs)} "
                     f"(in mixir kernels {sum(r['errors_in_mixir_kernels'] for r in rs)}), "
                     f"tests passed {sum(r['passed'] for r in rs)}/{sum(r['tests'] for r in rs)}, "
                     f"rc {[r['rc'] for r in rs]}, {max(r['seconds'] for r in rs):.0f} s")
    (args.out / "sanitizer.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    clean = all(r["errors"] == 0 and r["rc"] == 0 for r in results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
