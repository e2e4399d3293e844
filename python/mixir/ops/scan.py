"""mixir.ops.scan: the diagonal linear recurrence h_t = a_t h_{t-1} + b_t.

Each call is specialised on what changes the generated code (dtypes, window,
direction, log space, which optional operands exist), compiled once from
`mixer.scan` IR and kept in memory. Sizes and strides are passed at run time,
so any [batch, time, channels] view works, contiguous or not.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ..cache import compile_cached as _compile

__all__ = ["scan", "jagged", "Window"]


@dataclass(frozen=True)
class Window:
    """Reach of the recurrence: global, or the jagged sliding window of spec 2.1."""

    kind: str = "global"
    block: int = 0
    k: int = 0

    def ir(self) -> str:
        return "global" if self.kind == "global" else f"jagged<block = {self.block}, k = {self.k}>"


def jagged(block: int = 16, k: int = 2) -> Window:
    """The sliding window recurrence: exact inside `block` steps, carry from the previous block
    (k = 2) or none (k = 1)."""
    if not isinstance(block, int) or block <= 0:
        raise ValueError(f"mixir.ops.jagged: block must be a positive int, got {block!r}")
    if k not in (1, 2):
        raise ValueError(f"mixir.ops.jagged: k must be 1 or 2, got {k!r}")
    return Window("jagged", block, k)


def _window(window) -> Window:
    if window is None or window == "global":
        return Window()
    if window == "jagged":
        return jagged()
    if isinstance(window, Window):
        return window
    raise ValueError("mixir.ops.scan: window must be None, 'global', 'jagged' or "
                     f"mixir.ops.jagged(block, k), got {window!r}")


# torch dtype -> MLIR element type
_ELEMENT = {
    torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32", torch.float64: "f64",
    torch.complex64: "complex<f32>", torch.complex128: "complex<f64>",
}
_WIDE = {torch.float16: 16, torch.bfloat16: 16, torch.float32: 32, torch.float64: 64,
         torch.complex64: 32, torch.complex128: 64}


@functools.lru_cache(maxsize=None)
def _state_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """fp32 state for 16/32-bit inputs, fp64 for 64-bit, complex if any input is."""
    wide = max(_WIDE[d] for d in dtypes) == 64
    if any(d.is_complex for d in dtypes):
        return torch.complex128 if wide else torch.complex64
    return torch.float64 if wide else torch.float32


def _output_like(b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """h for inputs b (and the gradient of a or b for that operand): channels-by-time
    when b is time-contiguous (BTP's layout), else contiguous [B, T, D]; the rule of
    the C++ op (allocateLike in ScanOps.cpp)."""
    B, T, D = b.shape
    if T > 1 and b.stride(1) == 1 and (D == 1 or b.stride(2) != 1):
        return b.new_empty((B, D, T), dtype=dtype).transpose(1, 2)
    return b.new_empty((B, T, D), dtype=dtype)


def _memref(rank: int, element: str, time_unit_stride: bool = False) -> str:
    dims = "x".join("?" * rank)
    strides = ", ".join("1" if (time_unit_stride and i == 1) else "?" for i in range(rank))
    return f"memref<{dims}x{element}, strided<[{strides}], offset: ?>>"


def scan_ir(gate: str, inp: str, state: str, window: Window, reverse: bool, log_space: bool,
            has_init: bool, has_final: bool, time_major: int = 0) -> str:
    """The `mixer.scan` function for one specialisation (buffer form, DPS).
    time_major: bit mask of a (1), b (2), h (4) with unit stride over time (a static
    stride in their memref types, which lets the lowering move whole blocks as vectors)."""
    ta, tb, th = (_memref(3, e, bool(time_major & bit))
                  for e, bit in ((gate, 1), (inp, 2), (state, 4)))
    st = _memref(2, state)
    args = [f"%a: {ta}", f"%b: {tb}"]
    if has_init:
        args.append(f"%h0: {st}")
    args.append(f"%h: {th}")
    if has_final:
        args.append(f"%hT: {st}")
    flags = (" log_space" if log_space else "") + (" reverse" if reverse else "")
    body = (f"mixer.scan {window.ir()}{flags} gates(%a : {ta}) inputs(%b : {tb})"
            + (f" init(%h0 : {st})" if has_init else "")
            + f" outs(%h : {th})"
            + (f" final(%hT : {st})" if has_final else ""))
    return (f"func.func @scan({', '.join(args)}) attributes {{llvm.emit_c_interface}} {{\n"
            f"  {body}\n  return\n}}\n")


def _memref_type(rank: int):
    """The strided memref descriptor of a rank (see include/mixir-c/Compiler.h)."""
    return type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": [
        ("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
        ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
        ("strides", ctypes.c_int64 * rank)]})


_DESCRIPTOR = {r: _memref_type(r) for r in (1, 2, 3, 4, 5)}


def _descriptor(t: torch.Tensor):
    d = _DESCRIPTOR[t.dim()]()
    d.allocated = d.aligned = t.data_ptr()
    d.offset = 0
    d.sizes[:] = list(t.shape)
    d.strides[:] = list(t.stride())
    return d


class TimeReversed:
    """A tensor passed with dimension 1 (time) reversed, without a copy: its memref
    descriptor gets the negated time stride and an offset at the last step (memrefs
    may have negative strides; torch tensors may not)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def dim(self) -> int:
        return self.tensor.dim()


class _Kernel:
    """One compiled specialisation, called with torch tensors (strided descriptors).

    CPU: the JIT'd host code is the scan. CUDA: the JIT'd host code computes the
    launch and calls libmixir_runtime, which launches on the current torch stream.
    """

    def __init__(self, ir: str, nargs: int, device: torch.device, options: Optional[str] = None,
                 entry: str = "scan", scalar_args: Optional[dict] = None):
        self.ir = ir
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self._lock = threading.Lock()
        if device.type == "cuda":
            from .. import _runtime
            major, minor = torch.cuda.get_device_capability(device)
            # Hopper's arch-specific features need the "a" target (as Triton does).
            chip = f"sm_{major}{minor}" + ("a" if major == 9 else "")
            opts = "host=1" + (f" {options}" if options else "")
            self.module = _compile(ir, chip, opts, runtime=_runtime.library_path())
            self._runtime = _runtime
        elif device.type == "cpu":
            self.module = _compile(ir, "cpu", options)
        else:
            raise NotImplementedError(f"mixir: no code generation for device {device}")
        # Memrefs travel as pointers to descriptors, scalars by value
        # (scalar_args: position -> ctypes type).
        scalar_args = scalar_args or {}
        proto = ctypes.CFUNCTYPE(None, *[scalar_args.get(i, ctypes.c_void_p)
                                         for i in range(nargs)])
        self.fn = proto(self.module.lookup(f"_mlir_ciface_{entry}"))
        # Descriptors are refilled per call rather than rebuilt (host overhead).
        self._descs: list = []
        self._ptrs: list = []

    def _fill(self, args):
        if len(self._descs) != len(args):
            self._descs = [_DESCRIPTOR[t.dim()]()
                           if isinstance(t, (torch.Tensor, TimeReversed)) else None
                           for t in args]
            self._ptrs = [ctypes.addressof(d) if d is not None else None for d in self._descs]
        for i, (d, t) in enumerate(zip(self._descs, args)):
            if d is None:
                self._ptrs[i] = float(t)
                continue
            if type(t) is TimeReversed:
                t = t.tensor
                strides = list(t.stride())
                d.offset = (t.shape[1] - 1) * strides[1] if t.shape[1] else 0
                strides[1] = -strides[1]
                d.strides[:] = strides
            else:
                d.offset = 0
                d.strides[:] = t.stride()
            d.allocated = d.aligned = t.data_ptr()
            d.sizes[:] = t.shape
        return self._ptrs

    def __call__(self, *tensors: torch.Tensor):
        with self._lock:
            ptrs = self._fill(tensors)
            if self.device.type != "cuda":
                self.fn(*ptrs)
                return
            rt, index = self._runtime, self.device.index
            if torch.cuda.current_device() != index:
                with torch.cuda.device(index):
                    rt.set_stream(torch.cuda.current_stream(index).cuda_stream)
                    self.fn(*ptrs)
            else:
                rt.set_stream(torch._C._cuda_getCurrentRawStream(index))
                self.fn(*ptrs)
            err = rt.take_error()
        if err:
            raise RuntimeError(f"mixir: {err}")


_kernels: dict = {}


def _kernel(key, ir: str, nargs: int, device: torch.device, options=None,
            entry: str = "scan", scalar_args: Optional[dict] = None) -> _Kernel:
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = _Kernel(ir, nargs, device, options, entry, scalar_args)
    return k


_INT32_MAX = 2**31 - 1


def _fits_int32(*tensors) -> bool:
    """Whether every element offset of every operand fits in int32 (then a kernel may
    index in 32 bits: half the address registers)."""
    for t in tensors:
        if t is None:
            continue
        if sum((n - 1) * st for n, st in zip(t.shape, t.stride()) if n > 0) > _INT32_MAX:
            return False
    return True


def gpu_config(channels: int, w: Window) -> str:
    """Thread-block shape for `channels` (strategy; the pipeline is the mechanism).

    Channels go on threadIdx.x (coalesced). Below 128 channels the rest of a
    128-thread block is filled with time tiles (jagged: independent) or batch
    rows (global), so narrow layouts such as 16 channels per head stay busy."""
    x = 128  # the same bucket as channelBucket in runtime/torch/ScanOps.cpp
    while x > 16 and x // 2 >= channels:
        x //= 2
    return _config_for_bucket(x, w)


def _config_for_bucket(x: int, w: Window) -> str:
    rest = 128 // x
    if rest == 1:
        return "block-size=128"
    return f"block-size={x} " + (f"block-z={rest}" if w.kind == "jagged" else f"block-y={rest}")


def _run_scan(a, b, initial_state, reverse, log_space, w: Window):
    """Allocates h and the final state and runs the compiled specialisation."""
    state_dtype = _state_dtype(a.dtype, b.dtype)
    B, T, D = b.shape
    h = _output_like(b, state_dtype)
    final = torch.empty((B, D), dtype=state_dtype, device=b.device)
    if T == 0 or B == 0 or D == 0:
        final.copy_(initial_state if (initial_state is not None and w.kind == "global")
                    else torch.zeros_like(final))
        return h, final
    has_init = initial_state is not None
    device = b.device
    config = gpu_config(D, w) if device.type == "cuda" else None
    key = (device, a.dtype, b.dtype, w, reverse, log_space, has_init, config)
    kernel = _kernels.get(key)
    if kernel is None:
        ir = scan_ir(_ELEMENT[a.dtype], _ELEMENT[b.dtype], _ELEMENT[state_dtype], w, reverse,
                     log_space, has_init, True)
        kernel = _kernel(key, ir, 5 if has_init else 4, device, config)
    if has_init:
        kernel(a, b, initial_state, h, final)
    else:
        kernel(a, b, h, final)
    return h, final


def _check_tensor(name: str, x, rank: int, what: str):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"mixir.ops.scan: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"mixir.ops.scan: {name} must have shape {what}, got {tuple(x.shape)}")
    if x.dtype not in _ELEMENT:
        raise TypeError(f"mixir.ops.scan: {name} has dtype {x.dtype}; supported: "
                        + ", ".join(str(d) for d in _ELEMENT))


# ---------------------------------------------------------------------------
# The registered op: torch.ops.mixir.scan (CPU and CUDA kernels, fake kernel,
# autograd). A window is passed as (block, k); (0, 0) is the global window.
# ---------------------------------------------------------------------------

def _window_of(block: int, k: int) -> Window:
    return Window() if block == 0 else Window("jagged", block, k)


def _scan_fake(a, b, initial_state, reverse, log_space, block, k):
    state_dtype = _state_dtype(a.dtype, b.dtype)
    B, T, D = b.shape
    return _output_like(b, state_dtype), b.new_empty((B, D), dtype=state_dtype)


def _scan_backward_fake(a, b, initial_state, h, grad_h, grad_final, reverse, log_space, block, k):
    g0 = h.new_empty((h.shape[0], h.shape[2])) if initial_state is not None else h.new_empty((0,))
    return _output_like(a, a.dtype), _output_like(b, b.dtype), g0


def _fused_adjoint_supported(a, b, reverse, block) -> bool:
    """The compiled adjoint (mixer.scan_adjoint) covers real scans except reverse jagged
    ones; those and complex scans use the tensor-level adjoint below (the same scans,
    more passes)."""
    return not (a.is_complex() or b.is_complex() or (reverse and block != 0))


def _run_scan_adjoint(a, b, h0, h, grad_h, grad_final, reverse, log_space, w: Window):
    """One launch of the compiler-derived adjoint: gradients of a, b (in their dtypes)
    and of the initial state."""
    state = h.dtype
    B, T, D = h.shape
    grad_a, grad_b = _output_like(a, a.dtype), _output_like(b, b.dtype)
    grad_h0 = torch.empty((B, D), dtype=state, device=h.device) if h0 is not None else None
    if T == 0 or B == 0 or D == 0:
        if grad_h0 is not None:
            grad_h0.copy_(grad_final)
        return grad_a.zero_(), grad_b.zero_(), grad_h0
    device = h.device
    config = None
    if device.type == "cuda":
        config = gpu_config(D, w)
        # Measured on H100 (bench/results): 32-bit indexing lets the block-unrolled
        # jagged adjoint fit in registers (3x faster) but slows the other kernels.
        if w.kind == "jagged" and _fits_int32(a, b, h, grad_h, grad_a, grad_b):
            config += " index-bitwidth=32"
    key = ("adjoint", device, a.dtype, b.dtype, w, reverse, log_space, h0 is not None, config)
    kernel = _kernels.get(key)
    if kernel is None:
        ir = scan_ir(_ELEMENT[a.dtype], _ELEMENT[b.dtype], _ELEMENT[state], w, reverse, log_space,
                     h0 is not None, True)
        opts = "adjoint=1" + (f" {config}" if config else "")
        kernel = _kernel(key, ir, 9 if h0 is not None else 7, device, opts, entry="scan_adjoint")
    args = [a, b] + ([h0] if h0 is not None else []) + [h, grad_h, grad_final, grad_a, grad_b] + \
        ([grad_h0] if h0 is not None else [])
    kernel(*args)
    return grad_a, grad_b, grad_h0


def _scan_python_impl(a, b, initial_state, reverse, log_space, block, k):
    return _run_scan(a, b, initial_state, reverse, log_space, _window_of(block, k))


def _scan_backward_python_impl(a, b, initial_state, h, grad_h, grad_final, reverse, log_space,
                               block, k):
    """Gradients of a, b and the initial state (an empty tensor when there is none)."""
    ga, gb, g0 = _run_scan_adjoint(a, b, initial_state, h, grad_h, grad_final, reverse,
                                   log_space, _window_of(block, k))
    return ga, gb, (g0 if g0 is not None else h.new_empty((0,)))


def _setup_context(ctx, inputs, output):
    a, b, initial_state, reverse, log_space, block, k = inputs
    ctx.flags = (reverse, log_space, block, k)
    ctx.has_init = initial_state is not None
    ctx.dtypes = (a.dtype, b.dtype, None if initial_state is None else initial_state.dtype)
    ctx.save_for_backward(a, b, initial_state, output[0])


def _shift_gates(gates: torch.Tensor, toward_start: bool) -> torch.Tensor:
    """g'_t = g_{t+1} (toward_start) or g_{t-1}, with a gate of 1 at the open end."""
    one = torch.ones_like(gates[:, :1])
    if toward_start:
        return torch.cat([gates[:, 1:], one], 1)
    return torch.cat([one, gates[:, :-1]], 1)


def _neighbour(x: torch.Tensor, fill: torch.Tensor, reverse: bool) -> torch.Tensor:
    """x_{t-1} (x_{t+1} when reverse), with `fill` ([B, D]) at the first step processed."""
    if reverse:
        return torch.cat([x[:, 1:], fill[:, None]], 1)
    return torch.cat([fill[:, None], x[:, :-1]], 1)


def _backward(ctx, grad_h, grad_final):
    """Autograd of the Python-op fallback (the C++ ops register theirs in C++, with the
    same split): the compiled adjoint where it exists, else the composite below."""
    a, b, h0, h = ctx.saved_tensors
    reverse, log_space, block, k = ctx.flags
    state = h.dtype
    B, T, D = h.shape
    grad_h = torch.zeros_like(h) if grad_h is None else grad_h.to(state)
    grad_final = (torch.zeros((B, D), dtype=state, device=h.device) if grad_final is None
                  else grad_final.to(state))
    backward = (torch.ops.mixir.scan_backward if _fused_adjoint_supported(a, b, reverse, block)
                else _scan_backward_composite)
    grad_a, grad_b, grad_init = backward(a, b, h0, h, grad_h, grad_final, reverse, log_space,
                                         block, k)
    grad_init = grad_init.to(ctx.dtypes[2]) if ctx.has_init else None
    return grad_a, grad_b, grad_init, None, None, None, None


def _scan_backward_composite(a, b, h0, h, grad_h, grad_final, reverse, log_space, block, k):
    """The adjoint of h_t = a_t h_{t-1} + b_t is the same recurrence run the other way
    on the output gradient, with gates shifted by one step:
        lam_t = g_t + conj(a_{t+1}) lam_{t+1},  db = lam,  da_t = lam_t conj(h_{t-1}).
    For a jagged window the adjoint is again a jagged scan (blocks at the same absolute
    positions): its carry path is the adjoint of the forward carry (spec 2.4). Every scan
    here is the compiled op itself. This covers what the compiled adjoint
    (mixer.scan_adjoint) does not yet: complex and reverse jagged scans.
    Returns the gradients of a, b (in their dtypes) and of h0 (state dtype; empty when
    there is no h0)."""
    w = _window_of(block, k)
    state = h.dtype
    B, T, D = h.shape
    gates = a.to(state)
    if log_space:
        gates = gates.exp()
    cg = gates.conj() if gates.is_complex() else gates
    shifted = _shift_gates(cg, toward_start=not reverse)
    first = T - 1 if reverse else 0          # first step in processing order
    last = 0 if reverse else T - 1
    zero = torch.zeros((B, D), dtype=state, device=h.device)
    init = h0.to(state) if h0 is not None else zero
    conj = (lambda x: x.conj()) if gates.is_complex() else (lambda x: x)

    if w.kind == "global":
        lam, _ = torch.ops.mixir.scan(shifted, grad_h, grad_final, not reverse, False, 0, 0)
        grad_b = lam
        grad_a = lam * conj(_neighbour(h, init, reverse))
        grad_init = cg[:, first] * lam[:, first]
    else:
        # rho: adjoint of the in-block recurrence (k = 1 reverse scan); with k = 2
        # lam = rho + sigma, sigma the adjoint of the zero-initialised local state
        # that becomes the next block's carry (and, for the last block, the final state).
        local, _ = torch.ops.mixir.scan(a, b, None, reverse, log_space, block, 1)
        offset = torch.arange(T, device=h.device) % block
        starts = offset == (block - 1) if reverse else offset == 0
        if reverse:
            starts[T - 1] = True
        starts = starts[None, :, None]
        local_prev = torch.where(starts, 0, _neighbour(local, zero, reverse))
        if k == 1:
            g = grad_h.clone()
            g[:, last] += grad_final
            lam, _ = torch.ops.mixir.scan(shifted, g, None, not reverse, False, block, 1)
            grad_b, grad_a = lam, lam * conj(local_prev)
            grad_init = None
        else:
            lam, _ = torch.ops.mixir.scan(shifted, grad_h, grad_final, not reverse, False, block, 2)
            rho, _ = torch.ops.mixir.scan(shifted, grad_h, None, not reverse, False, block, 1)
            sigma = lam - rho
            # State before step t of the block's true recurrence: y_{t-1} inside the
            # block, the carry (the neighbour's local state, or c_init) at its start.
            y_prev = torch.where(starts, _neighbour(local, init, reverse), _neighbour(h, init, reverse))
            grad_b = lam
            grad_a = rho * conj(y_prev) + sigma * conj(local_prev)
            grad_init = cg[:, first] * rho[:, first]
    if log_space:
        grad_a = grad_a * cg
    if not a.dtype.is_complex and grad_a.is_complex():
        grad_a = grad_a.real
    if not b.dtype.is_complex and grad_b.is_complex():
        grad_b = grad_b.real
    if h0 is None or grad_init is None:
        grad_init = h.new_empty((0,)) if h0 is None else torch.zeros_like(init)
    return grad_a.to(a.dtype), grad_b.to(b.dtype), grad_init


# ---------------------------------------------------------------------------
# Registration: the C++ ops of libmixir_torch.so when it was built (the fast
# path: checks, allocation, key and launch without Python; Python only compiles
# on a cache miss, through the callback below), else the same schemas as
# Python custom ops. Fake kernels and autograd are registered on either.
# ---------------------------------------------------------------------------

_ELEMENT_BY_NAME = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32,
                    "f64": torch.float64, "c64": torch.complex64, "c128": torch.complex128}


