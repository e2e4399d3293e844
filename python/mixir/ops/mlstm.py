"""mixir.ops.mlstm: the mLSTM cell (spec 3.1) with mlstm_kernels' interface.

    from mixir.ops.mlstm import mlstm_chunkwise   # was: mlstm_kernels' chunkwise kernels
    h, (c, n, m) = mlstm_chunkwise(q, k, v, i, f, return_last_states=True)

Layouts are mlstm_kernels': q, k [B, NH, S, DHQK], v [B, NH, S, DHV], the input- and
forget-gate pre-activations i, f [B, NH, S]; states c [B, NH, DHQK, DHV],
n [B, NH, DHQK], m [B, NH, 1] (float32, or float64 for float64 inputs). The input gate
is exponential and max-stabilised, the forget gate sigmoid in log space; the output
is h_t = C_t^T q^_t / (max(|n_t . q^_t|, exp(-m_t)) + eps) with q^ = q / sqrt(DHQK).
For the sigmoid input gate (mLSTMsig) pass logsigmoid(i) as i.

Every call is torch.ops.mixir.mlstm (C++): one `mixer.linear_attention` with its
`input_gate` (the op's mLSTM form); the heads-before-time tensors are passed as
strided views of the op's [B, T, H, d] layout, and the forget gate's logsigmoid is
applied first (PyTorch glue; a fused prologue is not built yet). The compiler takes
the recurrent kernel on the CPU and the GPU alike (no chunked tensor-core kernel for
the cell yet), so `chunk_size` is accepted for interface compatibility and ignored.
Gradients (q, k, v, i, f and the initial states) come from the adjoint op
(`mixer.linear_attention_adjoint`): the exact derivative of the stabilised cell, the
stabiliser's max included, rather than mlstm_kernels' stop-gradient through m (which
differs by O(eps exp(m))).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._torch import as_flag, state_dtype
from .linear_attention import _FLOATS, adjoint, key_dim_problem

__all__ = ["mlstm_chunkwise", "mlstm_recurrent_sequence", "mlstm_recurrent_step"]


def _fail(fn: str, message: str, exc=ValueError):
    raise exc(f"mixir.ops.mlstm.{fn}: {message}")


_STATE_NAMES = ("c_initial", "n_initial", "m_initial")

# mlstm_kernels' keywords that tune its Triton kernels (block sizes, warps, stages,
# recomputation, the autocast dtype of its matmuls): they do not change the cell's
# mathematics, and the compiler chooses its own kernel, so they are accepted and
# ignored. Any other keyword is an error (TypeError naming it).
_TUNING_KEYWORDS = frozenset({
    "chunk_size", "chunk_size_inter", "chunk_size_intra", "siz_b_L_parallel", "siz_b_L_loop",
    "siz_b_DH_parallel", "siz_b_DH_loop", "num_warps_intra", "num_warps_inter",
    "num_stages_intra", "num_stages_inter", "num_warps", "num_stages",
    "recompute_states_in_bw", "autocast_kernel_dtype"})


def _compat_keywords(fn, kwargs, q):
    """mlstm_kernels' extra keywords: the tuning ones are ignored; dtype_state must be
    the state dtype the cell is carried in; reset_mask must be None (not supported);
    any other keyword raises TypeError naming it."""
    for name, value in kwargs.items():
        if name in _TUNING_KEYWORDS:
            continue
        if name == "dtype_state":
            state = state_dtype(q.dtype) if isinstance(q, torch.Tensor) and q.dtype in _FLOATS \
                else torch.float32
            if value != state:
                _fail(fn, f"dtype_state must be {state} (the state is float32, float64 for "
                          f"float64 inputs), got {value!r}")
            continue
        if name == "reset_mask":
            if value is not None:
                _fail(fn, "reset_mask is not supported (pass None)", NotImplementedError)
            continue
        _fail(fn, f"got an unexpected keyword argument {name!r}", TypeError)


def _real(fn, name, x) -> float:
    if type(x) is float:
        return x
    if not isinstance(x, (bool, complex, str, bytes)):
        try:
            return float(x)
        except (TypeError, ValueError, RuntimeError):
            pass
    _fail(fn, f"{name} must be a real number, got {x!r}", TypeError)


def _check_step(fn, q, k, v, i, f):
    """mlstm_recurrent_step's one-step layouts: q, k [B, NH, DHQK], v [B, NH, DHV],
    i, f [B, NH, 1]."""
    for name, x in (("q", q), ("k", k), ("v", v), ("i", i), ("f", f)):
        if not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor, got {type(x).__name__}", TypeError)
    if q.dim() != 3:
        _fail(fn, f"q must have shape [batch, heads, head_dim], got {tuple(q.shape)}")
    B, NH, _ = q.shape
    if k.shape != q.shape:
        _fail(fn, f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.dim() != 3 or tuple(v.shape[:2]) != (B, NH):
        _fail(fn, f"v must have shape [{B}, {NH}, value_dim], got {tuple(v.shape)}")
    for name, x in (("i", i), ("f", f)):
        if tuple(x.shape) != (B, NH, 1):
            _fail(fn, f"{name} must have shape [{B}, {NH}, 1] (a gate per head), got "
                      f"{tuple(x.shape)}")


def _check(fn, q, k, v, i, f, c, n, m, state_names=_STATE_NAMES):
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
    cn, nn, mn = state_names
    if any(given) and not all(given):
        _fail(fn, f"{cn}, {nn} and {mn} must be given together")
    for name, x, want in ((cn, c, (B, NH, K, V)), (nn, n, (B, NH, K)), (mn, m, (B, NH, 1))):
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor or None, got {type(x).__name__}",
                  TypeError)
        if tuple(x.shape) != want:
            _fail(fn, f"{name} must have shape {list(want)}, got {tuple(x.shape)}")
        # Carried in the state dtype (float32, float64 for float64 inputs); a complex
        # state would lose its imaginary part, an int or bool one is a mistake.
        if x.dtype not in _FLOATS:
            _fail(fn, f"{name} must be a float16/bfloat16/float32/float64 tensor (the state "
                      f"is real), got {x.dtype}", TypeError)
    for name, x in (("k", k), ("v", v), ("i", i), ("f", f), (cn, c), (nn, n), (mn, m)):
        if x is not None and x.device != q.device:
            _fail(fn, f"{name} is on {x.device} but q is on {q.device}")
    if q.device.type not in ("cpu", "cuda", "meta"):
        _fail(fn, f"q is on {q.device}; supported devices are cpu and cuda", NotImplementedError)


_OP = torch.ops.mixir.mlstm.default


@torch.library.register_fake("mixir::mlstm")
def _mlstm_fake(q, k, v, i, log_f, scale, c0, n0, m0, eps, last_states):
    B, T, H, K = q.shape
    V = v.shape[3]
    sd = state_dtype(q.dtype)
    h = v.new_empty((B, T, H, V))
    if not last_states:
        e = v.new_empty(0, dtype=sd)
        return h, e, e.clone(), e.clone()
    return (h, v.new_empty((B, H, K, V), dtype=sd), v.new_empty((B, H, K), dtype=sd),
            v.new_empty((B, H), dtype=sd))


def _backward(q, k, v, i, log_f, scale, c0, n0, m0, eps, last_states, dh, dc, dn, dm):
    """The adjoint op with the input gate (torch.ops.mixir.mlstm_backward): the exact
    gradient of the stabilised cell, stabiliser and epsilon included; gradients of q,
    k, v, i, log_f, c0, n0, m0 (empty where the operand is absent)."""
    B, T, H, K = q.shape
    if dh is None:
        dh = torch.zeros((B, T, H, v.shape[3]), dtype=v.dtype, device=v.device)
    given = lambda x: x if last_states and x is not None and x.numel() else None  # noqa: E731
    grads = adjoint(q, k, v, log_f, None, scale, c0, None, dh, given(dc), input_gate=i, n0=n0,
                    m0=m0, dn_final=given(dn), dm_final=given(dm), epsilon=eps)
    out = []
    for name, like in (("q", q), ("k", k), ("v", v), ("i", i), ("g", log_f), ("h0", c0),
                       ("n0", n0), ("m0", m0)):
        out.append(q.new_empty(0) if like is None else grads[name].to(like.dtype))
    return out


# Kept alive: a Library object withdraws its registrations when collected.
_LIB = torch.library.Library("mixir", "IMPL")
_LIB.impl("mlstm_backward", _backward, "CompositeImplicitAutograd")


def _mlstm(fn, q, k, v, i, f, c_initial, n_initial, m_initial, return_last_states, eps,
           state_names=_STATE_NAMES):
    _check(fn, q, k, v, i, f, c_initial, n_initial, m_initial, state_names)
    eps = _real(fn, "eps", eps)
    return_last_states = as_flag(f"mixir.ops.mlstm.{fn}", "return_last_states", return_last_states)
    K = q.shape[3]
    # The op's layout is [B, T, H, d]: heads-before-time tensors are its views.
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    gate = torch.float64 if q.dtype == torch.float64 else torch.float32
    it = i.to(gate).transpose(1, 2)
    log_f = F.logsigmoid(f.to(gate)).transpose(1, 2)
    m0 = None if m_initial is None else m_initial[..., 0]
    try:
        h, c, n, m = _OP(qt, kt, vt, it, log_f, K ** -0.5, c_initial, n_initial, m0, eps,
                         return_last_states)
    except RuntimeError as e:
        problem = key_dim_problem(f"mlstm.{fn}", e, K)
        if problem is None:
            raise
        raise problem from None
    h = h.transpose(1, 2)
    if return_last_states:
        return h, (c, n, m[..., None])
    return h


def mlstm_chunkwise(q, k, v, i, f, c_initial=None, n_initial=None, m_initial=None,
                    return_last_states=False, eps=1e-6, chunk_size=64, **kwargs):
    """mlstm_kernels' chunkwise mLSTM (q, k, v [B, NH, S, d]; i, f [B, NH, S]).
    Returns h [B, NH, S, DHV], or (h, (c, n, m)) with return_last_states.

    mlstm_kernels' kernel-tuning keywords (chunk_size, chunk_size_inter/intra, siz_b_*,
    num_warps_*, num_stages_*, recompute_states_in_bw, autocast_kernel_dtype) are
    accepted and ignored; dtype_state must be the state dtype; reset_mask must be
    None; any other keyword is a TypeError."""
    if kwargs:
        _compat_keywords("mlstm_chunkwise", kwargs, q)
    return _mlstm("mlstm_chunkwise", q, k, v, i, f, c_initial, n_initial, m_initial,
                  return_last_states, eps)


def mlstm_recurrent_sequence(q, k, v, i, f, c_initial=None, n_initial=None, m_initial=None,
                             return_last_states=False, eps=1e-6, **kwargs):
    """The recurrent form of the same cell (the same op; mlstm_kernels' name). Keywords
    as mlstm_chunkwise's."""
    if kwargs:
        _compat_keywords("mlstm_recurrent_sequence", kwargs, q)
    return _mlstm("mlstm_recurrent_sequence", q, k, v, i, f, c_initial, n_initial, m_initial,
                  return_last_states, eps)


def mlstm_recurrent_step(c, n, m, q, k, v, i, f, eps=1e-6, **kwargs):
    """One decode step (mlstm_kernels' recurrent step): q, k [B, NH, DHQK],
    v [B, NH, DHV], i, f [B, NH, 1]; states c [B, NH, DHQK, DHV], n [B, NH, DHQK],
    m [B, NH, 1] (all three, or all None for zero states). Returns
    (h [B, NH, DHV], (c, n, m)). Keywords as mlstm_chunkwise's."""
    fn = "mlstm_recurrent_step"
    if kwargs:
        _compat_keywords(fn, kwargs, q)
    _check_step(fn, q, k, v, i, f)
    h, states = _mlstm(fn, q[:, :, None], k[:, :, None], v[:, :, None], i, f, c, n, m, True,
                       eps, state_names=("c", "n", "m"))
    return h[:, :, 0], states
