"""The tensor-core kernel's value tile against the thread blocks it leaves: the gated
delta rule (S2 rows with one long sequence) and simple GLA at block_v = 64, 32, 16
(forced through lowering_config), forward, against fla in the same run.

    python bench/sweep_block_v.py [--out DIR]

Question measured: with few (value tile, head, sequence) blocks, does a narrower
value tile (more blocks, each repeating the chunk's Q K^T) win?
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_linear_attention import fla_ops, make_grouped, save_rows  # noqa: E402
from bench_scan import bench  # noqa: E402

from mixir.ops import linear_attention as la  # noqa: E402

CASES = [("gated_delta_rule", 1, 32768, 16, 64), ("gated_delta_rule", 1, 32768, 16, 32),
         ("gated_delta_rule", 1, 8192, 16, 64), ("gated_delta_rule", 8, 1024, 16, 64),
         ("simple_gla", 1, 32768, 16, 16), ("simple_gla", 1, 65536, 16, 16)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    peers = fla_ops()
    rows = []
    for op, B, T, Hq, Hv in CASES:
        q, k, v, g, beta = make_grouped(B, T, Hq, Hv, 128)
        if op == "simple_gla":
            beta = None
        row = {"op": op, "shape": [B, T, Hq, Hv], "ms": {}}
        for bv in (64, 32, 16):
            # simple GLA: without the sequence split, so that the tile alone is measured
            split = ", sequence_split = #mixer.sequence_split<max_programs = 1, target_programs = 1>" if op == "simple_gla" else ""
            cfg = f"#mixer.lowering_config<block_v = {bv}{split}>"
            fn = lambda: la.linear_attention(q, k, v, g, beta, lowering_config=cfg)  # noqa
            fn()
            row["ms"][bv] = bench(fn)
        peer = peers.get(op)
        if peer is not None:
            args = (q, k, v, g, beta) if beta is not None else (q, k, v, g)
            peer(*args)
            row["fla_ms"] = bench(lambda: peer(*args))
        rows.append(row)
        print(f"{op:17s} B={B} T={T} (h_qk, h_v)=({Hq},{Hv}) " +
              " ".join(f"bv{bv}: {t:.3f} ms" for bv, t in row["ms"].items()) +
              (f" | fla {row['fla_ms']:.3f} ms" if "fla_ms" in row else ""), flush=True)
        save_rows(a.out, "sweep_block_v.json", rows)


if __name__ == "__main__":
    main()
