"""Measure the forward scan's launch configurations (tile length, threads per block)
at one shape, so the defaults in mixir.ops.scan.gpu_config are chosen by measurement.

    python bench/sweep_scan.py [--B 2 --T 32768 --D 2048] [--window jagged|global]
"""

import argparse

import torch
import triton.testing

import mixir
from mixir.ops.scan import _ELEMENT, _Kernel, scan_ir


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--B", type=int, default=2)
    p.add_argument("--T", type=int, default=32768)
    p.add_argument("--D", type=int, default=2048)
    p.add_argument("--window", default="jagged")
    args = p.parse_args()
    B, T, D = args.B, args.T, args.D
    w = mixir.ops.jagged(k=2) if args.window == "jagged" else None
    x = torch.empty(1 << 28, device="cuda")
    y = torch.empty_like(x)
    copy = 2 * x.numel() * 4 / triton.testing.do_bench(lambda: y.copy_(x), return_mode="median") / 1e6
    del x, y
    a = torch.sigmoid(torch.randn(B, T, D, device="cuda")).to(torch.bfloat16)
    b = torch.randn(B, T, D, device="cuda").to(torch.bfloat16)
    h = torch.empty(B, T, D, device="cuda")
    f = torch.empty(B, D, device="cuda")
    ref, _ = mixir.ops.scan(a, b, window=w)
    ir = scan_ir(_ELEMENT[a.dtype], _ELEMENT[b.dtype], "f32", w or mixir.ops.Window(), False,
                 False, False, True)
    print(f"[B, T, D] = [{B}, {T}, {D}] {args.window}; copy {copy:.0f} GB/s")
    tiles = [256, 512, 1024] if w else [0]
    for tile, bs, unroll in [(t, bs, u) for t in tiles for bs in (64, 128, 256)
                             for u in (1, 4, 8, 16)]:
        if True:
            opts = f"block-size={bs} unroll={unroll}" + (f" tile-size={tile}" if w else "")
            k = _Kernel(ir, 4, torch.device("cuda"), opts)
            h.fill_(float("nan"))
            k(a, b, h, f)
            ok = torch.equal(h, ref)
            ms = triton.testing.do_bench(lambda: k(a, b, h, f), return_mode="median")
            gbs = B * T * D * 8 / ms / 1e6
            print(f"tile {tile:>5} block {bs:>4} unroll {unroll:>2}: {ms:7.3f} ms {gbs:6.0f} GB/s "
                  f"{100 * gbs / copy:5.1f}% {'ok' if ok else 'MISMATCH'}")


if __name__ == "__main__":
    main()
