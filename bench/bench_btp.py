"""BTP and the Phalanx layer on the GPU, with peers measured in the same run.

    python bench/bench_btp.py [--out DIR] [--quick]

1. BTP (mixir.ops.btp) at the S7 sizes of shared/bench/shapes.md: [B, H, 16, L] with
   H * 16 = 2048, L in {4096, 8192, 32768}, B * L = 65,536; bf16 gates and inputs, fp32
   output; k = 1 and 2; forward and backward. GB/s of minimum traffic (forward: x, coeff
   in, y out; backward: coeff, x, dy in, dcoeff, dx out) and % of the copy bandwidth
   measured here. Peers: the log-space blockwise PyTorch form (btp_pytorch), eager and
   under torch.compile, forward and backward; and for the forward, PyTorch's bf16 -> fp32
   cast of x, the same bytes in the same read/write mix. spear's CUDA kernel is
   reported as absent unless `spear` imports.
2. Decode: Phalanx steps per second (one token for every sequence of the batch) at
   B in {1, 32, 256}, dim 2048, bf16 module.
3. The Phalanx layer against a sliding-window attention layer of the same width (32
   tokens; q, k, v, o projections, 16 heads of 64) at 4k, 8k and 32k tokens, forward +
   backward tokens/s: PyTorch SDPA with a boolean window mask and, as a stronger peer,
   FlexAttention with a sliding-window block mask when it compiles.
"""

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from bench_scan import bench, copy_bandwidth, peer  # noqa: E402

import mixir  # noqa: E402
from mixir.nn.phalanx import btp_pytorch, inference  # noqa: E402

WINDOW = 32  # the jagged window reaches 17 to 32 tokens back; SWA gets the full 32


def bench_btp(results, copy_gbs, quick):
    # The compiled peer's backward is timed with retain_graph (one forward, many
    # backwards), which donated buffers forbid.
    torch._functorch.config.donated_buffer = False
    sizes = [4096] if quick else [4096, 8192, 32768]
    compiled_ref = torch.compile(btp_pytorch)
    try:
        import spear  # noqa: F401
        results["spear"] = "imported (not wired into this bench)"
    except ImportError:
        results["spear"] = "not installed on the GPU host (no network to build it)"
    for L in sizes:
        B, H = 65536 // L, 128
        g = torch.Generator(device="cuda").manual_seed(0)
        coeff = torch.sigmoid(torch.randn(B, H, L, device="cuda", generator=g)).bfloat16()
        x = torch.randn(B, H, 16, L, device="cuda", generator=g).bfloat16()
        n = B * H * 16 * L
        for k in (2, 1):
            y = mixir.ops.btp(coeff, x, k=k)
            r = btp_pytorch(coeff, x, k)
            err = ((y - r).abs().max() / r.abs().max()).item()
            fwd = bench(lambda: mixir.ops.btp(coeff, x, k=k))
            eager = peer(lambda: bench(lambda: btp_pytorch(coeff, x, k), rep=50))
            comp = peer(lambda: bench(lambda: compiled_ref(coeff, x, k), rep=50))
            bytes_fwd = n * (2 + 4) + coeff.numel() * 2
            # The same bytes in the same proportion (read 2 B, write 4 B per element)
            # moved by PyTorch's own cast kernel: the roof of this traffic mix, which
            # writes twice what it reads (the copy line is half reads, half writes).
            y32 = torch.empty(x.shape, device="cuda")
            cast = bench(lambda: y32.copy_(x))
            write_only = bench(lambda: y32.zero_())  # y's 4 B per element alone
            del y32
            cg, xg = coeff.clone().requires_grad_(), x.clone().requires_grad_()
            dy = torch.randn(B, H, 16, L, device="cuda")
            yg = mixir.ops.btp(cg, xg, k=k)
            bwd = bench(lambda: torch.autograd.grad(yg, (cg, xg), dy, retain_graph=True))
            bytes_bwd = n * (2 + 4 + 2) + coeff.numel() * 4

            def ref_bwd(fn):
                yr = fn(cg, xg, k)
                return bench(lambda: torch.autograd.grad(yr, (cg, xg), dy, retain_graph=True),
                             rep=50)
            eager_bwd = peer(lambda: ref_bwd(btp_pytorch))
            comp_bwd = peer(lambda: ref_bwd(compiled_ref))
            for pass_, ms, nbytes, e, c in (("fwd", fwd, bytes_fwd, eager, comp),
                                            ("bwd", bwd, bytes_bwd, eager_bwd, comp_bwd)):
                gbs = nbytes / ms / 1e6
                row = dict(B=B, H=H, L=L, k=k, pass_=pass_, ms=ms, gbs=gbs,
                           pct_copy=100 * gbs / copy_gbs, eager_ms=e, compile_ms=c,
                           rel_err_vs_ref=err)
                if pass_ == "fwd":
                    row.update(cast_ms=cast, pct_cast=100 * cast / ms, write_y_ms=write_only)
                results["btp"].append(row)
                print(f"BTP [{B},{H},16,{L}] k={k} {pass_}: {ms:.3f} ms {gbs:.0f} GB/s "
                      f"{row['pct_copy']:.1f}% copy; eager {e:.3f} ms ({e / ms:.1f}x), "
                      f"compile {c:.3f} ms ({c / ms:.1f}x); rel err {err:.1e}"
                      + (f"; bf16->fp32 cast of x {cast:.3f} ms = {100 * cast / ms:.1f}% of "
                         f"our speed ({bytes_fwd / cast / 1e6 / copy_gbs * 100:.1f}% copy); "
                         f"writing y alone (zero_) {write_only:.3f} ms"
                         if pass_ == "fwd" else ""), flush=True)
            del yg, cg, xg, dy
        del coeff, x
        torch.cuda.empty_cache()


