"""The chunk-parallel schedule against the fused one, forced through lowering_config,
with fla in the same run: the gated delta rule at S2 (d = 128, grouped value heads),
forward.

    python bench/sweep_chunk_parallel.py [--out DIR] [--rows 0,1,...]

Each row: the fused kernel (chunk_parallel = -1), the chunk-parallel schedule
(chunk_parallel = 10^6), the strategy's choice, and fla; the fused kernel's block
count N H V / 64 is what the strategy compares with the SM count.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_linear_attention import (fla_ops, flops, make_grouped, s2_cases,  # noqa: E402
                                    save_rows)
from bench_scan import bench  # noqa: E402

from mixir.ops import linear_attention as la  # noqa: E402

PEAK = 989e12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--rows", default=None)
    a = ap.parse_args()
    peer = fla_ops().get("gated_delta_rule")
    keep = None if not a.rows else set(a.rows.split(","))
    rows = []
    for i, (B, T, Hq, Hv, cu) in enumerate(s2_cases()):
        if keep is not None and str(i) not in keep:
            continue
        q, k, v, g, beta = make_grouped(B, T, Hq, Hv, 128)
        kw = {} if cu is None else {"cu_seqlens": torch.tensor(cu, dtype=torch.int32,
                                                               device="cuda")}
        N = B if cu is None else len(cu) - 1
        row = {"index": i, "shape": [B, T], "heads": [Hq, Hv], "varlen": cu,
               "fused_blocks": N * Hv * 2}
        ref = None
        for name, cfg in (("fused", "#mixer.lowering_config<chunk_parallel = -1>"),
                          ("chunk_parallel", "#mixer.lowering_config<chunk_parallel = 1000000>"),
                          ("strategy", None)):
            fn = lambda: la.linear_attention(q, k, v, g, beta, lowering_config=cfg, **kw)  # noqa
            o, _ = fn()
            if ref is None:
                ref = o.float()
            else:
                row[f"{name}_rel_vs_fused"] = ((o.float() - ref).abs().max()
                                               / ref.abs().max()).item()
            row[f"{name}_ms"] = bench(fn)
        nflop = flops(B, T, Hv, 128, 128, delta=True)
        row["strategy_tflops"] = nflop / row["strategy_ms"] / 1e9
        if peer is not None:
            try:
                peer(q, k, v, g, beta, **kw)
                row["fla_ms"] = bench(lambda: peer(q, k, v, g, beta, **kw))
                row["x_fla"] = row["fla_ms"] / row["strategy_ms"]
            except Exception as e:
                row["fla_error"] = repr(e)[:120]
        rows.append(row)
        lens = "+".join(map(str, [T] if cu is None else [y - x for x, y in zip(cu, cu[1:])]))
        print(f"S2 {i:2d} ({Hq:2d},{Hv:2d}) {lens:>11s} x{B} blocks {row['fused_blocks']:5d} | "
              f"fused {row['fused_ms']:.3f} | chunk-parallel {row['chunk_parallel_ms']:.3f} "
              f"(rel {row['chunk_parallel_rel_vs_fused']:.1e}) | strategy {row['strategy_ms']:.3f} ms "
              f"{row['strategy_tflops']:.0f} TFLOP/s" +
              (f" | fla {row['fla_ms']:.3f} x{row['x_fla']:.2f}" if "fla_ms" in row else ""),
              flush=True)
        del q, k, v, g, beta
        torch.cuda.empty_cache()
        save_rows(a.out, "sweep_chunk_parallel.json", rows)


if __name__ == "__main__":
    main()
