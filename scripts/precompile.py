"""Builds the kernels of recorded calls ahead of time into a compile cache.

The torch ops append every call they compile to $MIXIR_RECORD (one JSON line: the
op, its operands' facts, the attributes and the device's facts). This script
compiles each distinct call again through the same C ABI, on any machine (sm_90a
PTX needs no GPU), into $MIXIR_CACHE_DIR (or --cache). Carried to the GPU host,
that cache turns every compile of a recorded call into a load: the entries' key
is the compiler build, the target, the options and the IR, so a host running the
same libmixir_c.so finds them.

    MIXIR_RECORD=calls.jsonl python -m pytest -m gpu test/python   # on the GPU host
    python scripts/precompile.py calls.jsonl --cache .device/mixir-cache --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))


def distinct_calls(path: Path) -> list:
    seen, calls = set(), []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        key = json.dumps(json.loads(line), sort_keys=True)
        if key not in seen:
            seen.add(key)
            calls.append(json.loads(key))
    return calls


def compile_one(call: dict) -> tuple:
    from mixir import _compiler, runtime
    names = {code: name for name, code in _compiler.DTYPES.items()}
    operands = [_compiler.Operand(o["role"], names[o["dtype"]], o["sizes"], o["strides"],
                                  o["alignment"]) for o in call["operands"]]
    start = time.perf_counter()
    try:
        _compiler.compile_call(call["op"], operands, call["attributes"] or None, call["target"],
                               call["sm_count"], call["shared_memory"],
                               bool(call["offsets_fit_i32"]), runtime=runtime.library_path())
        return call["op"], time.perf_counter() - start, None
    except _compiler.CompileError as e:
        return call["op"], time.perf_counter() - start, str(e).splitlines()[0][:200]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("record", type=Path, help="a $MIXIR_RECORD file (JSON lines)")
    p.add_argument("--cache", type=Path, default=None, help="cache directory "
                   "(default: $MIXIR_CACHE_DIR or ~/.cache/mixir)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
        os.environ["MIXIR_CACHE_DIR"] = str(args.cache.resolve())
    calls = distinct_calls(args.record)
    start = time.perf_counter()
    refused = failed = 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for op, seconds, error in pool.map(compile_one, calls):
            # Calls the op's verifier rejects were recorded too (the torch op then
            # takes its other path): nothing to cache. Any other error is one.
            if error and "does not make a valid op" in error:
                refused += 1
            elif error:
                failed += 1
                print(f"{op}: {error}", file=sys.stderr)
    print(f"{len(calls)} distinct calls ({refused} not ops, {failed} failed) in "
          f"{time.perf_counter() - start:.0f} s into {os.environ.get('MIXIR_CACHE_DIR')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