def time_major_config(time_major: int, bucket_config: str, adjoint: bool) -> str:
    """Launch shape of a jagged scan or adjoint whose operands in `time_major` (mask of
    a 1, b 2, h 4; the C++ op checked that their blocks are time-contiguous and 16-byte
    aligned) move as whole-block vectors. Measured on H100 (bench/sweep_btp.py, BTP at
    S7, sweep_btp_h100.txt): one block per thread (longer tiles: 20-38% of copy
    bandwidth). When b (and so h) is channels-by-time, time tiles go on threadIdx.x and
    the channels of a batch row next to each other (they share BTP's per-head gate in
    cache), with constants sunk into the kernel (see MixerToNVVM.cpp); the forward
    also exchanges output chunks within warps so that stores write whole sectors.
    Forward 97% of copy (channels on threadIdx.x: 65%), adjoint 89% (k = 2) and 100%
    (k = 1) against 65% and 93%."""
    tail = " vector-alignment=16 tile-size=16"
    if time_major & 2:
        tail += " sink-constants=1"
        exchange = "" if adjoint else " exchange-output=1"
        return "time-fastest=1 block-size=64" + exchange + tail
    return bucket_config + tail


def _compile_spec(spec: bytes) -> int:
    """Called from C++ on a cache miss: the address of the compiled host function."""
    f = dict(kv.split("=", 1) for kv in spec.decode().split(";")[1:])
    kind = spec.decode().split(";", 1)[0]
    a_t, b_t = _ELEMENT_BY_NAME[f["a"]], _ELEMENT_BY_NAME[f["b"]]
    state = _state_dtype(a_t, b_t)
    w = _window_of(int(f["block"]), int(f["k"]))
    reverse, log_space, has_init = f["reverse"] == "1", f["log"] == "1", f["init"] == "1"
    device = torch.device(f["dev"])
    config = _config_for_bucket(int(f["bucket"]), w) if device.type == "cuda" else ""
    time_major = int(f.get("tm", "0"))
    ir = scan_ir(_ELEMENT[a_t], _ELEMENT[b_t], _ELEMENT[state], w, reverse, log_space,
                 has_init, True, time_major)
    if time_major:
        config = time_major_config(time_major, config, kind != "scan")
    if f.get("int32") == "1":
        config += " index-bitwidth=32"
    if kind == "scan":
        k = _Kernel(ir, 5 if has_init else 4, device, config or None)
    else:
        k = _Kernel(ir, 9 if has_init else 7, device, f"adjoint=1 {config}".strip(),
                    entry="scan_adjoint")
    # The C++ cache keeps this address for the life of the process: so must we
    # keep the compiled module (never in the clearable _kernels table).
    _CPP_KERNELS[spec] = k
    return ctypes.cast(k.fn, ctypes.c_void_p).value


