"""Sweep of the BTP-layout jagged forward's launch shape (strategy search, not a test).

Compiles mixer.scan for time-contiguous operands with vector-alignment=16 under several
tile lengths, thread-block shapes and index widths, and times each on the S7 shape
[16, 128, 16, 4096] (bf16 in, fp32 out) against the copy bandwidth.

    python bench/sweep_btp.py
"""

import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_scan import bench, copy_bandwidth  # noqa: E402

from mixir.ops.scan import Window, _Kernel, scan_ir  # noqa: E402


def main():
    copy_gbs = copy_bandwidth()
    B, H, L = 16, 128, 4096
    coeff = torch.rand(B, H, L, device="cuda").bfloat16()
    x = torch.randn(B, H, 16, L, device="cuda").bfloat16()
    a = coeff.reshape(B * H, L, 1).expand(B * H, L, 16)
    u = x.reshape(B * H, 16, L).transpose(1, 2)
    h = torch.empty(B * H, 16, L, device="cuda").transpose(1, 2)
    fin = torch.empty(B * H, 16, device="cuda")
    nbytes = x.numel() * 6 + coeff.numel() * 2
    print(f"copy {copy_gbs:.0f} GB/s", flush=True)
    for k, tile, bz, bits in itertools.product((2, 1), (16, 32, 64, 128, 256), (8, 16, 32),
                                               (64, 32)):
        ir = scan_ir("bf16", "bf16", "f32", Window("jagged", 16, k), False, False, False, True, 7)
        opts = (f"block-size=16 block-z={bz} tile-size={tile} vector-alignment=16 "
                f"index-bitwidth={bits}")
        try:
            kern = _Kernel(ir, 4, torch.device("cuda"), opts)
            kern(a, u, h, fin)
            ms = bench(lambda: kern(a, u, h, fin))
        except Exception as e:
            print(f"k={k} {opts}: failed {type(e).__name__}: {str(e)[:120]}", flush=True)
            continue
        gbs = nbytes / ms / 1e6
        print(f"k={k} {opts}: {ms:.3f} ms {gbs:.0f} GB/s {100 * gbs / copy_gbs:.1f}%", flush=True)


if __name__ == "__main__":
    main()