def bench_decode(results, quick):
    dim = 2048
    layer = mixir.nn.Phalanx(dim).cuda().to(torch.bfloat16)
    for B in ([1, 32] if quick else [1, 32, 256]):
        x = torch.randn(B, 64, dim, device="cuda", dtype=torch.bfloat16)
        _, state = inference.prefill(layer, x[:, :37])
        xt = x[:, 40]
        for _ in range(20):
            _, state = inference.step(layer, xt, state)
        torch.cuda.synchronize()
        steps = 200
        t = time.perf_counter()
        for _ in range(steps):
            _, state = inference.step(layer, xt, state)
        torch.cuda.synchronize()
        per = (time.perf_counter() - t) / steps
        results["decode"].append(dict(B=B, dim=dim, ms_per_step=per * 1e3,
                                      steps_per_s=1 / per, tokens_per_s=B / per))
        print(f"decode B={B} dim={dim}: {per * 1e3:.3f} ms/step, {1 / per:.0f} steps/s, "
              f"{B / per:.0f} tokens/s", flush=True)


class SlidingWindowAttention(nn.Module):
    """Causal attention over the last WINDOW tokens (q, k, v, o projections)."""

    def __init__(self, dim, heads, kind):
        super().__init__()
        self.heads, self.kind = heads, kind
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.mask = self.block_mask = None

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if self.kind == "sdpa":
            if self.mask is None or self.mask.shape[-1] != T:
                i = torch.arange(T, device=x.device)
                self.mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < WINDOW)
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)
        else:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            if self.block_mask is None or self.block_mask.shape[-1] != T:
                def window(b, h, qi, ki):
                    return (ki <= qi) & (qi - ki < WINDOW)
                self.block_mask = create_block_mask(window, None, None, T, T, device=x.device)
                self.flex = torch.compile(flex_attention)
            o = self.flex(q, k, v, block_mask=self.block_mask)
        return self.o(o.transpose(1, 2).reshape(B, T, D))


def bench_layers(results, quick):
    dim = 1024
    sizes = [4096] if quick else [4096, 8192, 32768]
    layers = {"phalanx": mixir.nn.Phalanx(dim),
              "swa_sdpa": SlidingWindowAttention(dim, 16, "sdpa"),
              "swa_flex": SlidingWindowAttention(dim, 16, "flex")}
    for T in sizes:
        x = torch.randn(1, T, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        row = dict(T=T, dim=dim)
        for name, layer in layers.items():
            layer = layer.cuda().to(torch.bfloat16)

            def fwd_bwd():
                layer(x).float().pow(2).mean().backward()
            try:
                ms = bench(fwd_bwd, rep=100)
            except Exception as e:  # a peer that does not run here is reported, not fatal
                print(f"{name} T={T}: failed: {type(e).__name__}: {str(e)[:200]}")
                ms = float("nan")
                torch.cuda.empty_cache()
            row[f"{name}_ms"] = ms
            row[f"{name}_tokens_per_s"] = T / ms * 1e3
        for peer_name in ("swa_sdpa", "swa_flex"):
            row[f"speedup_vs_{peer_name}"] = row[f"{peer_name}_ms"] / row["phalanx_ms"]
        results["layers"].append(row)
        print(f"layer fwd+bwd T={T}: phalanx {row['phalanx_ms']:.3f} ms, SWA sdpa "
              f"{row['swa_sdpa_ms']:.3f} ms ({row['speedup_vs_swa_sdpa']:.2f}x), SWA flex "
              f"{row['swa_flex_ms']:.3f} ms ({row['speedup_vs_swa_flex']:.2f}x)", flush=True)
        del x
        torch.cuda.empty_cache()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="btp,decode,layers")
    p.add_argument("--tag", default="", help="suffix of the JSON file (e.g. '_before')")
    args = p.parse_args()
    dev = torch.cuda.get_device_name()
    copy_gbs = copy_bandwidth()
    print(f"{dev}: copy bandwidth {copy_gbs:.0f} GB/s", flush=True)
    results = dict(device=dev, copy_gbs=copy_gbs, torch=torch.__version__, btp=[], decode=[],
                   layers=[])
    parts = args.only.split(",")
    if "btp" in parts:
        bench_btp(results, copy_gbs, args.quick)
    if "decode" in parts:
        bench_decode(results, args.quick)
    if "layers" in parts:
        bench_layers(results, args.quick)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"bench_btp{args.tag}.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
