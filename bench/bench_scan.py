"""Forward and backward of mixir.ops.scan (global and jagged) on the GPU, against the
PyTorch reference (eager and torch.compile) measured in the same run.

    python bench/bench_scan.py [--out DIR] [--quick]

Memory-bound: quoted as GB/s of minimum traffic (each needed input read once, each output
written once: forward a, b -> h; backward jagged a, b, dh -> da, db, global a, h, dh -> da,
db) and as % of the device-to-device copy bandwidth measured here.
Shapes: S7 [B, T, D] with D = 2048 (128 heads x 16), B*T = 65,536; S6 [B, T, D] with
T = 2048, B = 32, D = 4096. bf16 gates and inputs, fp32 state and output.
"""

import argparse
import json
import os
import time

import torch
import torch._functorch.config
import triton.testing

import mixir


def bench(fn, rep=200):
    return triton.testing.do_bench(fn, warmup=25, rep=rep, return_mode="median")


def peer(measure):
    """A peer's time in ms, or NaN when the peer runs out of memory at this size (or
    when MIXIR_BENCH_NO_PEERS=1: a before/after run of mixir alone)."""
    if os.environ.get("MIXIR_BENCH_NO_PEERS") == "1":
        return float("nan")
    try:
        return measure()
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return float("nan")


def copy_bandwidth():
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() * 4 / ms / 1e6  # GB/s, bytes read + written


# ---- PyTorch reference: blockwise (spec 2.2) in log space, per-channel gates ----

def _blocks(a, b, block):
    B, T, D = b.shape
    pad = (-T) % block
    if pad:
        a = torch.cat([a, a.new_ones(B, pad, D)], 1)
        b = torch.cat([b, b.new_zeros(B, pad, D)], 1)
    n = a.shape[1] // block
    la = torch.log(a.float().clamp_min(1e-30)).view(B, n, block, D)
    cs = la.cumsum(2)                                           # inclusive, in block
    seg = cs[:, :, :, None, :] - cs[:, :, None, :, :]           # S(i, j), 16 terms at most
    mask = torch.ones(block, block, dtype=torch.bool, device=a.device).tril()
    L = torch.where(mask[None, None, :, :, None], seg.exp(), 0.0)
    local = torch.einsum("bnijd,bnjd->bnid", L, b.float().view(B, n, block, D))
    return local, cs, T


def ref_jagged(a, b, block=16, k=2):
    B, T, D = b.shape
    local, cs, _ = _blocks(a, b, block)
    if k == 2:
        carry = torch.cat([torch.zeros_like(local[:, :1, -1]), local[:, :-1, -1]], 1)
        local = local + cs.exp() * carry[:, :, None, :]
    return local.reshape(B, -1, D)[:, :T]


def ref_global(a, b, block=16):
    """Two-level: blockwise local scans, then the same scan over block summaries."""
    B, T, D = b.shape
    if T <= block:
        h, out = torch.zeros(B, D, device=b.device), []
        for t in range(T):
            h = a[:, t].float() * h + b[:, t].float()
            out.append(h)
        return torch.stack(out, 1)
    local, cs, _ = _blocks(a, b, block)
    carry = ref_global(cs[:, :, -1].exp(), local[:, :, -1], block)   # state at block ends
    prev = torch.cat([torch.zeros_like(carry[:, :1]), carry[:, :-1]], 1)
    return (local + cs.exp() * prev[:, :, None, :]).reshape(B, -1, D)[:, :T]