_CPP_KERNELS: dict = {}


_COMPILE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(_compile_spec)


def _load_cpp_ops() -> bool:
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_lib", "libmixir_torch.so")
    if os.environ.get("MIXIR_PYTHON_OPS") == "1" or not os.path.exists(path):
        return False
    try:
        torch.ops.load_library(path)
        lib = ctypes.CDLL(path)
        from .. import _runtime
        rt = _runtime._library()
        lib.mixir_torch_install.argtypes = [ctypes.c_void_p] * 3
        lib.mixir_torch_install(ctypes.cast(_COMPILE_CALLBACK, ctypes.c_void_p),
                                ctypes.cast(rt.mixir_runtime_set_stream, ctypes.c_void_p),
                                ctypes.cast(rt.mixir_runtime_take_error, ctypes.c_void_p))
    except (OSError, ImportError, RuntimeError):
        return False
    return True


CPP_OPS = _load_cpp_ops()
if not CPP_OPS:
    torch.library.custom_op("mixir::scan", _scan_python_impl, mutates_args=(),
                            device_types=("cpu", "cuda"),
                            schema="(Tensor a, Tensor b, Tensor? initial_state, bool reverse, "
                                   "bool log_space, int block, int k) -> (Tensor, Tensor)")
    torch.library.custom_op("mixir::scan_backward", _scan_backward_python_impl, mutates_args=(),
                            device_types=("cpu", "cuda"),
                            schema="(Tensor a, Tensor b, Tensor? initial_state, Tensor h, "
                                   "Tensor grad_h, Tensor grad_final, bool reverse, "
                                   "bool log_space, int block, int k) "
                                   "-> (Tensor, Tensor, Tensor)")
