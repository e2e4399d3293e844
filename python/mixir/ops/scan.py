"""mixir.ops.scan: the diagonal linear recurrence h_t = a_t h_{t-1} + b_t.

Each call is specialised on what changes the generated code (dtypes, window,
direction, log space, which optional operands exist), compiled once from
`mixer.scan` IR and kept in memory. Sizes and strides are passed at run time,
so any [batch, time, channels] view works, contiguous or not.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .._compiler import compile as _compile

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


def _state_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """fp32 state for 16/32-bit inputs, fp64 for 64-bit, complex if any input is."""
    wide = max(_WIDE[d] for d in dtypes) == 64
    if any(d.is_complex for d in dtypes):
        return torch.complex128 if wide else torch.complex64
    return torch.float64 if wide else torch.float32


def _memref(rank: int, element: str) -> str:
    dims = "x".join("?" * rank)
    strides = ", ".join("?" * rank)
    return f"memref<{dims}x{element}, strided<[{strides}], offset: ?>>"


def scan_ir(gate: str, inp: str, state: str, window: Window, reverse: bool, log_space: bool,
            has_init: bool, has_final: bool) -> str:
    """The `mixer.scan` function for one specialisation (buffer form, DPS)."""
    seq = lambda e: _memref(3, e)  # noqa: E731
    st = _memref(2, state)
    args = [f"%a: {seq(gate)}", f"%b: {seq(inp)}"]
    if has_init:
        args.append(f"%h0: {st}")
    args.append(f"%h: {seq(state)}")
    if has_final:
        args.append(f"%hT: {st}")
    flags = (" log_space" if log_space else "") + (" reverse" if reverse else "")
    body = (f"mixer.scan {window.ir()}{flags} gates(%a : {seq(gate)}) inputs(%b : {seq(inp)})"
            + (f" init(%h0 : {st})" if has_init else "")
            + f" outs(%h : {seq(state)})"
            + (f" final(%hT : {st})" if has_final else ""))
    return (f"func.func @scan({', '.join(args)}) attributes {{llvm.emit_c_interface}} {{\n"
            f"  {body}\n  return\n}}\n")


class _MemRef(ctypes.Structure):
    """Strided memref descriptor of a given rank (see include/mixir-c/Compiler.h)."""

    @classmethod
    def of_rank(cls, rank: int):
        return type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": [
            ("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
            ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
            ("strides", ctypes.c_int64 * rank)]})


_DESCRIPTOR = {r: _MemRef.of_rank(r) for r in (2, 3)}


def _descriptor(t: torch.Tensor):
    d = _DESCRIPTOR[t.dim()]()
    d.allocated = d.aligned = t.data_ptr()
    d.offset = 0
    d.sizes[:] = list(t.shape)
    d.strides[:] = list(t.stride())
    return d


class _CpuKernel:
    """A compiled CPU specialisation, called with torch tensors (strided descriptors)."""

    def __init__(self, ir: str, nargs: int, options: Optional[str] = None):
        self.ir = ir
        self.module = _compile(ir, "cpu", options)
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nargs))
        self.fn = proto(self.module.lookup("_mlir_ciface_scan"))

    def __call__(self, *tensors: torch.Tensor):
        descs = [_descriptor(t) for t in tensors]
        self.fn(*[ctypes.addressof(d) for d in descs])


_kernels: dict = {}


def _kernel(key, ir: str, nargs: int) -> _CpuKernel:
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = _CpuKernel(ir, nargs)
    return k


def _check_tensor(name: str, x, rank: int, what: str):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"mixir.ops.scan: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"mixir.ops.scan: {name} must have shape {what}, got {tuple(x.shape)}")
    if x.dtype not in _ELEMENT:
        raise TypeError(f"mixir.ops.scan: {name} has dtype {x.dtype}; supported: "
                        + ", ".join(str(d) for d in _ELEMENT))


def scan(a: torch.Tensor, b: torch.Tensor, initial_state: Optional[torch.Tensor] = None,
         reverse: bool = False, log_space: bool = False, window=None,
         output_final_state: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Diagonal linear recurrence along time, layout [B, T, D] (time second, like fla).

        h_t = a_t * h_{t-1} + b_t          (reverse: h_t = a_t * h_{t+1} + b_t)

    a: gates [B, T, D] (log a_t if log_space); b: inputs [B, T, D]; real or complex,
    float16/bfloat16/float32/float64. The state (and h) is float32 for 16/32-bit
    inputs, float64 for 64-bit ones, complex if any input is complex.
    initial_state: [B, D]. window: None (global) or mixir.ops.jagged(block=16, k=1|2),
    the sliding window recurrence (initial_state is the first block's carry).
    Returns (h [B, T, D], final_state [B, D] or None).
    """
    w = _window(window)
    _check_tensor("a", a, 3, "[batch, time, channels]")
    _check_tensor("b", b, 3, "[batch, time, channels]")
    if a.shape != b.shape:
        raise ValueError(f"mixir.ops.scan: a and b must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    for name, x in (("a", a), ("b", b), ("initial_state", initial_state)):
        if x is not None and x.device.type != "cpu":
            raise NotImplementedError(
                f"mixir.ops.scan: {name} is on {x.device}; this build runs the compiled CPU "
                "code only (the CUDA runtime is not part of it yet)")
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad
                                       for x in (a, b, initial_state)):
        raise NotImplementedError("mixir.ops.scan: gradients are not implemented yet; call it "
                                  "under torch.no_grad() or detach the inputs")
    if w.kind == "jagged" and w.k == 1 and initial_state is not None:
        raise ValueError("mixir.ops.scan: a jagged window with k=1 has no carry, so "
                         "initial_state would be ignored; pass k=2 or no initial_state")
    state_dtype = _state_dtype(a.dtype, b.dtype)
    B, T, D = b.shape
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 2, f"[batch, channels] = {[B, D]}")
        if tuple(initial_state.shape) != (B, D):
            raise ValueError(f"mixir.ops.scan: initial_state must have shape {(B, D)}, got "
                             f"{tuple(initial_state.shape)}")
        if initial_state.is_complex() and not state_dtype.is_complex:
            raise TypeError("mixir.ops.scan: initial_state is complex but a and b are real")
        initial_state = initial_state.to(state_dtype)

    h = torch.empty((B, T, D), dtype=state_dtype)
    final = torch.empty((B, D), dtype=state_dtype) if output_final_state else None
    if T == 0 or B == 0 or D == 0:
        if final is not None:
            final.copy_(initial_state if (initial_state is not None and w.kind == "global")
                        else torch.zeros_like(final))
        return h, final

    key = (a.dtype, b.dtype, w, bool(reverse), bool(log_space), initial_state is not None,
           output_final_state)
    ir = scan_ir(_ELEMENT[a.dtype], _ELEMENT[b.dtype], _ELEMENT[state_dtype], w, bool(reverse),
                 bool(log_space), initial_state is not None, output_final_state)
    operands = [a, b] + ([initial_state] if initial_state is not None else []) + [h] + \
        ([final] if final is not None else [])
    kernel = _kernel(key, ir, len(operands))
    kernel(*operands)
    return h, final
