"""Sweep of the BTP-layout jagged scan's launch shape (strategy search, not a test).

Compiles mixer.scan (forward) and its compiler-derived adjoint (backward) for
time-contiguous operands with vector-alignment=16 under several thread-block shapes,
tile lengths and index widths, and times each kernel alone on the S7 shape
[16, 128, 16, 4096] (bf16 in, fp32 out) against the copy bandwidth measured in the
same run. Two thread orders: channels on threadIdx.x with time tiles on z (the
[B, T, D] order), and time tiles on threadIdx.x with channels on y (`time-fastest`;
the forward also with the warp-level output exchange, `exchange-output`).

    python bench/sweep_btp.py [--quick]
"""

import argparse
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_scan import bench, copy_bandwidth  # noqa: E402

from mixir.ops.scan import Window, _Kernel, scan_ir  # noqa: E402


def configs(kind: str, quick: bool):
    """Launch shapes tried for the forward or the backward kernel."""
    channel_first = [f"block-size=16 block-z={bz} tile-size=16" for bz in (8, 32)]
    time_first = [f"time-fastest=1 sink-constants=1 block-size={bx} block-y={by} tile-size=16"
                  for bx, by in itertools.product((32, 64, 128), (1, 4, 16)) if bx * by <= 1024]
    if kind == "fwd":
        time_first += [c.replace("time-fastest=1", "time-fastest=1 exchange-output=1")
                       for c in time_first]
    if quick:
        return channel_first[:1] + time_first[::3]
    return channel_first + time_first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    copy_gbs = copy_bandwidth()
    B, H, L = 16, 128, 4096
    dev = torch.device("cuda")
    coeff = torch.rand(B, H, L, device=dev).bfloat16()
    x = torch.randn(B, H, 16, L, device=dev).bfloat16()
    a = coeff.reshape(B * H, L, 1).expand(B * H, L, 16)
    u = x.reshape(B * H, 16, L).transpose(1, 2)
    h = torch.empty(B * H, 16, L, device=dev).transpose(1, 2)
    dh = torch.randn(B * H, 16, L, device=dev).transpose(1, 2)
    fin = torch.empty(B * H, 16, device=dev)
    dfin = torch.zeros(B * H, 16, device=dev)
    da = torch.empty(B * H, 16, L, device=dev, dtype=torch.bfloat16).transpose(1, 2)
    du = torch.empty_like(da)
    n = x.numel()
    # Minimum traffic of each kernel: forward x in (2 B), h out (4 B), one gate per head;
    # backward x (2 B) and dh (4 B) in, per-channel da (2 B) and dx (2 B) out.
    fwd_bytes, bwd_bytes = n * 6 + coeff.numel() * 2, n * 10 + coeff.numel() * 2
    print(f"copy {copy_gbs:.0f} GB/s; [B, H, 16, L] = [{B}, {H}, 16, {L}]", flush=True)
    runs = [(k, kind, shape, bits) for k, kind in itertools.product((2, 1), ("fwd", "bwd"))
            for shape in configs(kind, args.quick) for bits in (32, 64)]
    for k, kind, shape, bits in runs:
        ir = scan_ir("bf16", "bf16", "f32", Window("jagged", 16, k), False, False, False, True, 7)
        opts = f"{shape} vector-alignment=16 index-bitwidth={bits}"
        try:
            if kind == "fwd":
                kern = _Kernel(ir, 4, dev, opts)
                call = lambda: kern(a, u, h, fin)  # noqa: E731
            else:
                kern = _Kernel(ir, 7, dev, "adjoint=1 " + opts, entry="scan_adjoint")
                call = lambda: kern(a, u, h, dh, dfin, da, du)  # noqa: E731
            call()
            ms = bench(call)
        except Exception as e:  # a shape the pipeline rejects is reported, not fatal
            print(f"k={k} {kind} {opts}: failed {type(e).__name__}: {str(e)[:120]}", flush=True)
            continue
        gbs = (fwd_bytes if kind == "fwd" else bwd_bytes) / ms / 1e6
        print(f"k={k} {kind} {opts}: {ms:.3f} ms {gbs:.0f} GB/s {100 * gbs / copy_gbs:.1f}%",
              flush=True)


if __name__ == "__main__":
    main()
