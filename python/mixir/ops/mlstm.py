"""mixir.ops.mlstm: the mLSTM cell (spec 3.1) with mlstm_kernels' interface.

    from mixir.ops.mlstm import mlstm_chunkwise   # was: mlstm_kernels' chunkwise kernels
    h, (c, n, m) = mlstm_chunkwise(q, k, v, i, f, return_last_states=True)

Layouts are mlstm_kernels': q, k [B, NH, S, DHQK], v [B, NH, S, DHV], the input- and
forget-gate pre-activations i, f [B, NH, S]; states c [B, NH, DHQK, DHV],
n [B, NH, DHQK], m [B, NH, 1] (float32, or float64 for float64 inputs). The input gate
is exponential and max-stabilised, the forget gate sigmoid in log space; the output
is h_t = C_t^T q^_t / (max(|n_t . q^_t|, exp(-m_t)) + eps) with q^ = q / sqrt(DHQK).
For the sigmoid input gate (mLSTMsig) pass logsigmoid(i) as i.

Every call is one `mixer.linear_attention` with its `input_gate` (the op's mLSTM
form): the heads-before-time tensors are passed as strided views of the op's
[B, T, H, d] layout, and the forget gate's logsigmoid is applied first (PyTorch
glue; a fused prologue is not built yet). It runs the recurrent lowering on the CPU
and the GPU alike: no chunked tensor-core kernel yet, so `chunk_size` is accepted
for interface compatibility and ignored. Gradients (q, k, v, i, f and the initial
states) come from the adjoint kernel (`mixer.linear_attention_adjoint`): the exact
derivative of the stabilised cell, the stabiliser's max included, rather than
mlstm_kernels' stop-gradient through m (which differs by O(eps exp(m))).
"""

from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .linear_attention import _FLOATS, _vector_ready, adjoint, gpu_config, linear_attention_ir
from .scan import _ELEMENT, _kernel

__all__ = ["mlstm_chunkwise", "mlstm_recurrent_sequence", "mlstm_recurrent_step"]


def _fail(fn: str, message: str, exc=ValueError):
    raise exc(f"mixir.ops.mlstm.{fn}: {message}")


def _check(fn, q, k, v, i, f, c, n, m):
    for name, x in (("q", q), ("k", k), ("v", v), ("i", i), ("f", f)):
        if not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor, got {type(x).__name__}", TypeError)
        if x.dtype not in _FLOATS:
            _fail(fn, f"{name} must be float16/bfloat16/float32/float64, got {x.dtype}", TypeError)
    if q.dim() != 4:
        _fail(fn, f"q must have shape [batch, heads, time, head_dim], got {tuple(q.shape)}")
    B, NH, S, K = q.shape
    if k.shape != q.shape:
        _fail(fn, f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, NH, S):
        _fail(fn, f"v must have shape [{B}, {NH}, {S}, value_dim], got {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        _fail(fn, f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}",
              TypeError)
    if K == 0 or v.shape[3] == 0:
        _fail(fn, f"head dimensions must be positive, got {K} and {v.shape[3]}")
    for name, x in (("i", i), ("f", f)):
        if tuple(x.shape) != (B, NH, S):
            _fail(fn, f"{name} must have shape [{B}, {NH}, {S}] (a gate per head and step), "
                      f"got {tuple(x.shape)}")
    V = v.shape[3]
    given = [x is not None for x in (c, n, m)]
    if any(given) and not all(given):
        _fail(fn, "c_initial, n_initial and m_initial must be given together")
    for name, x, want in (("c_initial", c, (B, NH, K, V)), ("n_initial", n, (B, NH, K)),
                          ("m_initial", m, (B, NH, 1))):
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor or None", TypeError)
        if tuple(x.shape) != want:
            _fail(fn, f"{name} must have shape {list(want)}, got {tuple(x.shape)}")
    for name, x in (("k", k), ("v", v), ("i", i), ("f", f), ("c_initial", c), ("n_initial", n),
                    ("m_initial", m)):
        if x is not None and x.device != q.device:
            _fail(fn, f"{name} is on {x.device} but q is on {q.device}")
    if q.device.type not in ("cpu", "cuda", "meta"):
        _fail(fn, f"q is on {q.device}; supported devices are cpu and cuda", NotImplementedError)


def _state_dtype(q: torch.Tensor) -> torch.dtype:
    return torch.float64 if q.dtype == torch.float64 else torch.float32


