"""What a memory-bound kernel can reach on this GPU for a given read/write mix.

The copy line (bench_scan.copy_bandwidth) moves as many bytes in as out. BTP's forward
reads 2 B (bf16) and writes 4 B (fp32) per element. This times the plainest kernels
with each mix over the S7 element count, PyTorch's and a Triton streaming kernel
(several block sizes; the best is the practical roof of the mix):

    python bench/roof_mix.py
"""

import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, os.path.dirname(__file__))
from bench_scan import bench, copy_bandwidth  # noqa: E402


@triton.jit
def _convert(src, dst, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(dst + offs, tl.load(src + offs, mask=mask).to(dst.dtype.element_ty), mask=mask)


def main():
    copy_gbs = copy_bandwidth()
    n = 16 * 128 * 16 * 4096
    print(f"copy {copy_gbs:.0f} GB/s; n = {n}", flush=True)
    x16 = torch.randn(n, device="cuda").bfloat16()
    y32 = torch.empty(n, device="cuda")
    x32 = torch.randn(n, device="cuda")
    y16 = torch.empty(n, device="cuda", dtype=torch.bfloat16)

    def report(name, ms, nbytes):
        gbs = nbytes / ms / 1e6
        print(f"{name}: {ms:.3f} ms {gbs:.0f} GB/s {100 * gbs / copy_gbs:.1f}% copy", flush=True)

    report("torch bf16->fp32 (read 2, write 4)", bench(lambda: y32.copy_(x16)), 6 * n)
    report("torch fp32->bf16 (read 4, write 2)", bench(lambda: y16.copy_(x32)), 6 * n)
    report("torch fp32 copy (read 4, write 4)", bench(lambda: y32.copy_(x32)), 8 * n)
    report("torch fp32 zero_ (write 4)", bench(lambda: y32.zero_()), 4 * n)
    report("torch bf16 sum (read 2)", bench(lambda: x16.sum()), 2 * n)
    for block, warps in ((1024, 4), (2048, 4), (4096, 8), (8192, 8), (16384, 16)):
        grid = (triton.cdiv(n, block),)
        ms = bench(lambda: _convert[grid](x16, y32, n, BLOCK=block, num_warps=warps))
        report(f"triton bf16->fp32 BLOCK={block} warps={warps}", ms, 6 * n)


if __name__ == "__main__":
    main()