torch.library.register_fake("mixir::scan")(_scan_fake)
torch.library.register_fake("mixir::scan_backward")(_scan_backward_fake)
if CPP_OPS:
    # Autograd is registered in C++ (runtime/torch/ScanOps.cpp); its backward calls
    # this op for what the compiled adjoint does not cover.
    _LIB = torch.library.Library("mixir", "IMPL")
    _LIB.impl("scan_backward_composite", _scan_backward_composite, "CompositeImplicitAutograd")
else:
    torch.library.register_autograd("mixir::scan", _backward, setup_context=_setup_context)
# Bound once: calling the overload skips the packet's overload resolution.
_SCAN_OP = torch.ops.mixir.scan.default


def scan(a: torch.Tensor, b: torch.Tensor, initial_state: Optional[torch.Tensor] = None,
         reverse: bool = False, log_space: bool = False, window=None,
         output_final_state: bool = False, cu_seqlens: Optional[torch.Tensor] = None
         ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Diagonal linear recurrence along time, layout [B, T, D] (time second, like fla).

        h_t = a_t * h_{t-1} + b_t          (reverse: h_t = a_t * h_{t+1} + b_t)

    a: gates [B, T, D] (log a_t if log_space); b: inputs [B, T, D]; real or complex,
    float16/bfloat16/float32/float64, any strides, CPU or CUDA. The state (and h) is
    float32 for 16/32-bit inputs, float64 for 64-bit ones, complex if any input is.
    initial_state: [B, D]. window: None (global) or mixir.ops.jagged(block=16, k=1|2),
    the sliding window recurrence (initial_state is the first block's carry).
    cu_seqlens: int tensor [N + 1] of packed sequence boundaries (batch must be 1, like
    fla); initial_state and final_state are then [N, D], one per sequence. Jagged windows
    need every sequence to start on a block boundary (blocks are per-sequence aligned).
    Differentiable in a, b and initial_state. Returns (h [B, T, D], final_state [B, D] or None);
    h is stored channels-by-time when b is time-contiguous (stride 1 over time, as a
    transposed [B, D, T] tensor is), else contiguous.
    """
    w = window if type(window) is Window else _window(window)
    _check_tensor("a", a, 3, "[batch, time, channels]")
    _check_tensor("b", b, 3, "[batch, time, channels]")
    if a.shape != b.shape:
        raise ValueError(f"mixir.ops.scan: a and b must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    device = b.device
    if not (b.is_cuda or b.is_cpu or b.is_meta) or a.device != device or (
            initial_state is not None and initial_state.device != device):
        _check_devices(a, b, initial_state)
    if w.k == 1 and initial_state is not None:
        raise ValueError("mixir.ops.scan: a jagged window with k=1 has no carry, so "
                         "initial_state would be ignored; pass k=2 or no initial_state")
    if cu_seqlens is not None:
        return _scan_varlen(a, b, initial_state, bool(reverse), bool(log_space), w,
                            output_final_state, cu_seqlens)
    if initial_state is not None:
        B, _, D = b.shape
        state_dtype = _state_dtype(a.dtype, b.dtype)
        _check_tensor("initial_state", initial_state, 2, f"[batch, channels] = {[B, D]}")
        if tuple(initial_state.shape) != (B, D):
            raise ValueError(f"mixir.ops.scan: initial_state must have shape {(B, D)}, got "
                             f"{tuple(initial_state.shape)}")
        if initial_state.is_complex() and not state_dtype.is_complex:
            raise TypeError("mixir.ops.scan: initial_state is complex but a and b are real")
        if initial_state.dtype != state_dtype:
            initial_state = initial_state.to(state_dtype)
    if CPP_OPS or _needs_dispatcher(a, b, initial_state):
        # The C++ op: its autograd kernel (C++) goes straight to the device kernel
        # when there is nothing to differentiate.
        h, final = _SCAN_OP(a, b, initial_state, bool(reverse), bool(log_space), w.block, w.k)
    else:
        # Python-op fallback, eager inference: skip the Python autograd wrapper.
        h, final = _run_scan(a, b, initial_state, bool(reverse), bool(log_space), w)
    return h, (final if output_final_state else None)


_DEVICE_TYPES = ("cpu", "cuda", "meta")


def _check_devices(a, b, initial_state):
    """The precise error for operands on an unsupported device or on different devices."""
    named = [(n, x) for n, x in (("a", a), ("b", b), ("initial_state", initial_state))
             if x is not None]
    for name, x in named:
        if x.device.type not in _DEVICE_TYPES:
            raise NotImplementedError(f"mixir.ops.scan: {name} is on {x.device}; supported "
                                      "devices are cpu and cuda (and meta for shapes)")
    for name, x in named:
        if x.device != b.device:
            raise ValueError(f"mixir.ops.scan: {name} is on {x.device} but b is on {b.device}")


def _needs_dispatcher(*tensors) -> bool:
    """Autograd, tracing (torch.compile, fake/meta tensors) and tensor subclasses go
    through torch.ops.mixir.scan; plain eager inference does not need to."""
    if torch.compiler.is_compiling():
        return True
    grad = torch.is_grad_enabled()
    for t in tensors:
        if t is None:
            continue
        if (grad and t.requires_grad) or type(t) is not torch.Tensor or t.device.type == "meta":
            return True
    return False


def _scan_varlen(a, b, initial_state, reverse, log_space, w, output_final_state, cu_seqlens):
    """Packed sequences: the recurrence is cut exactly at every sequence boundary by a
    zero gate at each sequence's first step (processing order); an initial state enters
    through that step's input (h = a h0 + b), so one launch covers every sequence."""
    B, T, D = b.shape
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or \
            cu_seqlens.dtype not in (torch.int32, torch.int64) or cu_seqlens.numel() < 2:
        raise ValueError("mixir.ops.scan: cu_seqlens must be a 1-D int32/int64 tensor [N + 1]")
    if B != 1:
        raise ValueError(f"mixir.ops.scan: with cu_seqlens the batch must be 1 (packed "
                         f"sequences), got batch {B}")
    cu = [int(v) for v in cu_seqlens.tolist()]
    N = len(cu) - 1
    if cu[0] != 0 or cu[-1] != T or any(x > y for x, y in zip(cu, cu[1:])):
        raise ValueError(f"mixir.ops.scan: cu_seqlens must start at 0, end at T = {T} and be "
                         f"non-decreasing, got {cu[:4]}{'...' if len(cu) > 4 else ''}")
    if w.kind == "jagged":
        bad = [x for x in cu[:-1] if x % w.block]
        if bad:
            raise NotImplementedError(
                f"mixir.ops.scan: a jagged window with cu_seqlens needs every sequence to start on "
                f"a multiple of the block ({w.block}); sequence start {bad[0]} does not")
        if initial_state is not None:
            raise NotImplementedError("mixir.ops.scan: jagged windows with cu_seqlens take no "
                                      "initial_state yet")
    state_dtype = _state_dtype(a.dtype, b.dtype)
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 2, f"[num_sequences, channels] = {[N, D]}")
        if tuple(initial_state.shape) != (N, D):
            raise ValueError(f"mixir.ops.scan: with cu_seqlens initial_state must have shape "
                             f"{(N, D)} (one per sequence), got {tuple(initial_state.shape)}")
        initial_state = initial_state.to(state_dtype)
    nonempty = [i for i in range(N) if cu[i + 1] > cu[i]]
    first = torch.tensor([cu[i + 1] - 1 if reverse else cu[i] for i in nonempty],
                         dtype=torch.long, device=b.device)
    last = torch.tensor([cu[i] if reverse else cu[i + 1] - 1 for i in nonempty],
                        dtype=torch.long, device=b.device)
    cut = a.clone()
    cut[0, first] = float("-inf") if log_space else 0.0
    inputs = b
    if initial_state is not None and len(nonempty):
        gate = a[0, first].to(state_dtype)
        gate = gate.exp() if log_space else gate
        inputs = b.to(state_dtype if not b.dtype.is_complex or state_dtype.is_complex else b.dtype)
        inputs = inputs.clone()
        inputs[0, first] = inputs[0, first] + gate * initial_state[nonempty]
    h, _ = torch.ops.mixir.scan(cut, inputs, None, reverse, log_space, w.block, w.k)
    if not output_final_state:
        return h, None
    final = (initial_state.clone() if (initial_state is not None and w.kind == "global")
             else torch.zeros((N, D), dtype=h.dtype, device=h.device))
    if len(nonempty):
        if w.kind == "jagged":
            # The jagged final state is the local (zero-initialised) state: k = 1.
            local, _ = torch.ops.mixir.scan(cut, inputs, None, reverse, log_space, w.block, 1)
            final[nonempty] = local[0, last]
        else:
            final[nonempty] = h[0, last]
    return h, final
