"""Runs every recorded kernel once, on tensors made from its recorded facts.

    python scripts/replay_kernels.py RECORD... [--target cpu] [--limit N]
    compute-sanitizer --tool initcheck python scripts/replay_kernels.py DIR   # on the GPU host

RECORD: $MIXIR_RECORD files, or MIXIR_RECORD_TESTS directories (calls-*.jsonl). Each
distinct kernel (the IR the call builder makes of a call, as scripts/sanitize_kernels.py
counts them) runs once, for its smallest recorded call: compiled through the cache
(compile_call, as the torch ops do), then launched through its C interface with
descriptors built here. These descriptors can carry what torch tensors cannot: the
negative strides of time-reversed views, with the offset of element (0, ..., 0).

The inputs are valid for their roles: gates in (0.5, 1) or their logs, small random
values, and offsets that partition time. Outputs, gradients and the workspace are
left uninitialised (torch.empty), so that initcheck reports any read of what a
kernel did not write first. This is the cheap way to put compute-sanitizer over
every kernel: one launch each, no test harness or float64 references.
`--target cpu` recompiles every call for the CPU and runs it there, which checks
this script, and the CPU path of the same IR, without a GPU (here: the 296 kernels of
the H200 runs of 2026-12-04, 295 run and one call the op leaves to its composite).
Under compute-sanitizer, compile first (scripts/precompile.py on the same records,
many jobs) so that the sanitized process only loads from the cache.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "scripts"))

from mixir import _compiler, runtime  # noqa: E402
from sanitize_kernels import kernel_of  # noqa: E402

TORCH_DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32,
                "f64": torch.float64, "c64": torch.complex64, "c128": torch.complex128,
                "i32": torch.int32, "i64": torch.int64}
NAMES = {code: name for name, code in _compiler.DTYPES.items()}
# Roles the kernels write (or may read only after writing).
WRITTEN = {"output", "final_state", "final_normalizer", "final_stabilizer"}
READ_GRADIENTS = {"output_grad", "final_grad", "final_normalizer_grad", "final_stabilizer_grad"}


def is_written(role: str) -> bool:
    return role in WRITTEN or (role.endswith("_grad") and role not in READ_GRADIENTS)


def calls_of(paths) -> list:
    files = []
    for p in map(Path, paths):
        files += sorted(p.glob("calls*.jsonl")) if p.is_dir() else [p]
    calls = []
    for f in files:
        for line in f.read_text().splitlines():
            entry = json.loads(line) if line.strip() else {}
            if "op" in entry:
                calls.append(entry)
    return calls


def elements(call: dict) -> int:
    return sum(math.prod(o["sizes"]) for o in call["operands"] if o["sizes"])


def values(role: str, shape, dtype, log_space: bool, time_steps: int) -> torch.Tensor:
    """Valid contents for an operand of `role` (float64 first, then cast)."""
    if role == "offsets":
        n = shape[0] - 1  # n sequences over time_steps steps, the last one the longest
        cuts = sorted({0, time_steps, *[(time_steps * i) // (n + 1) for i in range(1, n)]})
        while len(cuts) < n + 1:  # more sequences than steps: empty ones at the start
            cuts.insert(0, 0)
        return torch.tensor(cuts[: n + 1], dtype=dtype)
    if role == "gates":
        x = 0.5 + 0.5 * torch.rand(shape, dtype=torch.float64)
        x = x.log() if log_space else x
    elif role == "log_decay":
        x = -0.01 - 0.1 * torch.rand(shape, dtype=torch.float64)
    elif role == "beta":
        x = torch.rand(shape, dtype=torch.float64)
    else:
        x = torch.randn(shape, dtype=torch.float64) * 0.1
    if dtype.is_complex:
        return torch.complex(x, torch.zeros_like(x)).to(dtype)
    return x.to(dtype)


class View:
    """A strided memref over a buffer of its own: any strides (negative ones too),
    element (0, ..., 0) at an offset aligned like the recorded call's."""

    def __init__(self, role, dtype, sizes, strides, alignment, device, fill):
        self.sizes, self.strides = list(sizes), list(strides)
        lo = sum(min(0, s * (d - 1)) for s, d in zip(strides, sizes) if d > 0)
        hi = sum(max(0, s * (d - 1)) for s, d in zip(strides, sizes) if d > 0)
        item = torch.empty((), dtype=dtype).element_size()
        pad = max(1, alignment // item)
        count = hi - lo + 1 + pad
        self.buffer = torch.empty(count, dtype=dtype, device=device)
        # The offset of element (0, ..., 0): past the negative reach, rounded up so
        # that its address has the recorded alignment (the buffer's start is 256-aligned).
        self.offset = -lo + (-(-lo) % pad)
        if fill is not None:
            # Write the contents through the same strides.
            flat = self.buffer.as_strided((count,), (1,))
            index = torch.full(tuple(sizes), self.offset, dtype=torch.int64)
            for dim, (s, d) in enumerate(zip(strides, sizes)):
                shape = [1] * len(sizes)
                shape[dim] = d
                index = index + (torch.arange(d) * s).view(shape)
            flat[index.reshape(-1).to(device)] = fill.reshape(-1).to(device)

    def descriptor(self):
        d = runtime._DESCRIPTORS[len(self.sizes)]()
        d.allocated = d.aligned = self.buffer.data_ptr()
        d.offset = self.offset
        d.sizes[:] = self.sizes
        d.strides[:] = self.strides
        return d


def launch(module, op: str, args: list, device, result=None):
    """Calls _mlir_ciface_<op> with `args` (descriptors and ctypes scalars) as the torch
    ops do: a pointer to each argument, then the result slot."""
    fn = module.lookup_packed(f"_mlir_ciface_{op}")
    if not fn:
        raise KeyError(f"no _mlir_ciface_{op} in the module")
    keep, slots = [], (ctypes.c_void_p * (len(args) + 1))()
    for i, a in enumerate(args):
        if isinstance(a, ctypes.Structure):
            ptr = ctypes.pointer(a)
            keep.append(ptr)
            slots[i] = ctypes.cast(ctypes.pointer(ptr), ctypes.c_void_p)
        else:
            keep.append(a)
            slots[i] = ctypes.cast(ctypes.pointer(a), ctypes.c_void_p)
    if result is not None:
        slots[len(args)] = ctypes.cast(ctypes.pointer(result), ctypes.c_void_p)
    call = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p))(fn)
    if device.type == "cuda":
        runtime.set_stream(torch.cuda.current_stream(device).cuda_stream)
        call(slots)
        err = runtime.take_error()
        if err:
            raise RuntimeError(err)
    else:
        call(slots)


