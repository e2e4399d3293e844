"""mixir.ops.scan: the diagonal linear recurrence h_t = a_t h_{t-1} + b_t.

The op is torch.ops.mixir.scan (C++: runtime/torch/ScanOps.cpp), its backward
torch.ops.mixir.scan_backward (the compiled mixer.scan_adjoint, or where that op
does not define the adjoint, the composite below). Each call compiles once per
specialisation (dtypes, window, direction, layout facts), chosen and shaped by the
compiler; sizes and strides are passed at run time, so any [batch, time, channels]
view works, contiguous or not. This module: the arguments' checks, packed
sequences (cu_seqlens), fake kernels and the composite adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from ._torch import as_flag, state_dtype

__all__ = ["scan", "jagged", "Window"]


def _window_problem(block, k) -> Optional[str]:
    """Why (block, k) is not a jagged window, or None. The longest block the compiler
    takes is its own limit (kMaxJaggedBlock: its lowerings unroll a block into
    registers); a longer one fails when the scan is built, as a ValueError naming the
    block (see _compile_problem)."""
    if not isinstance(block, int) or isinstance(block, bool) or block <= 0:
        return f"block must be a positive int, got {block!r}"
    if isinstance(k, bool) or k not in (1, 2):
        return f"k must be 1 or 2, got {k!r}"
    return None


def _compile_problem(error: RuntimeError, w: "Window") -> Optional[ValueError]:
    """The compiler's refusal of a jagged block (longer than its lowerings take) as a
    ValueError naming the block; None for any other error."""
    text = str(error)
    at = text.find("jagged window block")
    if w.kind != "jagged" or at < 0:
        return None
    return ValueError(f"mixir.ops.scan: window block {w.block} is not supported: "
                      f"{text[at:].splitlines()[0]}")


@dataclass(frozen=True)
class Window:
    """Reach of the recurrence: global, or the jagged sliding window of spec 2.1.
    Build jagged windows with mixir.ops.jagged(block, k), which checks them."""

    kind: str = "global"
    block: int = 0
    k: int = 0

    def __post_init__(self):
        if self.kind == "global":
            if self.block or self.k:
                raise ValueError("mixir.ops.Window: a global window takes no block or k")
        elif self.kind == "jagged":
            problem = _window_problem(self.block, self.k)
            if problem:
                raise ValueError(f"mixir.ops.Window: {problem}")
        else:
            raise ValueError(f"mixir.ops.Window: kind must be 'global' or 'jagged', got "
                             f"{self.kind!r}")


def jagged(block: int = 16, k: int = 2) -> Window:
    """The sliding window recurrence: exact inside `block` steps, carry from the previous
    block (k = 2) or none (k = 1). The compiler bounds the block (kMaxJaggedBlock); a
    scan with a longer one raises ValueError naming the block."""
    problem = _window_problem(block, k)
    if problem:
        raise ValueError(f"mixir.ops.jagged: {problem}")
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


_SUPPORTED = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
              torch.complex128)


def _output_like(b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """h for inputs b (and the gradient of a or b for that operand): channels-by-time
    when b is time-contiguous (BTP's layout), else contiguous [B, T, D]; the rule of
    the C++ op (allocateLike in ScanOps.cpp)."""
    B, T, D = b.shape
    if T > 1 and b.stride(1) == 1 and (D == 1 or b.stride(2) != 1):
        return b.new_empty((B, D, T), dtype=dtype).transpose(1, 2)
    return b.new_empty((B, T, D), dtype=dtype)


def _check_tensor(name: str, x, rank: int, what: str):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"mixir.ops.scan: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"mixir.ops.scan: {name} must have shape {what}, got {tuple(x.shape)}")
    if x.dtype not in _SUPPORTED:
        raise TypeError(f"mixir.ops.scan: {name} has dtype {x.dtype}; supported: "
                        + ", ".join(str(d) for d in _SUPPORTED))




# ---------------------------------------------------------------------------
# Fake kernels (meta tensors, torch.compile) and the composite adjoint. A
# window is passed to the ops as (block, k); (0, 0) is the global window.
# ---------------------------------------------------------------------------

def _window_of(block: int, k: int) -> Window:
    return Window() if block == 0 else Window("jagged", block, k)


@torch.library.register_fake("mixir::scan")
def _scan_fake(a, b, initial_state, reverse, log_space, block, k):
    state = state_dtype(a.dtype, b.dtype)
    B, T, D = b.shape
    return _output_like(b, state), b.new_empty((B, D), dtype=state)


@torch.library.register_fake("mixir::scan_backward")
def _scan_backward_fake(a, b, initial_state, h, grad_h, grad_final, reverse, log_space, block, k):
    g0 = h.new_empty((h.shape[0], h.shape[2])) if initial_state is not None else h.new_empty((0,))
    return _output_like(a, a.dtype), _output_like(b, b.dtype), g0


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


# Kept alive: a Library object withdraws its registrations when collected.
_LIB = torch.library.Library("mixir", "IMPL")
_LIB.impl("scan_backward_composite", _scan_backward_composite, "CompositeImplicitAutograd")
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
    initial_state: [B, D], cast to the state dtype (a complex one for real a and b is an
    error). window: None (global) or mixir.ops.jagged(block=16, k=1|2), the sliding window
    recurrence (initial_state is the first block's carry; a block longer than the compiler
    takes is a ValueError).
    Empty inputs (B, T or D = 0) give empty h and a final state equal to initial_state
    (global window) or zeros. NaN and inf propagate as IEEE arithmetic does (a zero gate
    after a NaN state still gives NaN: 0 * NaN); gates outside [0, 1] are taken as given.
    cu_seqlens: int tensor [N + 1] of packed sequence boundaries (batch must be 1, like
    fla); initial_state and final_state are then [N, D], one per sequence. Jagged windows
    need every sequence to start on a block boundary (blocks are per-sequence aligned).
    Differentiable in a, b and initial_state. Returns (h [B, T, D], final_state [B, D] or None);
    h is stored channels-by-time when b is time-contiguous (stride 1 over time, as a
    transposed [B, D, T] tensor is), else contiguous.
    """
    w = window if type(window) is Window else _window(window)
    if type(reverse) is not bool or type(log_space) is not bool or \
            type(output_final_state) is not bool:
        reverse = as_flag("mixir.ops.scan", "reverse", reverse)
        log_space = as_flag("mixir.ops.scan", "log_space", log_space)
        output_final_state = as_flag("mixir.ops.scan", "output_final_state", output_final_state)
    _check_tensor("a", a, 3, "[batch, time, channels]")
    _check_tensor("b", b, 3, "[batch, time, channels]")
    if a.shape != b.shape:
        raise ValueError(f"mixir.ops.scan: a and b must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if initial_state is not None and not isinstance(initial_state, torch.Tensor):
        raise TypeError(f"mixir.ops.scan: initial_state must be a torch.Tensor or None, got "
                        f"{type(initial_state).__name__}")
    device = b.device
    if not (b.is_cuda or b.is_cpu or b.is_meta) or a.device != device or (
            initial_state is not None and initial_state.device != device):
        _check_devices(a, b, initial_state)
    if w.k == 1 and initial_state is not None:
        raise ValueError("mixir.ops.scan: a jagged window with k=1 has no carry, so "
                         "initial_state would be ignored; pass k=2 or no initial_state")
    if cu_seqlens is not None:
        try:
            return _scan_varlen(a, b, initial_state, reverse, log_space, w, output_final_state,
                                cu_seqlens)
        except RuntimeError as e:
            problem = _compile_problem(e, w)
            if problem is None:
                raise
            raise problem from None
    if initial_state is not None:
        B, _, D = b.shape
        state = state_dtype(a.dtype, b.dtype)
        _check_tensor("initial_state", initial_state, 2, f"[batch, channels] = {[B, D]}")
        if tuple(initial_state.shape) != (B, D):
            raise ValueError(f"mixir.ops.scan: initial_state must have shape {(B, D)}, got "
                             f"{tuple(initial_state.shape)}")
        if initial_state.is_complex() and not state.is_complex:
            raise TypeError("mixir.ops.scan: initial_state is complex but a and b are real")
        if initial_state.dtype != state:
            initial_state = initial_state.to(state)
    # The C++ op; its autograd kernel (C++) goes straight to the device kernel when
    # there is nothing to differentiate.
    try:
        h, final = _SCAN_OP(a, b, initial_state, reverse, log_space, w.block, w.k)
    except RuntimeError as e:
        problem = _compile_problem(e, w)
        if problem is None:
            raise
        raise problem from None
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


def _scan_varlen(a, b, initial_state, reverse, log_space, w, output_final_state, cu_seqlens):
    """Packed sequences: the recurrence is cut exactly at every sequence boundary by a
    zero gate at each sequence's first step (processing order); an initial state enters
    through that step's input (h = a h0 + b), so one launch covers every sequence."""
    B, T, D = b.shape
    if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or \
            cu_seqlens.dtype not in (torch.int32, torch.int64) or cu_seqlens.numel() < 2:
        raise ValueError("mixir.ops.scan: cu_seqlens must be a 1-D int32/int64 tensor [N + 1]")
    if cu_seqlens.is_meta:
        raise ValueError("mixir.ops.scan: cu_seqlens is a meta tensor; the sequence boundaries "
                         "are read on the host, so it must hold values (cpu or cuda)")
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
    state = state_dtype(a.dtype, b.dtype)
    if initial_state is not None:
        _check_tensor("initial_state", initial_state, 2, f"[num_sequences, channels] = {[N, D]}")
        if tuple(initial_state.shape) != (N, D):
            raise ValueError(f"mixir.ops.scan: with cu_seqlens initial_state must have shape "
                             f"{(N, D)} (one per sequence), got {tuple(initial_state.shape)}")
        if initial_state.is_complex() and not state.is_complex:
            raise TypeError("mixir.ops.scan: initial_state is complex but a and b are real")
        initial_state = initial_state.to(state)
    nonempty = [i for i in range(N) if cu[i + 1] > cu[i]]
    first = torch.tensor([cu[i + 1] - 1 if reverse else cu[i] for i in nonempty],
                         dtype=torch.long, device=b.device)
    last = torch.tensor([cu[i] if reverse else cu[i + 1] - 1 for i in nonempty],
                        dtype=torch.long, device=b.device)
    cut = a.clone()
    cut[0, first] = float("-inf") if log_space else 0.0
    inputs = b
    if initial_state is not None and len(nonempty):
        gate = a[0, first].to(state)
        gate = gate.exp() if log_space else gate
        inputs = b.to(state if not b.dtype.is_complex or state.is_complex else b.dtype)
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
