"""Host time of a warm call, piece by piece, against PyTorch's own ops in the same run.

A tiny problem ([1, 16, 16]) makes the device work negligible; calls are queued
without synchronising (rounds of 100, short enough not to fill the launch queue),
so wall time per call is host time (the device keeps up: its time per call is
printed beside it). The ladder separates what each layer adds: PyTorch's floor
(an elementwise op and a cumsum: dispatcher, allocation, launch), the C++ op
called directly, the op through torch.ops' overload packet, mixir.ops.scan
(Python checks), then autograd recording and a backward pass; last, a warm
chunk_gated_delta_rule at (B, T, H, K) = (1, 64, 4, 64) bf16 (its kernels'
device time beside it). The same script runs against an older checkout
(PYTHONPATH) for before/after rows.

    python bench/host_overhead.py [--device cuda|cpu] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

import mixir
import importlib

scan_module = importlib.import_module("mixir.ops.scan")


def host_us(fn, calls: int, device: str) -> float:
    """Median over rounds of host microseconds per call (no sync inside a round)."""
    for _ in range(50):
        fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    per_round = 100
    rounds = []
    for _ in range(max(5, calls // per_round)):
        sync()
        t = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - t) / per_round * 1e6)
        sync()
    return statistics.median(rounds)


def device_us(fn, calls: int) -> float:
    """Device microseconds per call (CUDA events around a queued batch)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls * 1e3


def kernels_us(fn, calls: int = 200) -> float:
    """Device microseconds of one call's kernels alone: the call captured into a CUDA
    graph and replayed (no host work between its kernels); NaN where it cannot be
    captured (autograd's backward)."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        for _ in range(10):
            graph.replay()
        return device_us(graph.replay, calls)
    except Exception:
        torch.cuda.synchronize()
        return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--out", default=None)
    p.add_argument("--tag", default="", help="suffix of the JSON file (e.g. 'before')")
    args = p.parse_args()
    dev = args.device
    x = torch.rand(1, 16, 16, device=dev)
    xg = x.clone().requires_grad_()
    gout = torch.ones_like(x)
    window = mixir.ops.jagged(16, 2)
    op = torch.ops.mixir.scan.default

    def fwd_bwd_scan():
        h, _ = mixir.ops.scan(xg, xg, window=window)
        torch.autograd.grad(h, (xg,), gout)

    def fwd_bwd_cumsum():
        torch.autograd.grad(torch.cumsum(xg, 1), (xg,), gout)

    from mixir.ops.linear_attention import chunk_gated_delta_rule
    gen = torch.Generator(device=dev).manual_seed(0)
    B, T, H, K = 1, 64, 4, 64
    q, k, v = (torch.randn(B, T, H, K, device=dev, generator=gen).to(torch.bfloat16)
               for _ in range(3))
    k = torch.nn.functional.normalize(k.float(), dim=-1).to(torch.bfloat16)
    g = -torch.rand(B, T, H, device=dev, generator=gen) * 0.1
    beta = torch.rand(B, T, H, device=dev, generator=gen).to(torch.bfloat16)

    ladder = [
        ("torch.neg (PyTorch floor)", lambda: torch.neg(x)),
        ("torch.cumsum (PyTorch floor)", lambda: torch.cumsum(x, 1)),
        ("torch.ops.mixir.scan.default", lambda: op(x, x, None, False, False, 16, 2)),
        ("torch.ops.mixir.scan (packet)",
         lambda: torch.ops.mixir.scan(x, x, None, False, False, 16, 2)),
        ("mixir.ops.scan", lambda: mixir.ops.scan(x, x, window=window)),
        ("mixir.ops.scan, requires_grad (forward only)",
         lambda: mixir.ops.scan(xg, xg, window=window)),
        ("torch.cumsum, requires_grad (forward only)", lambda: torch.cumsum(xg, 1)),
        ("mixir.ops.scan forward + backward", fwd_bwd_scan),
        ("torch.cumsum forward + backward", fwd_bwd_cumsum),
        ("chunk_gated_delta_rule (1, 64, 4, 64) bf16",
         lambda: chunk_gated_delta_rule(q, k, v, g, beta)),
    ]
    rows = []
    cpp_ops = getattr(scan_module, "CPP_OPS", True)  # older checkouts had a Python fallback
    print(f"device {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}; "
          f"mixir at {os.path.dirname(mixir.__file__)}; C++ ops: {cpp_ops}; "
          "[1, 16, 16] fp32, jagged block 16 k 2")
    for label, fn in ladder:
        h = host_us(fn, args.calls, dev)
        d = device_us(fn, args.calls) if dev == "cuda" else float("nan")
        kern = kernels_us(fn) if dev == "cuda" else float("nan")
        rows.append({"call": label, "host_us": h, "device_us": d, "kernels_us": kern})
        print(f"{label:48s} host {h:7.2f} us/call   device {d:7.2f} us/call   "
              f"kernels alone (graph replay) {kern:7.2f} us")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"host_overhead_{dev}{args.tag and '_' + args.tag}.json"), "w") as f:
            json.dump({"device": dev, "mixir": os.path.dirname(mixir.__file__),
                       "cpp_ops": cpp_ops, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
