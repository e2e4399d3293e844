"""The main job: compile a jagged and a global scan, run them, check them, time them.

    python -m mixir.demo

Runs on the GPU when one is present and the op supports it there, else on the
CPU; every result is checked against the float64 oracle (mixir.reference).
"""

from __future__ import annotations

import time

import numpy as np
import torch

import mixir
from mixir.reference import scan_ref


def _rel(x: torch.Tensor, ref: np.ndarray) -> float:
    ref_t = torch.from_numpy(ref)
    return float(torch.linalg.vector_norm(x.cpu().double() - ref_t) / torch.linalg.vector_norm(ref_t))


def _device() -> str:
    if not torch.cuda.is_available():
        return "cpu"
    try:  # does this build run scans on the GPU?
        x = torch.rand(1, 16, 1, device="cuda")
        mixir.ops.scan(x, x)
        return "cuda"
    except NotImplementedError as e:
        print(f"note: a GPU is present but {e}; running on the CPU")
        return "cpu"


def main() -> int:
    print(f"mixir {mixir.version()}  torch {torch.__version__}")
    device = _device()
    B, T, D = 4, 16384, 64
    gen = torch.Generator().manual_seed(0)
    a = torch.sigmoid(torch.randn(B, T, D, generator=gen)).to(device)
    b = torch.randn(B, T, D, generator=gen).to(device)
    h0 = torch.randn(B, D, generator=gen).to(device)

    # The GPU code of the same call, compiled to PTX for the H100/H200 (sm_90a): the
    # IR the op builds from its tensors' facts.
    facts = [mixir.Operand(role, "f32", x.shape, x.stride())
             for role, x in [("gates", a), ("inputs", b), ("initial_state", h0), ("output", b),
                             ("final_state", h0)]]
    ir = mixir.build_call("scan", facts, "{window = #mixer.window<jagged, block = 16, k = 2>}",
                          "sm_90a", sm_count=132)
    t = time.perf_counter()
    try:
        ptx = mixir.compile(ir, target="sm_90a")
        print(f"PTX for sm_90a: {len(ptx.binary)} bytes, kernel {ptx.metadata['kernels'][0]['name']}, "
              f"compiled in {1e3 * (time.perf_counter() - t):.0f} ms")
    except mixir.CompileError as e:  # no CUDA toolkit (libdevice) on this host
        print(f"PTX compile skipped: {str(e).splitlines()[0]}")

    ok = True
    print(f"\nscan [B, T, D] = [{B}, {T}, {D}] fp32 on {device}")
    print(f"{'window':<28}{'compile ms':>11}{'run ms':>10}{'rel err':>11}")
    for name, window in [("jagged<block=16, k=2>", mixir.ops.jagged(k=2)), ("global", None)]:
        t = time.perf_counter()
        h, hT = mixir.ops.scan(a, b, h0, window=window, output_final_state=True)  # compiles
        first = time.perf_counter() - t
        runs = []
        for _ in range(5):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            h, hT = mixir.ops.scan(a, b, h0, window=window, output_final_state=True)
            if device == "cuda":
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t)
        run = sorted(runs)[len(runs) // 2]
        ref, ref_final = scan_ref(a, b, h0, window=None if window is None else ("jagged", 16, 2))
        err = max(_rel(h, ref), _rel(hT, ref_final))
        ok &= err <= 1e-5
        print(f"{name:<28}{1e3 * max(first - run, 0):>11.1f}{1e3 * run:>10.2f}{err:>11.2e}")
    print("\nall results match the float64 oracle (rel <= 1e-5)" if ok else "\nMISMATCH against the oracle")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
