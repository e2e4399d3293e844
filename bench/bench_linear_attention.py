"""Chunked linear attention on the GPU against fla, measured in the same run.

    python bench/bench_linear_attention.py [--out DIR] [--quick]

S1 of shared/bench/shapes.md, (B, T, H, D) with D = K = V, bf16 inputs, fp32 gates
(`--ops simple_gla,gated_delta_rule,gla`): chunk_simple_gla (ours: the tensor-core
kernel, split into sequence pieces by the strategy when it would leave SMs idle; the
row also gives the unsplit time), chunk_gated_delta_rule (ours: the two chunked
tensor-core kernels for K <= 128, the recurrent kernel for K = 256, not measured) and
chunk_gla (ours: the chunk-factor kernel and the sequential tensor-core kernel; key
split for K = 256), forward, against fla's functions of the same names. Also the
varlen row (the tokens of (4, 4096, 64, 128) split unevenly into 4 packed sequences).
`--profile` adds each of our kernels' device time to a row.

    python bench/bench_linear_attention.py --set s2 [--rows 0,1,...]
    python bench/bench_linear_attention.py --set s3 [--rows 0,1,2]

S2: the gated delta rule with grouped value heads, d = 128, (h_qk, h_v) x sequences
(batch x length, or packed lengths), forward against fla.

S3: the mLSTM (exponential input gate), 65,536 tokens as (B, T) in (32, 2048), (8, 8192),
(1, 65536), 16 heads, dqk = 128, dv = 256, bf16 q/k/v, fp32 gates, [B, NH, S, D];
forward of mixir.ops.mlstm.mlstm_chunkwise (the tensor-core kernel) against
mlstm_kernels' chunkwise--triton_limit_chunk (chunk 64) with its kernels in bf16
(autocast_kernel_dtype) and in its default fp32. The FLOP model is the one above with
K = 128, V = 256 (the normaliser's work not counted).

Forward + backward (the gated delta rule: ours, ours with the sequential adjoint
backward it replaced, fla with its Hopper guard lifted, see fwd_bwd_delta_case;
simple GLA and GLA; loss = <o, do>, gradients for q, k, v and g): simple GLA against fla's chunk_simple_gla when its backward runs, else (fla
refuses the gated backward on Hopper with triton < 3.7.1) against fla's chunk_gla
with the per-head decay broadcast over K, which computes the same function; GLA
against fla's chunk_gla.

FLOP model (the same for every implementation, chunk C = 64, per token and head):
intra-chunk scores and their product with V over the causal half, 2 (C/2) (K + V),
plus the state read Q S and the update K^T V, 2 * 2 K V. TFLOP/s is that count over
the measured time; % is of the dense bf16 peak of an H100/H200 SXM (989 TFLOP/s). Forward +
backward counts 3x the forward (the usual 1 + 2 model, for every implementation).
The gated delta rule adds its WY work: K K^T and T (K, V) over the causal half,
2 (C/2) (2K + V), and W S, 2 K V.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_scan import bench  # noqa: E402

from mixir.ops import linear_attention as la  # noqa: E402

PEAK = 989e12
S1 = [(1, 8192, 96, 128), (2, 16384, 16, 128), (4, 2048, 16, 128), (4, 4096, 64, 128),
      (8, 2048, 32, 256), (8, 1024, 8, 64)]


def simple_gla_split(split: str):
    """Our simple GLA with the compiler's sequence split overridden by `split` (a
    #mixer.sequence_split), or None for an older checkout without lowering configs."""
    if not hasattr(la, "linear_attention"):
        return None
    config = f"#mixer.lowering_config<sequence_split = {split}>"
    return lambda q, k, v, g, **kw: la.linear_attention(q, k, v, g, lowering_config=config, **kw)


def flops(B, T, H, K, V, C=64, delta=False):
    extra = 2 * (C / 2) * (2 * K + V) + 2 * K * V if delta else 0
    return B * T * H * (2 * (C / 2) * (K + V) + 4 * K * V + extra)


S2_HEADS = [(16, 64), (16, 32), (4, 16), (2, 8), (32, 32)]
S2_SEQS = [(1, 2048, None), (1, 8192, None), (1, 32768, None), (4, 8192, None),
           (8, 1024, None), (1, 32768, [0, 28672, 32768])]


