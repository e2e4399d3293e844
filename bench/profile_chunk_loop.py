"""One call of the gated delta rule at a few-blocks shape, for ncu: the fused
sequential kernel and the chunk-parallel state pass (whose per-chunk latency trails
fla's chunk_fwd_h, bench/results/README.md).

    ncu --set full -k regex:'chunk_states|_chunked' -c 2 -o OUT/gdr \\
        python bench/profile_chunk_loop.py [--T 32768] [--heads 8]

The first call compiles and warms up; the profiled calls follow (one per schedule).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_linear_attention import make_grouped  # noqa: E402

from mixir.ops import linear_attention as la  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=32768)
    ap.add_argument("--heads", type=int, default=8, help="value heads (query heads: a quarter)")
    a = ap.parse_args()
    q, k, v, g, beta = make_grouped(1, a.T, max(1, a.heads // 4), a.heads, 128)
    for cfg in ("#mixer.lowering_config<chunk_parallel = -1>",
                "#mixer.lowering_config<chunk_parallel = 1000000>"):
        la.linear_attention(q, k, v, g, beta, lowering_config=cfg)  # compile, warm up
    torch.cuda.synchronize()
    for cfg in ("#mixer.lowering_config<chunk_parallel = -1>",
                "#mixer.lowering_config<chunk_parallel = 1000000>"):
        la.linear_attention(q, k, v, g, beta, lowering_config=cfg)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