@torch.library.custom_op("mixir::mlstm", mutates_args=(), device_types=("cpu", "cuda"))
def _mlstm_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor,
              log_f: torch.Tensor, scale: float, c0: Optional[torch.Tensor],
              n0: Optional[torch.Tensor], m0: Optional[torch.Tensor], eps: float,
              last_states: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, T, H, d] operands (views); states [B, H, K, V], [B, H, K], [B, H]. Returns
    (h, c, n, m); the states are empty tensors unless last_states."""
    B, T, H, K = q.shape
    V = v.shape[3]
    sd = _state_dtype(q)
    h = torch.empty((B, T, H, V), dtype=v.dtype, device=v.device)
    c = torch.empty((B, H, K, V), dtype=sd, device=v.device) if last_states else None
    n = torch.empty((B, H, K), dtype=sd, device=v.device) if last_states else None
    m = torch.empty((B, H), dtype=sd, device=v.device) if last_states else None
    def empty():  # distinct per return: a custom op's outputs may not alias
        return h.new_empty(0, dtype=sd)

    if h.numel() == 0:  # no steps (or no heads): the states pass through
        for out, init in ((c, c0), (n, n0), (m, m0)):
            if out is not None:
                out.copy_(init if init is not None else torch.zeros_like(out))
        return h, *[x if x is not None else empty() for x in (c, n, m)]
    q, k, v = _vector_ready(q), _vector_ready(k), _vector_ready(v)
    init = c0 is not None
    ir, scale_pos = linear_attention_ir(
        _ELEMENT[q.dtype], _ELEMENT[v.dtype], K, V, "scalar", _ELEMENT[log_f.dtype], False,
        "f32", init, None, last_states, _ELEMENT[sd], "", 0, input_gate=_ELEMENT[i.dtype],
        mlstm_init=init, mlstm_final=last_states, epsilon=eps)
    options = gpu_config(B * H, V, q.device) if q.is_cuda else None
    args = [q, k, v, log_f, i, float(scale)]
    if init:
        args += [c0.to(sd), n0.to(sd), m0.to(sd)]
    args.append(h)
    if last_states:
        args += [c, n, m]
    scalar = ctypes.c_double if sd == torch.float64 else ctypes.c_float
    kernel = _kernel(("mlstm", q.device, ir, options), ir, len(args), q.device, options,
                     entry="la", scalar_args={scale_pos: scalar})
    kernel(*args)
    return h, *[x if x is not None else empty() for x in (c, n, m)]


@_mlstm_op.register_fake
def _mlstm_fake(q, k, v, i, log_f, scale, c0, n0, m0, eps, last_states):
    B, T, H, K = q.shape
    V = v.shape[3]
    sd = _state_dtype(q)
    h = v.new_empty((B, T, H, V))
    if not last_states:
        e = v.new_empty(0, dtype=sd)
        return h, e, e.clone(), e.clone()
    return (h, v.new_empty((B, H, K, V), dtype=sd), v.new_empty((B, H, K), dtype=sd),
            v.new_empty((B, H), dtype=sd))


def _setup_context(ctx, inputs, output):
    q, k, v, i, log_f, scale, c0, n0, m0, eps, last_states = inputs
    ctx.scale, ctx.eps, ctx.last_states = scale, eps, last_states
    ctx.save_for_backward(q, k, v, i, log_f, c0, n0, m0)


def _backward(ctx, dh, dc, dn, dm):
    """The adjoint kernel (mixer.linear_attention_adjoint with the input gate): the
    exact gradient of the stabilised cell, stabiliser and epsilon included."""
    q, k, v, i, log_f, c0, n0, m0 = ctx.saved_tensors
    B, T, H, K = q.shape
    if dh is None:
        dh = torch.zeros((B, T, H, v.shape[3]), dtype=v.dtype, device=v.device)
    given = lambda x: x if ctx.last_states and x is not None and x.numel() else None  # noqa: E731
    grads = adjoint(q, k, v, log_f, None, ctx.scale, c0, None, dh, given(dc),
                        input_gate=i, n0=n0, m0=m0, dn_final=given(dn), dm_final=given(dm),
                        epsilon=ctx.eps)
    cast = lambda name, like: None if like is None else grads[name].to(like.dtype)  # noqa: E731
    return (cast("q", q), cast("k", k), cast("v", v), cast("i", i), cast("g", log_f), None,
            cast("h0", c0), cast("n0", n0), cast("m0", m0), None, None)


_mlstm_op.register_autograd(_backward, setup_context=_setup_context)


def mlstm_chunkwise(q, k, v, i, f, c_initial=None, n_initial=None, m_initial=None,
                    return_last_states=False, eps=1e-6, chunk_size=64, **kwargs):
    """mlstm_kernels' chunkwise mLSTM (q, k, v [B, NH, S, d]; i, f [B, NH, S]).
    Returns h [B, NH, S, DHV], or (h, (c, n, m)) with return_last_states."""
    _check("mlstm_chunkwise", q, k, v, i, f, c_initial, n_initial, m_initial)
    K = q.shape[3]
    # The op's layout is [B, T, H, d]: heads-before-time tensors are its views.
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gate = torch.float64 if q.dtype == torch.float64 else torch.float32
    it = i.to(gate).transpose(1, 2)
    log_f = F.logsigmoid(f.to(gate)).transpose(1, 2)
    m0 = None if m_initial is None else m_initial[..., 0]
    if q.device.type == "meta":
        h, c, n, m = _mlstm_fake(qt, kt, vt, it, log_f, K ** -0.5, c_initial, n_initial, m0,
                                 float(eps), bool(return_last_states))
    else:
        h, c, n, m = _mlstm_op(qt, kt, vt, it, log_f, K ** -0.5, c_initial, n_initial, m0,
                               float(eps), bool(return_last_states))
    h = h.transpose(1, 2)
    if return_last_states:
        return h, (c, n, m[..., None])
    return h


def mlstm_recurrent_sequence(q, k, v, i, f, c_initial=None, n_initial=None, m_initial=None,
                             return_last_states=False, eps=1e-6, **kwargs):
    """The recurrent form of the same cell (the same op; mlstm_kernels' name)."""
    return mlstm_chunkwise(q, k, v, i, f, c_initial, n_initial, m_initial,
                           return_last_states, eps)


def mlstm_recurrent_step(c, n, m, q, k, v, i, f, eps=1e-6, **kwargs):
    """One decode step (mlstm_kernels' recurrent step): q, k [B, NH, DHQK],
    v [B, NH, DHV], i, f [B, NH, 1]; states c [B, NH, DHQK, DHV], n [B, NH, DHQK],
    m [B, NH, 1]. Returns (h [B, NH, DHV], (c, n, m))."""
    h, states = mlstm_chunkwise(q[:, :, None], k[:, :, None], v[:, :, None], i, f, c, n, m,
                                return_last_states=True, eps=eps)
    return h[:, :, 0], states