def s2_cases():
    """(B, T, h_qk, h_v, cu_seqlens) of S2, heads outer."""
    return [(B, T, hq, hv, cu) for hq, hv in S2_HEADS for B, T, cu in S2_SEQS]


def make_grouped(B, T, Hq, Hv, D, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = F.normalize(torch.randn(B, T, Hq, D, device="cuda", generator=g), dim=-1).bfloat16()
    k = F.normalize(torch.randn(B, T, Hq, D, device="cuda", generator=g), dim=-1).bfloat16()
    v = torch.randn(B, T, Hv, D, device="cuda", generator=g).bfloat16()
    gate = F.logsigmoid(torch.randn(B, T, Hv, device="cuda", generator=g)) / 16
    beta = torch.sigmoid(torch.randn(B, T, Hv, device="cuda", generator=g)).bfloat16()
    return q, k, v, gate, beta


def run_s2(a, peers):
    rows = []
    keep = None if not a.rows else set(a.rows.split(","))
    for i, (B, T, Hq, Hv, cu) in enumerate(s2_cases()):
        if keep is not None and str(i) not in keep:
            continue
        q, k, v, g, beta = make_grouped(B, T, Hq, Hv, 128)
        kw = {} if cu is None else {
            "cu_seqlens": torch.tensor(cu, dtype=torch.int32, device="cuda")}
        nflop = flops(B, T, Hv, 128, 128, delta=True)
        try:
            row = run_case("gated_delta_rule", la.chunk_gated_delta_rule,
                           peers.get("gated_delta_rule"), (q, k, v, g, beta), kw, nflop)
        except Exception as e:
            row = {"error": repr(e)[:200]}
        row.update(index=i, shape=[B, T], heads=[Hq, Hv], varlen=cu)
        rows.append(row)
        line = f"S2 {i:2d} (h_qk, h_v)=({Hq:2d},{Hv:2d}) {'+'.join(map(str, [T] if cu is None else [y - x for x, y in zip(cu, cu[1:])])):>11s} x{B} "
        if "ours_ms" in row:
            line += f"ours {row['ours_ms']:.3f} ms {row['ours_tflops']:6.1f} TFLOP/s"
        if "kernels_us" in row:
            line += " | kernels " + ", ".join(f"{k}: {t}" for k, t in row["kernels_us"].items())
        if "fla_ms" in row:
            line += f" | fla {row['fla_ms']:.3f} ms | x{row['speedup_vs_fla']:.2f}" \
                    f" | rel {row['max_rel_vs_fla']:.1e}"
        for key in ("error", "fla_error"):
            if key in row:
                line += f" | {key}: {row[key]}"
        print(line, flush=True)
        if a.out:
            os.makedirs(a.out, exist_ok=True)
            with open(os.path.join(a.out, "bench_linear_attention_s2.json"), "w") as f:
                json.dump({"device": torch.cuda.get_device_name(),
                           "torch": torch.__version__, "rows": rows}, f, indent=1)


S3_MLSTM = [(32, 2048), (8, 8192), (1, 65536)]


def save_rows(out, name, rows):
    """Rows so far as out/name (after every row: a run cut short keeps what it measured)."""
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, name), "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "rows": rows}, f, indent=1)


def mlstm_peers():
    if os.environ.get("MIXIR_BENCH_NO_PEERS") == "1":
        return {}
    try:
        from mlstm_kernels.torch import get_mlstm_kernel
        fn = get_mlstm_kernel("chunkwise--triton_limit_chunk")
    except Exception as e:  # the peer is optional: report, don't fail
        print(f"mlstm_kernels unavailable: {e!r}")
        return {}
    return {"limit_chunk_bf16": lambda *x: fn(*x, chunk_size=64,
                                             autocast_kernel_dtype=torch.bfloat16),
            "limit_chunk_fp32": lambda *x: fn(*x, chunk_size=64)}