def scan_call_ir():
    """The IR of a bf16 jagged (k = 1) reverse log-space scan at [2, 4096, 2048], as the op
    builds it, and the runtime library path (an older checkout built IR in Python)."""
    try:
        from mixir import runtime
        x = torch.empty(2, 4096, 2048, dtype=torch.bfloat16, device="meta")
        h = torch.empty(2, 4096, 2048, device="meta")
        dt = {torch.bfloat16: "bf16", torch.float32: "f32"}
        ops = [mixir.Operand(r, dt[t.dtype], t.shape, t.stride())
               for r, t in [("gates", x), ("inputs", x), ("output", h)]]
        ir = mixir.build_call("scan", ops, "{window = #mixer.window<jagged, block = 16, k = 1>, "
                              "reverse, log_space}", "sm_90a", 132, 232448)
        return ir, runtime.library_path()
    except (ImportError, AttributeError):
        from mixir import _runtime
        from mixir.ops.scan import scan_ir
        return (scan_ir("bf16", "bf16", "f32", mixir.ops.jagged(k=1), True, True, False, True),
                _runtime.library_path())


def clear_memory_cache():
    from mixir import cache
    if hasattr(cache, "clear_memory"):
        cache.clear_memory()
    else:
        cache._memory.clear()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    p.add_argument("--tag", default="", help="suffix of the output files")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sets", default="S6,S7", help="comma-separated benchmark sets")
    args = p.parse_args()
    torch.manual_seed(0)
    # The backward of each variant is timed repeatedly on one graph (retain_graph).
    torch._functorch.config.donated_buffer = False
    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    print(f"device: {dev}; copy bandwidth {bw:.0f} GB/s (read + write)")
    results = {"device": dev, "copy_GBps": bw, "rows": []}

    shapes = [("S7", 16, 4096, 2048), ("S7", 8, 8192, 2048), ("S7", 2, 32768, 2048),
              ("S6", 32, 2048, 4096)]
    shapes = [s for s in shapes if s[0] in args.sets.split(",")]
    if args.quick:
        shapes = shapes[:1]
    cases = [("jagged k=2", mixir.ops.jagged(k=2), lambda a, b: ref_jagged(a, b)),
             ("global", None, ref_global)]
    header = (f"{'set':<4}{'op':<12}{'B':>4}{'T':>7}{'D':>6} {'pass':<5}{'mixir ms':>9}"
              f"{'GB/s':>7}{'%copy':>7}{'eager ms':>9}{'compile ms':>11}{'x eager':>8}{'x comp':>7}")
    print(header)
    for (sset, B, T, D), (name, window, ref) in [(s, c) for s in shapes for c in cases]:
        a = torch.sigmoid(torch.randn(B, T, D, device="cuda")).to(torch.bfloat16)
        b = torch.randn(B, T, D, device="cuda").to(torch.bfloat16)
        n = B * T * D
        fwd = lambda: mixir.ops.scan(a, b, window=window)[0]  # noqa: E731
        h = fwd()
        err = peer(lambda: float((h - ref(a, b)).norm() / (h.norm())))
        del h
        compiled = torch.compile(ref)
        rows = []
        ms = bench(fwd)
        ms_e = peer(lambda: bench(lambda: ref(a, b)))
        ms_c = peer(lambda: bench(lambda: compiled(a, b)))
        rows.append(("fwd", ms, ms_e, ms_c, n * (2 + 2 + 4)))
        # Backward: gradient of h w.r.t. a and b (bf16), given an fp32 output gradient.
        ag, bg = a.clone().requires_grad_(), b.clone().requires_grad_()
        gout = torch.randn(B, T, D, device="cuda")
        hh = mixir.ops.scan(ag, bg, window=window)[0]
        mb = bench(lambda: torch.autograd.grad(hh, (ag, bg), gout, retain_graph=True))
        del hh
        hr = hc = None

        def eager_bwd():
            nonlocal hr
            hr = ref(ag, bg)
            return bench(lambda: torch.autograd.grad(hr, (ag, bg), gout, retain_graph=True))

        def compiled_bwd():
            nonlocal hc
            hc = compiled(ag, bg)
            return bench(lambda: torch.autograd.grad(hc, (ag, bg), gout, retain_graph=True))
        mb_e = peer(eager_bwd)
        hr = None
        mb_c = peer(compiled_bwd)
        # min IO of the backward: jagged reads a, b, dh (h is recomputed from a, b
        # inside a block) and writes da, db; global reads a, h, dh, writes da, db.
        bwd_bytes = n * (2 + 2 + 4 + 2 + 2) if window is not None else n * (2 + 4 + 4 + 2 + 2)
        rows.append(("bwd", mb, mb_e, mb_c, bwd_bytes))
        for pas, m, me, mc, nbytes in rows:
            gbs = nbytes / m / 1e6
            row = dict(set=sset, op=name, B=B, T=T, D=D, pass_=pas, ms=m, GBps=gbs,
                       pct_copy=100 * gbs / bw, eager_ms=me, compile_ms=mc, speedup_eager=me / m,
                       speedup_compile=mc / m, rel_err_vs_ref=err)
            results["rows"].append(row)
            print(f"{sset:<4}{name:<12}{B:>4}{T:>7}{D:>6} {pas:<5}{m:>9.3f}{gbs:>7.0f}"
                  f"{100 * gbs / bw:>6.1f}%{me:>9.3f}{mc:>11.3f}{me / m:>8.2f}{mc / m:>7.2f}"
                  f"   (rel err vs reference {err:.1e})")
        del a, b, ag, bg, hr, hc, gout, compiled
        torch._dynamo.reset()
        torch.cuda.empty_cache()

    # Host overhead of a warm call: many tiny launches queued, time per call on the host.
    a = torch.rand(1, 16, 16, device="cuda")
    for fn, label in [(lambda: torch.ops.mixir.scan(a, a, None, False, False, 16, 2), "op"),
                      (lambda: mixir.ops.scan(a, a, window=mixir.ops.jagged()), "mixir.ops.scan")]:
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(2000):
            fn()
        host_us = (time.perf_counter() - t) / 2000 * 1e6
        torch.cuda.synchronize()
        kernel_us = bench(fn) * 1e3
        results[f"host_us_{label}"] = host_us
        print(f"warm call ({label}): {host_us:.1f} us host per call; device time per call "
              f"{kernel_us:.1f} us")
    # Compile of one specialisation (IR -> PTX, host code JIT-compiled), cold and
    # from the disk cache, through the cache API (the op's own caches keep what
    # they compiled for the life of the process).
    import tempfile
    from mixir import cache
    os.environ["MIXIR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mixir-bench-cache-")
    ir, runtime_library = scan_call_ir()
    for label in ("cold", "disk cache hit"):
        clear_memory_cache()
        t = time.perf_counter()
        cache.compile_cached(ir, "sm_90a", "host=1", runtime=runtime_library)
        results[f"compile_ms_{label}"] = (time.perf_counter() - t) * 1e3
        print(f"{label}: compile (or load) {results[f'compile_ms_{label}']:.0f} ms")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"bench_scan{args.tag}.json"), "w") as f:
        json.dump(results, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(10, 4))
        labels = [f"{r['set']} {r['op']}\nT={r['T']} {r['pass_']}" for r in results["rows"]]
        xs = range(len(labels))
        ax.bar([x - 0.27 for x in xs], [r["pct_copy"] for r in results["rows"]], 0.27, label="mixir")
        ax.bar(xs, [100 * r["ms"] / r["eager_ms"] * r["pct_copy"] / 100 for r in results["rows"]],
               0.27, label="torch eager")
        ax.bar([x + 0.27 for x in xs],
               [r["ms"] / r["compile_ms"] * r["pct_copy"] for r in results["rows"]], 0.27,
               label="torch.compile")
        ax.set_xticks(list(xs), labels, fontsize=6)
        ax.set_ylabel("% of copy bandwidth (min IO)")
        ax.set_title(f"mixir scan on {dev}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, f"bench_scan{args.tag}.png"), dpi=120)
    except Exception as e:  # plotting is optional
        print("plot skipped:", e)


if __name__ == "__main__":
    main()