def replay(call: dict, target: str, device) -> None:
    operands = [_compiler.Operand(o["role"], NAMES[o["dtype"]], o["sizes"], o["strides"],
                                  o["alignment"]) for o in call["operands"]]
    sm = call["sm_count"] if target != "cpu" else 0
    smem = call["shared_memory"] if target != "cpu" else 0
    module = _compiler.compile_call(call["op"], operands, call["attributes"] or None, target, sm,
                                    smem, bool(call["offsets_fit_i32"]),
                                    runtime=runtime.library_path())
    log_space = "log_space" in (call["attributes"] or "")
    time_steps = next((o["sizes"][1] for o in call["operands"] if len(o["sizes"]) >= 3), 0)
    views, args = [], []
    for o in call["operands"]:
        dtype = TORCH_DTYPES[NAMES[o["dtype"]]]
        if not o["sizes"] and o["role"] in ("scale", "epsilon"):  # a scalar
            value = 0.5 if o["role"] == "scale" else 1e-6
            args.append(ctypes.c_double(value) if dtype == torch.float64 else ctypes.c_float(value))
            continue
        fill = None if is_written(o["role"]) else values(o["role"], o["sizes"], dtype, log_space,
                                                          time_steps)
        v = View(o["role"], dtype, o["sizes"], o["strides"], o["alignment"], device, fill)
        views.append(v)
        args.append(v.descriptor())
    if call["op"].startswith("linear_attention") or call["op"] == "mlstm":
        # The workspace: its size from the module's size function, called with a null
        # workspace descriptor (as runtime/torch/Kernels.cpp does).
        ws = runtime._DESCRIPTORS[1]()
        ws.sizes[0], ws.strides[0] = 0, 1
        nbytes = ctypes.c_int64(0)
        if module.lookup_packed(f"_mlir_ciface_{call['op']}_workspace_bytes"):
            launch(module, f"{call['op']}_workspace_bytes", args + [ws], device, result=nbytes)
        buffer = torch.empty(max(nbytes.value, 1), dtype=torch.uint8, device=device)
        if nbytes.value > 0:
            ws.allocated = ws.aligned = buffer.data_ptr()
            ws.sizes[0] = nbytes.value
        views.append(buffer)
        args.append(ws)
    launch(module, call["op"], args, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("record", nargs="+")
    p.add_argument("--target", default=None, help="compile for this target instead of the "
                   "recorded one (cpu: run on the host)")
    p.add_argument("--limit", type=int, default=0, help="at most this many kernels")
    p.add_argument("--shard", default="0/1", help="I/N: replay the I-th of N interleaved "
                   "parts of the kernels (to run several sanitizer processes side by side)")
    p.add_argument("--verbose", action="store_true", help="name each kernel before it runs, "
                   "so that a sanitizer's report can be attributed")
    args = p.parse_args()
    part, parts = (int(x) for x in args.shard.split("/"))
    if not 0 <= part < parts:
        p.error(f"--shard {args.shard}: want I/N with 0 <= I < N")
    calls = [c for c in calls_of(args.record) if args.target or c["target"].startswith("sm_")]
    memo: dict = {}
    smallest: dict = {}
    for c in calls:
        k = kernel_of(c, memo)
        if k not in smallest or elements(c) < elements(smallest[k]):
            smallest[k] = c
    kernels = list(smallest.values())[: args.limit or None][part::parts]
    device = torch.device("cpu" if args.target == "cpu" else "cuda")
    failures, unsupported, start = 0, 0, time.time()
    for i, c in enumerate(kernels):
        target = args.target or c["target"]
        if args.verbose:
            print(f"kernel {i}: {c['op']} {c['attributes']!r} "
                  f"{[(o['role'], o['sizes'], o['strides']) for o in c['operands']]}", flush=True)
        try:
            replay(c, target, device)
        except _compiler.CompileError as e:
            if "does not make a valid op" not in str(e):
                raise
            # A call the op does not define: the torch op takes its composite path
            # for it (runtime/torch/Kernels.cpp), so no kernel exists.
            unsupported += 1
        except Exception as e:  # reported, the others still run
            failures += 1
            print(f"FAILED {c['op']} {c['attributes']!r}: {str(e).splitlines()[0][:200]}")
    print(f"replayed {len(kernels) - unsupported} kernels ({len(calls)} recorded calls; "
          f"{unsupported} calls the ops leave to their composite paths) in "
          f"{time.time() - start:.1f} s; {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