def run_s3(a):
    from mixir.ops import mlstm as ml
    peers = mlstm_peers()
    rows, H, K, V = [], 16, 128, 256
    keep = None if not a.rows else set(a.rows.split(","))
    for idx, (B, T) in enumerate(S3_MLSTM):
        if keep is not None and str(idx) not in keep:
            continue
        g = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(B, H, T, K, device="cuda", generator=g).bfloat16()
        k = torch.randn(B, H, T, K, device="cuda", generator=g).bfloat16()
        v = torch.randn(B, H, T, V, device="cuda", generator=g).bfloat16()
        i = torch.randn(B, H, T, device="cuda", generator=g)
        f = torch.randn(B, H, T, device="cuda", generator=g) + 3
        args = (q, k, v, i, f)
        nflop = flops(B, T, H, K, V)
        row = {"op": "mlstm", "shape": [B, H, T, K, V]}
        try:
            o = ml.mlstm_chunkwise(*args)
            row["ours_ms"] = ms = bench(lambda: ml.mlstm_chunkwise(*args))
            row["ours_tflops"] = nflop / ms / 1e9
            if PROFILE:
                row["kernels_us"] = kernel_times(lambda: ml.mlstm_chunkwise(*args))
            for name, fn in peers.items():
                try:
                    po = fn(*args)
                    row[f"{name}_rel"] = ((o.float() - po.float()).abs().max()
                                          / po.float().abs().max()).item()
                    row[f"{name}_ms"] = pms = bench(lambda: fn(*args))
                    row[f"{name}_x"] = pms / ms
                except Exception as e:
                    row[f"{name}_error"] = repr(e)[:160]
            if idx == 0:
                # Accuracy, not only agreement: the float64 oracle on one sequence and
                # two heads (their first 2048 steps; the outputs are causal).
                from mixir.reference import mlstm_ref
                n = min(T, 2048)
                cut = [x[:1, :2, :n] for x in args]
                want, _ = mlstm_ref(*cut)
                err = lambda got: ((got[:1, :2, :n].double().cpu() - want).abs().max()  # noqa
                                   / want.abs().max()).item()
                row["oracle_rel"] = {"ours": err(o)}
                for name, fn in peers.items():
                    try:
                        row["oracle_rel"][name] = err(fn(*args))
                    except Exception as e:
                        row["oracle_rel"][name] = repr(e)[:80]
        except Exception as e:
            row["error"] = repr(e)[:200]
        rows.append(row)
        line = f"S3 mlstm (B, NH, S) = ({B}, {H}, {T}) "
        if "ours_ms" in row:
            line += f"ours {row['ours_ms']:.3f} ms {row['ours_tflops']:6.1f} TFLOP/s"
        for name in peers:
            if f"{name}_ms" in row:
                line += f" | {name} {row[f'{name}_ms']:.3f} ms x{row[f'{name}_x']:.2f}" \
                        f" rel {row[f'{name}_rel']:.1e}"
            elif f"{name}_error" in row:
                line += f" | {name}: {row[f'{name}_error'][:80]}"
        if "kernels_us" in row:
            line += " | kernels " + ", ".join(f"{k}: {t}" for k, t in row["kernels_us"].items())
        if "oracle_rel" in row:
            line += " | vs float64 oracle " + ", ".join(
                f"{k}: {v:.1e}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in row["oracle_rel"].items())
        if "error" in row:
            line += f" | error: {row['error']}"
        print(line, flush=True)
        del q, k, v, i, f, args
        torch.cuda.empty_cache()
        save_rows(a.out, f"bench_linear_attention_s3{a.tag}.json", rows)


def make(B, T, H, D, delta, seed=0, per_key=False):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(B, T, H, D, device="cuda", generator=g)
    k = torch.randn(B, T, H, D, device="cuda", generator=g)
    v = torch.randn(B, T, H, D, device="cuda", generator=g).bfloat16()
    q, k = F.normalize(q, dim=-1).bfloat16(), F.normalize(k, dim=-1).bfloat16()
    # fla's GLA layers: logsigmoid gates over a normaliser of 16
    gate = F.logsigmoid(torch.randn(B, T, H, *((D,) if per_key else ()), device="cuda",
                                    generator=g)) / 16
    beta = torch.sigmoid(torch.randn(B, T, H, device="cuda", generator=g)).bfloat16() \
        if delta else None
    return q, k, v, gate, beta


def fla_ops():
    if os.environ.get("MIXIR_BENCH_NO_PEERS") == "1":  # a before/after run of mixir alone
        return {}
    try:
        from fla.ops.simple_gla import chunk_simple_gla
        from fla.ops.gla import chunk_gla
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        return {"simple_gla": chunk_simple_gla, "gated_delta_rule": chunk_gated_delta_rule,
                "gla": chunk_gla}
    except Exception as e:  # the peer is optional: report, don't fail
        print(f"fla unavailable: {e!r}")
        return {}


PROFILE = False  # --profile: each row also lists our kernels' device times


def kernel_times(fn, calls=5):
    """Device microseconds per call of each kernel fn launches (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    return {e.key[:48]: round(e.device_time_total / calls, 1) for e in p.key_averages()
            if e.device_time_total > 0}


def run_case(name, ours, peer, args, kwargs, nflop):
    row = {"op": name}
    o, _ = ours(*args, **kwargs)
    row["ours_ms"] = ms = bench(lambda: ours(*args, **kwargs))
    row["ours_tflops"] = nflop / ms / 1e9
    if PROFILE:
        row["kernels_us"] = kernel_times(lambda: ours(*args, **kwargs))
    if peer is not None:
        try:
            po, _ = peer(*args, **kwargs)
            row["max_rel_vs_fla"] = ((o.float() - po.float()).abs().max()
                                     / po.float().abs().max()).item()
            row["fla_ms"] = pms = bench(lambda: peer(*args, **kwargs))
            row["fla_tflops"] = nflop / pms / 1e9
            row["speedup_vs_fla"] = pms / ms
        except Exception as e:
            row["fla_error"] = repr(e)[:200]
    return row


def fwd_bwd_case(ours, peers, args, kwargs, nflop, per_key=False):
    """Forward + backward of simple GLA: ours against fla's chunk_simple_gla, or fla's
    chunk_gla (same function, g broadcast over K) where fla refuses the former. With
    per_key (GLA): ours against fla's chunk_gla on the same g."""
    q, k, v, g = [x.detach().clone().requires_grad_() for x in args]
    do = torch.randn_like(v)

    def step(fn, g_arg):
        o, _ = fn(q, k, v, g_arg, **kwargs)
        return torch.autograd.grad(o, (q, k, v, g), do)

    row = {}
    got = step(ours, g)
    row["fwd_bwd_ms"] = ms = bench(lambda: step(ours, g))
    row["fwd_bwd_tflops"] = 3 * nflop / ms / 1e9
    candidates = [("fla_gla", peers.get("gla"))] if per_key else [
        ("fla_simple_gla", peers.get("simple_gla")), ("fla_gla", peers.get("gla"))]
    for name, fn in candidates:
        if fn is None:
            continue
        g_arg = g if name == "fla_simple_gla" or per_key else g[..., None].expand(*q.shape)
        try:
            want = step(fn, g_arg)
            row[f"{name}_fwd_bwd_ms"] = pms = bench(lambda: step(fn, g_arg))
            row[f"{name}_fwd_bwd_x"] = pms / ms
            row[f"{name}_grad_rel"] = [((a.float() - b.float()).abs().max()
                                        / b.float().abs().max()).item()
                                       for a, b in zip(got, want)]
        except Exception as e:
            row[f"{name}_error"] = repr(e)[:160]
    return row


def bypass_fla_hopper_guard():
    """fla 0.6.0 refuses its gated backward (chunk_bwd_dqkwg) on Hopper with triton
    < 3.7.1 (fla #640: wrong results there). Lifted to time it; its gradients are
    then not trusted (reported, never used as a reference)."""
    try:
        import fla.ops.common.chunk_o as chunk_o
    except Exception:
        return False
    chunk_o.TRITON_ABOVE_3_7_1 = True
    return True


def fwd_bwd_delta_case(ours, peers, args, kwargs, nflop):
    """Forward + backward of the gated delta rule (loss <o, do>, gradients of q, k, v, g
    and beta): ours (the backward as forward passes of the op), ours before (the same
    forward and the sequential adjoint op, mixer.linear_attention_adjoint: the
    backward until this change, exact), and fla's chunk_gated_delta_rule with its
    Hopper guard lifted (timed; its gradients differ from ours by the reported rel
    and are not trusted). grad_rel_vs_adjoint: ours against the exact adjoint, per
    gradient, max |a - b| / max |b|."""
    q, k, v, g, beta = leaves = [x.detach().clone().requires_grad_() for x in args]
    do = torch.randn_like(v)

    def step(fn):
        o, _ = fn(q, k, v, g, beta, **kwargs)
        return torch.autograd.grad(o, leaves, do)

    def before():
        with torch.no_grad():
            ours(q, k, v, g, beta, **kwargs)
        grads = la.adjoint(q.detach(), k.detach(), v.detach(), g.detach(), beta.detach(),
                           q.shape[-1] ** -0.5, None, kwargs.get("cu_seqlens"), do, None)
        return [grads[n] for n in ("q", "k", "v", "g", "beta")]

    def rels(a, b):
        return [((x.float() - y.float()).abs().max() / y.float().abs().max()).item()
                for x, y in zip(a, b)]

    row = {}
    got = step(ours)
    row["fwd_bwd_ms"] = ms = bench(lambda: step(ours))
    row["fwd_bwd_tflops"] = 3 * nflop / ms / 1e9
    exact = before()
    row["grad_rel_vs_adjoint"] = rels(got, exact)
    row["before_fwd_bwd_ms"] = bms = bench(before)
    row["before_x"] = bms / ms
    fla = peers.get("gated_delta_rule")
    if fla is not None and bypass_fla_hopper_guard():
        try:
            want = step(fla)
            row["fla_fwd_bwd_ms"] = pms = bench(lambda: step(fla))
            row["fla_fwd_bwd_x"] = pms / ms
            row["fla_grad_rel_untrusted"] = rels(got, want)
        except Exception as e:
            row["fla_fwd_bwd_error"] = repr(e)[:160]
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ops", default="simple_gla,gated_delta_rule")
    ap.add_argument("--rows", default=None,
                    help="comma-separated S1 row indices (0-5) and/or 'varlen' (default all)")
    ap.add_argument("--set", default="s1", choices=("s1", "s2", "s3"))
    ap.add_argument("--profile", action="store_true", help="our kernels' device times per row")
    ap.add_argument("--tag", default="", help="suffix of the JSON file (e.g. '_before')")
    ap.add_argument("--sweep", action="store_true",
                    help="simple GLA at fixed sequence-split piece lengths too")
    ap.add_argument("--fwd-only", action="store_true",
                    help="no forward + backward and no piece-length sweep")
    a = ap.parse_args()
    global PROFILE
    PROFILE = a.profile
    peers = fla_ops()
    if a.set == "s2":
        return run_s2(a, peers)
    if a.set == "s3":
        return run_s3(a)
    ops = a.ops.split(",")
    rows = []
    shapes = S1[:2] if a.quick else S1
    cases = [(s, None) for s in shapes] + [((1, 16384, 64, 128), [0, 3000, 7096, 12000, 16384])]
    if a.rows:
        keep = a.rows.split(",")
        cases = [c for i, c in enumerate(cases)
                 if str(i) in keep or (c[1] is not None and "varlen" in keep)]
    for (B, T, H, D), cu in cases:
        for op in ops:
            delta, per_key = op == "gated_delta_rule", op == "gla"
            if delta and D > 128:
                # K = 256: ours is the recurrent kernel (the delta rule couples the key
                # dimensions, so no key split); not measured, to keep the run short.
                continue
            q, k, v, g, beta = make(B, T, H, D, delta, per_key=per_key)
            kw = {}
            if cu is not None:
                kw["cu_seqlens"] = torch.tensor(cu, dtype=torch.int32, device="cuda")
            args = (q, k, v, g) + ((beta,) if delta else ())
            ours = {"gated_delta_rule": la.chunk_gated_delta_rule, "gla": la.chunk_gla,
                    "simple_gla": la.chunk_simple_gla}[op]
            nflop = flops(B, T, H, D, D, delta=delta)
            try:
                row = run_case(op, ours, peers.get(op), args, kw, nflop)
                if op == "simple_gla" and not a.fwd_only:
                    # The same kernel without the sequence split (the split's rule
                    # overridden by one that never splits), and with fixed pieces.
                    never = simple_gla_split("#mixer.sequence_split<max_programs = 1, target_programs = 1>")
                    if never is not None:
                        row["unsplit_ms"] = bench(lambda: never(*args, **kw))
                    if a.sweep and never is not None:
                        row["pieces_ms"] = {}
                        for piece in (1024, 2048, 4096, 8192):
                            if piece < T:
                                fixed = simple_gla_split(f"#mixer.sequence_split<piece = {piece}>")
                                row["pieces_ms"][piece] = bench(lambda: fixed(*args, **kw))
                    row.update(fwd_bwd_case(ours, peers, args, kw, nflop))
                if op == "gla" and not a.fwd_only:
                    row.update(fwd_bwd_case(ours, peers, args, kw, nflop, per_key=True))
                if delta and not a.fwd_only:
                    row.update(fwd_bwd_delta_case(ours, peers, args, kw, nflop))
            except Exception as e:
                row = {"op": op, "error": repr(e)[:200]}
            row["shape"] = [B, T, H, D]
            row["varlen"] = cu
            rows.append(row)
            line = f"{op:17s} {str((B, T, H, D)):22s} {'varlen' if cu else '      '} "
            if "ours_ms" in row:
                line += f"ours {row['ours_ms']:.3f} ms {row['ours_tflops']:6.1f} TFLOP/s " \
                        f"({100 * row['ours_tflops'] * 1e12 / PEAK:4.1f}% peak)"
            if "fla_ms" in row:
                line += f" | fla {row['fla_ms']:.3f} ms {row['fla_tflops']:6.1f} TFLOP/s" \
                        f" | x{row['speedup_vs_fla']:.2f} | rel {row['max_rel_vs_fla']:.1e}"
            if "unsplit_ms" in row:
                line += f" | unsplit {row['unsplit_ms']:.3f} ms"
            if "kernels_us" in row:
                line += " | kernels " + ", ".join(f"{k}: {t}" for k, t in
                                                  row["kernels_us"].items())
            if row.get("pieces_ms"):
                line += " | pieces " + ", ".join(f"{p}: {t:.3f}" for p, t in
                                                 row["pieces_ms"].items())
            if "fwd_bwd_ms" in row:
                line += f"\n    fwd+bwd ours {row['fwd_bwd_ms']:.3f} ms " \
                        f"{row['fwd_bwd_tflops']:6.1f} TFLOP/s"
                for name in ("fla_simple_gla", "fla_gla"):
                    if f"{name}_fwd_bwd_ms" in row:
                        line += f" | {name} {row[f'{name}_fwd_bwd_ms']:.3f} ms " \
                                f"x{row[f'{name}_fwd_bwd_x']:.2f} grad rel " + \
                                ",".join(f"{x:.1e}" for x in row[f"{name}_grad_rel"])
                    elif f"{name}_error" in row:
                        line += f" | {name}: {row[f'{name}_error'][:80]}"
            if "before_fwd_bwd_ms" in row:
                line += f" | before (adjoint) {row['before_fwd_bwd_ms']:.3f} ms " \
                        f"x{row['before_x']:.2f} | grad rel vs adjoint " + ",".join(f"{x:.1e}" for x in row["grad_rel_vs_adjoint"])
                if "fla_fwd_bwd_ms" in row:
                    line += f" | fla (guard lifted) {row['fla_fwd_bwd_ms']:.3f} ms " \
                            f"x{row['fla_fwd_bwd_x']:.2f} grad rel (untrusted) " + \
                            ",".join(f"{x:.1e}" for x in row["fla_grad_rel_untrusted"])
                elif "fla_fwd_bwd_error" in row:
                    line += f" | fla: {row['fla_fwd_bwd_error'][:80]}"
            for key in ("error", "fla_error"):
                if key in row:
                    line += f" | {key}: {row[key]}"
            print(line, flush=True)
            del q, k, v, g, beta
            torch.cuda.empty_cache()
            if a.out:  # after every row: a run cut short keeps what it measured
                os.makedirs(a.out, exist_ok=True)
                with open(os.path.join(a.out, f"bench_linear_attention{a.tag}.json"), "w") as f:
                    json.dump({"device": torch.cuda.get_device_name(),
                               "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
