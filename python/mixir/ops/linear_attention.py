"""mixir.ops.linear_attention: linear attention with a matrix state, fla's interface.

The names, argument order, layouts ([B, T, H, d], time before heads) and returns are
fla's, so that a user swaps an import:

    from mixir.ops.linear_attention import chunk_simple_gla   # was: from fla.ops.simple_gla

Every function is one call of torch.ops.mixir.linear_attention (C++, runtime/torch/
LinearAttentionOps.cpp): one `mixer.linear_attention` whose kernel the compiler
chooses from the facts of the call (mixer-select-lowering-config): on CUDA with
bf16/fp16 rows that move as 16-byte vectors, K up to 128 per pass, the chunked
tensor-core kernels (with, for the additive update, a key split for wider keys and
a sequence split when few heads would leave SMs idle); else the exact recurrent
kernel. This module is the arguments' checks, fla's semantics (decays accumulate in
float32), the fake kernels and the backward.

The state is float32 (float64 for float64 inputs); the output has v's dtype.
Gradients flow to q, k, v, g, beta and initial_state: for the additive update with
no, per-head or per-key decay, and for the delta rule with no or a per-head decay,
they are forward passes of the same op (see _backward and _delta_backward); for the
delta rule with a per-key decay they come from the adjoint op
(torch.ops.mixir.linear_attention_adjoint, mixer.linear_attention_adjoint): exact,
one sequential program per (head, sequence).
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

from ._torch import as_flag, state_dtype

__all__ = [
    "linear_attention", "chunk_simple_gla", "fused_recurrent_simple_gla", "chunk_gla",
    "fused_recurrent_gla", "chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule",
    "chunk_gdn", "fused_recurrent_gdn", "chunk_delta_rule", "fused_recurrent_delta_rule",
    "chunk_retention", "fused_recurrent_retention", "adjoint",
]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_OP = torch.ops.mixir.linear_attention.default
_ADJOINT_OP = torch.ops.mixir.linear_attention_adjoint.default
_CORRECTED_OP = torch.ops.mixir.linear_attention_corrected_values.default


def _fail(fn: str, message: str, exc=ValueError):
    raise exc(f"mixir.ops.{fn}: {message}")


def _well_formed(q, k, v, g, beta, initial_state, vector_decay: bool) -> bool:
    """The common case of _check in few steps (a warm call's host time): True only
    where _check would pass too; anything else goes through _check's messages."""
    try:
        qs, vs, dt, dev = q.shape, v.shape, q.dtype, q.device
        B, T, Hq, K = qs
        _, _, H, V = vs
        if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)
                and isinstance(v, torch.Tensor) and k.shape == qs and vs[0] == B
                and vs[1] == T and Hq and H % Hq == 0 and K and V and dt in _FLOATS
                and k.dtype == dt and v.dtype == dt and k.device == dev and v.device == dev
                and dev.type in ("cpu", "cuda", "meta")):
            return False
        if g is not None and not (isinstance(g, torch.Tensor) and g.device == dev
                                  and g.dtype in _FLOATS
                                  and g.shape == ((B, T, H, K) if vector_decay else (B, T, H))):
            return False
        if beta is not None and not (isinstance(beta, torch.Tensor) and beta.device == dev
                                     and beta.dtype in _FLOATS and beta.shape == (B, T, H)):
            return False
        return initial_state is None or (isinstance(initial_state, torch.Tensor)
                                         and initial_state.device == dev
                                         and initial_state.dtype in _FLOATS
                                         and initial_state.shape == (B, H, K, V))
    except (AttributeError, TypeError, ValueError):
        return False


def _check(fn, q, k, v, g, beta, initial_state, cu_seqlens, vector_decay: bool, g_name="g"):
    if cu_seqlens is None and _well_formed(q, k, v, g, beta, initial_state, vector_decay):
        return q.shape[0]
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor, got {type(x).__name__}", TypeError)
        if x.dim() != 4:
            _fail(fn, f"{name} must have shape [batch, time, heads, dim], got {tuple(x.shape)}")
        if x.dtype not in _FLOATS:
            _fail(fn, f"{name} must be float16/bfloat16/float32/float64, got {x.dtype}", TypeError)
    if k.shape != q.shape:
        _fail(fn, f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:2] != q.shape[:2] or q.shape[2] == 0 or v.shape[2] % q.shape[2] != 0:
        _fail(fn, f"v must have shape [batch, time, value_heads, value_dim] with "
                  f"[batch, time] = {list(q.shape[:2])} and value_heads a multiple of q's "
                  f"{q.shape[2]} heads (grouped value heads), got {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        _fail(fn, f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}", TypeError)
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]  # value heads: decays, beta, states and o follow them
    if K == 0 or V == 0:
        _fail(fn, f"head dimensions must be positive, got K={K}, V={V}")
    named = [("q", q), ("k", k), ("v", v), (g_name, g), ("beta", beta),
             ("initial_state", initial_state), ("cu_seqlens", cu_seqlens)]
    for name, x in named:
        if x is not None and not isinstance(x, torch.Tensor):
            _fail(fn, f"{name} must be a torch.Tensor or None, got {type(x).__name__}", TypeError)
        if x is not None and x.device != q.device:
            _fail(fn, f"{name} is on {x.device} but q is on {q.device}")
    if q.device.type not in ("cpu", "cuda", "meta"):
        _fail(fn, f"q is on {q.device}; supported devices are cpu and cuda", NotImplementedError)
    if g is not None:
        want = (B, T, H, K) if vector_decay else (B, T, H)
        if tuple(g.shape) != want:
            _fail(fn, f"{g_name} must have shape {list(want)} "
                      f"({'a log decay per key dimension' if vector_decay else 'a log decay per head'}), "
                      f"got {tuple(g.shape)}")
        if g.dtype not in _FLOATS:
            _fail(fn, f"{g_name} must be a float tensor, got {g.dtype}", TypeError)
    if beta is not None:
        if tuple(beta.shape) != (B, T, H):
            _fail(fn, f"beta must have shape {[B, T, H]}, got {tuple(beta.shape)}")
        if beta.dtype not in _FLOATS:
            _fail(fn, f"beta must be a float tensor, got {beta.dtype}", TypeError)
    N = B
    if cu_seqlens is not None:
        if cu_seqlens.dim() != 1 or cu_seqlens.dtype not in (torch.int32, torch.int64) \
                or cu_seqlens.numel() < 2:
            _fail(fn, "cu_seqlens must be a 1-D int32/int64 tensor [N + 1]")
        if B != 1:
            _fail(fn, f"with cu_seqlens the batch must be 1 (packed sequences), got {B}")
        if q.device.type != "meta":
            cu = cu_seqlens.tolist()
            if cu[0] != 0 or cu[-1] != T or any(x > y for x, y in zip(cu, cu[1:])):
                _fail(fn, f"cu_seqlens must start at 0, end at T = {T} and be non-decreasing, "
                          f"got {cu[:4]}{'...' if len(cu) > 4 else ''}")
        N = cu_seqlens.numel() - 1
    if initial_state is not None:
        if tuple(initial_state.shape) != (N, H, K, V):
            _fail(fn, f"initial_state must have shape [sequences, heads, K, V] = {[N, H, K, V]}, "
                      f"got {tuple(initial_state.shape)}")
        # A real float state is carried in the state dtype (float32, float64 for float64
        # inputs); a complex one would lose its imaginary part, an int or bool one is a
        # mistake.
        if initial_state.dtype not in _FLOATS:
            _fail(fn, f"initial_state must be a float16/bfloat16/float32/float64 tensor (the "
                      f"state is real), got {initial_state.dtype}", TypeError)
    return N


def _scalars(fn, scale, output_final_state, lowering_config):
    """scale as a float (None: K ** -0.5, left to the caller), output_final_state as a
    bool, lowering_config a str or None; anything else is refused with its name."""
    if scale is not None and type(scale) is not float:
        if isinstance(scale, (bool, complex, str, bytes)):
            _fail(fn, f"scale must be a real number, got {scale!r}", TypeError)
        try:
            scale = float(scale)
        except (TypeError, ValueError, RuntimeError):
            _fail(fn, f"scale must be a real number, got {scale!r}", TypeError)
    output_final_state = as_flag(f"mixir.ops.{fn}", "output_final_state", output_final_state)
    if lowering_config is not None and not isinstance(lowering_config, str):
        _fail(fn, f"lowering_config must be a str or None, got "
                  f"{type(lowering_config).__name__}", TypeError)
    return scale, output_final_state


def key_dim_problem(fn: str, error: RuntimeError, K: int) -> Optional[ValueError]:
    """The compiler's refusal of a key dimension wider than its lowerings unroll (its own
    limit, kMaxKeyDim) as a ValueError naming the function and q/k; None for any other
    error."""
    text = str(error)
    at = text.find("key_dim")
    if at < 0 or "exceeds" not in text:
        return None
    return ValueError(f"mixir.ops.{fn}: q and k have key dimension {K}, wider than the "
                      f"compiler takes: {text[at:].splitlines()[0]}")


def _decays_as_fla_reads_them(q, g, beta):
    """fla's semantics: log decays accumulate in float32 (or float64), beta is read
    in q's dtype or float32/64."""
    if g is not None and g.dtype not in (torch.float32, torch.float64):
        g = g.float()
    if beta is not None and beta.dtype != q.dtype and beta.dtype not in (torch.float32,
                                                                          torch.float64):
        beta = beta.float()
    return g, beta


# --- Fake kernels (meta tensors, torch.compile) ------------------------------------

@torch.library.register_fake("mixir::linear_attention")
def _linear_attention_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens,
                           output_final_state, out_dtype, reverse, value_decay,
                           lowering_config):
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    o = v.new_empty((B, T, H, V), dtype=out_dtype or v.dtype)
    final = v.new_empty((N, H, K, V), dtype=state_dtype(q.dtype)) if output_final_state \
        else v.new_empty(0, dtype=torch.float32)
    return o, final


@torch.library.register_fake("mixir::linear_attention_corrected_values")
def _corrected_values_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens,
                           output_final_state, out_dtype, reverse, lowering_config):
    o, final = _linear_attention_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens,
                                      output_final_state, out_dtype, reverse, False,
                                      lowering_config)
    return o, final, torch.empty_like(v, memory_format=torch.contiguous_format)


_ADJOINT_GRADS = ("q", "k", "v", "g", "beta", "i", "h0", "n0", "m0")


@torch.library.register_fake("mixir::linear_attention_adjoint")
def _adjoint_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens, do, dfinal, input_gate,
                  n0, m0, dn_final, dm_final, epsilon):
    B, T, _, K = q.shape
    H = v.shape[2]
    state = state_dtype(q.dtype)
    shapes = dict(q=(B, T, H, K), k=(B, T, H, K), v=v.shape)
    shapes.update((name, (0,) if x is None else x.shape) for name, x in (
        ("g", g), ("beta", beta), ("i", input_gate), ("h0", initial_state), ("n0", n0),
        ("m0", m0)))
    return [q.new_empty(shapes[name], dtype=state) for name in _ADJOINT_GRADS]


def adjoint(q, k, v, g, beta, scale: float, initial_state, cu_seqlens, do, dfinal,
            input_gate=None, n0=None, m0=None, dn_final=None, dm_final=None,
            epsilon: Optional[float] = None) -> dict:
    """Gradients of the op's forward ([B, T, Hq|H, d] operands as the forward got them,
    `do` in v's dtype, final-state gradients or None), in the state dtype: a dict with
    q and k per value head ([B, T, H, K]), v, and g, beta, i, h0, n0, m0 where the
    forward operand exists (the mLSTM cell: input_gate, n0, m0, dn_final, dm_final and
    its epsilon)."""
    g, beta = _decays_as_fla_reads_them(q, g, beta)
    out = _ADJOINT_OP(q, k, v, g, beta, float(scale), initial_state, cu_seqlens,
                      do.to(v.dtype), dfinal, input_gate, n0, m0, dn_final, dm_final, epsilon)
    present = dict(q=q, k=k, v=v, g=g, beta=beta, i=input_gate, h0=initial_state, n0=n0, m0=m0)
    return {n: x for n, x in zip(_ADJOINT_GRADS, out) if present[n] is not None}


# ---------------------------------------------------------------------------
# Backward. For the additive update, every gradient is itself a linear attention,
# so the backward reuses the forward's compiled kernels (the tensor-core ones where
# they apply). With S_t = D_t S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t and
# dS_t = D_{t+1} dS_{t+1} + scale q_t do_t^T (dS_T given):
#   dq_t = scale S_t do_t          the forward with (q, k, v) -> (do, v, k), init h0^T
#   dv_t = dS_t^T k_t              the forward in reversed time with (k, q, do)
#   dk_t = dS_t v_t                the forward in reversed time with (v, do, q)
#   dh0  = D_0 dS_0                the reversed (k, q, do) pass's final state
# For a per-key decay D_t = diag(a_t) the dq and dk passes carry S^T, whose columns
# are the key dimensions: they decay by value dimension (value_decay, the recurrent
# kernel); the dv pass decays by key dimension as the forward does. With G_t the
# running sum of g (o_t and S_T depend on g only through G),
#   dG_t = q_t . dq_t - k_t . dk_t (+ <dS_T, S_T> at a sequence's last step),
# per key dimension (the products elementwise, the last term summed over values
# only) for a per-key decay, and dg_t = sum over s >= t of dG_s within the sequence.
# The reversed passes read the operands through negative time strides (no copies),
# start from dS_T / scale (the kernel multiplies its output by scale) and decay by
# the forward's step t + 1 at step t.
# ---------------------------------------------------------------------------


def _reversed_offsets(cu: torch.Tensor, T: int) -> torch.Tensor:
    """Offsets of the packed sequences once time is reversed (they come out in reverse
    order)."""
    return T - cu.flip(0)


def _next_step_log_decay(g: torch.Tensor, cu: Optional[torch.Tensor]) -> torch.Tensor:
    """g_{t+1} at step t and 0 at each sequence's last step: read in reversed time, the
    decay of the reversed recurrence dS_t = a_{t+1} dS_{t+1} + ..., where dS_T enters
    undecayed."""
    T = g.shape[1]
    last = torch.zeros(T + 1, dtype=torch.bool, device=g.device)  # slot t + 1: step t
    if cu is None:
        last[T] = True
    else:
        last[cu[1:]] = True  # an empty sequence marks its predecessor's last step or slot 0
    return torch.where(last[1:].view(1, T, *([1] * (g.dim() - 2))),
                       torch.zeros((), dtype=g.dtype, device=g.device), g.roll(-1, dims=1))


def _time_prefix_sums(x: torch.Tensor) -> torch.Tensor:
    """x [B, T, ...] -> float64 sums of the first i steps, [..., T + 1] with time last
    (PyTorch scans the innermost dimension far faster than an outer one: 5.8 ms ->
    microseconds for [1, 32768, 16] on the H100)."""
    c = x.double().movedim(1, -1).contiguous().cumsum(-1)
    return torch.cat([c.new_zeros(c.shape[:-1] + (1,)), c], dim=-1)


def _sequence_suffix_sum(x: torch.Tensor, cu: Optional[torch.Tensor]) -> torch.Tensor:
    """sum over s >= t of x_s within t's sequence, x [B, T, H] or [B, T, H, K], in
    float64."""
    T = x.shape[1]
    c = _time_prefix_sums(x)  # [B, H, T + 1]
    t = torch.arange(T, device=x.device)
    if cu is None:
        end = torch.full_like(t, T)
    else:
        cu = cu.to(torch.int64)
        end = cu[torch.searchsorted(cu, t, right=True)]
    return (c[..., end] - c[..., :T]).movedim(-1, 1)


def _pass(q, k, v, g, scale, initial_state, cu, config, *, output_final_state=False,
          out_dtype=None, reverse=False, value_decay=False):
    """One forward pass of the op (the backward's building block), with the forward's
    config override."""
    return _OP(q, k, v, g, None, scale, initial_state, cu, output_final_state, out_dtype,
               reverse, value_decay, config)


def _adjoint_backward(q, k, v, g, beta, scale, h0, cu, do, dfinal):
    """The delta rule's gradients: the adjoint op (its gradients are not forward passes
    of the op, unlike the additive update's)."""
    grads = adjoint(q, k, v, g, beta, scale, h0, cu, do, dfinal)
    group = v.shape[2] // q.shape[2]
    B, T, Hq, K = q.shape
    for name in ("q", "k"):  # per value head: sum over each group of value heads
        if group > 1:
            grads[name] = grads[name].view(B, T, Hq, group, K).sum(3)
    return [grads.get(name) for name in ("q", "k", "v", "g", "beta", "h0")]


def _backward(q, k, v, g, beta, scale, h0, cu, final, do, dfinal, output_final_state, needs,
              lowering_config):
    """Gradients of q, k, v, g, beta and the initial state (torch.ops.mixir.
    linear_attention_backward; see the comment above)."""
    if not output_final_state or dfinal is None or dfinal.numel() == 0:
        dfinal = None
    if do is None:
        do = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
    if beta is not None and (g is None or g.dim() == 3):
        grads = _delta_backward(q, k, v, g, beta, scale, h0, cu, final, do.to(v.dtype), dfinal,
                                needs, lowering_config)
    elif beta is not None:  # a per-key decay: the adjoint op
        grads = _adjoint_backward(q, k, v, g, beta, scale, h0, cu, do, dfinal)
    else:
        grads = _additive_backward(q, k, v, g, scale, h0, cu, final, do.to(v.dtype), dfinal,
                                   needs, lowering_config)
    empty = lambda: q.new_empty(0)  # noqa: E731
    like = (q, k, v, g, beta, h0)
    return [empty() if (x is None or ref is None) else x.to(ref.dtype)
            for x, ref in zip(grads, like)]


def _additive_backward(q, k, v, g, scale, h0, cu, final, do, dfinal, needs, config):
    need_q, need_k, need_v, need_g, _, need_h0 = needs
    need_g = need_g and g is not None
    per_key = g is not None and g.dim() == 4  # dq and dk then decay by value dimension
    # Grouped value heads: the passes below run per value head on q and k repeated
    # over each group; their gradients are summed over the group at the end.
    group = v.shape[2] // q.shape[2]
    if group > 1:
        q, k = q.repeat_interleave(group, 2), k.repeat_interleave(group, 2)
    B, T, H, K = q.shape
    N = B if cu is None else cu.numel() - 1
    # dq and dk feed the decay gradient: keep them float32 then.
    wide = torch.float32 if need_g and q.dtype in (torch.float16, torch.bfloat16) else None
    dq = dk = dv = dS0 = dg = None
    if need_q or need_g:
        h0_t = None if h0 is None else h0.transpose(-1, -2)
        dq = _pass(do, v, k, g, scale, h0_t, cu, config, out_dtype=wide,
                   value_decay=per_key)[0]

    # The reversed passes. With scale 0 the output is 0 and only dS_T flows: run them
    # with scale 1 and zero keys.
    s = scale if scale != 0 else 1.0
    cu_r = None if cu is None else _reversed_offsets(cu, T)
    g_r = None if g is None else _next_step_log_decay(g, cu)
    init_r = None
    if dfinal is not None:
        init_r = (dfinal if cu is None else dfinal.flip(0)) / s
    q_in, do_in = (q, do) if scale != 0 else (torch.zeros_like(q), torch.zeros_like(do))
    if need_v or need_h0:
        dv, dS0 = _pass(k, q_in, do_in, g_r, s, init_r, cu_r, config,
                        output_final_state=need_h0, reverse=True)
        if need_h0:
            dS0 = (dS0 if cu is None else dS0.flip(0)) * s
            if g is not None and T > 0:
                first = g[:, 0] if cu is None else g[0, cu[:-1].clamp(max=T - 1)]
                if cu is not None:
                    first = torch.where((cu[1:] > cu[:-1]).view(N, *([1] * (first.dim() - 1))),
                                        first, 0.0)
                # [N, H] (per head) or [N, H, K] (per key) -> [N, H, 1 or K, 1]; no
                # view(N, H, -1, 1), which is ambiguous when N = 0.
                decay0 = torch.exp(first.to(dS0.dtype))
                dS0 = dS0 * (decay0[..., None, None] if decay0.dim() == 2 else decay0[..., None])
        else:
            dS0 = None
        dv = dv if need_v else None
    if need_k or need_g:
        init_t = None if init_r is None else init_r.transpose(-1, -2)
        dk = _pass(v, do_in, q_in, g_r, s, init_t, cu_r, config, out_dtype=wide, reverse=True,
                   value_decay=per_key)[0]
    if need_g:
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32
        if per_key:  # [B, T, H, K]
            dG = q.to(acc) * dq.to(acc) - k.to(acc) * dk.to(acc)
        else:  # [B, T, H]
            dG = (q * dq).sum(-1, dtype=acc) - (k * dk).sum(-1, dtype=acc)
        if dfinal is not None and T > 0:
            # <dS_T, S_T> over values (and keys unless per key): [N, H] or [N, H, K].
            last = (dfinal.to(acc) * final.to(acc)).sum((-1,) if per_key else (-1, -2))
            if cu is None:
                dG[:, T - 1] += last
            else:
                ends = (cu[1:] - 1).clamp(min=0)
                nonempty = (cu[1:] > cu[:-1]).view(N, *([1] * (last.dim() - 1)))
                dG[0].index_add_(0, ends, torch.where(nonempty, last, 0.0))
        dg = _sequence_suffix_sum(dG, cu)
    grads = [dq if need_q else None, dk if need_k else None, dv, dg, None, dS0]
    if group > 1:
        for i in (0, 1):
            if grads[i] is not None:
                grads[i] = grads[i].view(B, T, H // group, group, K).sum(3)
    return grads


# ---------------------------------------------------------------------------
# The delta rule's backward, also by forward passes. Per sequence, with a_t the decay,
# S~_t = a_t S_{t-1} and u_t = beta_t (v_t - S~_t^T k_t) the corrected values
# (S_t = S~_t + k_t u_t^T, o_t = scale S_t^T q_t), the adjoint of the state obeys
# dS_{t-1} = a_t (I - beta_t k_t k_t^T) dS_t + scale q_{t-1} do_{t-1}^T: the delta rule's
# own recurrence run backward in time, on the transposed problem. Splitting dS_t into
# its additive part A_t (the additive backward's adjoint: decays and q do^T only)
# minus a delta-rule state Q_t driven by it gives, with s the scale,
#   1. the forward with query k: y_t = S_t^T k_t, u_t (corrected values) and S_T;
#   2. w_t = A_t^T k_t, the reversed additive pass (k, q, do) from dS_T / s;
#   3. the reversed delta rule on (k, k, w, beta) from 0: its corrected values z_t are
#      dv_t, its output y'_t = Q_t^T k_t, its final state Q_0;
#   4. dq_t = s (S_t do_t): the forward (do, u, k) from h0^T;
#   5. dk_t = Aa_t - B_t - C_t + 2 (u_t . z_t) k_t with Aa the reversed additive pass
#      (u, do, q) from dS_T^T / s, B the reversed pass (u, z, k) and C the forward
#      pass (z, u, k) from h0^T, both with scale 1;
#   6. dbeta_t = (v_t - y_t + |k_t|^2 u_t) . (w_t - y'_t + |k_t|^2 z_t);
#   7. dG_t = q_t . dq_t - k_t . (Aa_t - B_t + (u_t . z_t) k_t)
#            + k_t . (-C_t + (u_t . z_t) k_t) (+ <dS_T, S_T> at the last step),
#      dg its suffix sums, as for the additive update;
#   8. dh0 = a_0 (s A_0 - Q_0), the two reversed passes' final states.
# Seven passes, each one compiled kernel (the chunked tensor-core one where it
# applies) instead of one sequential program per (head, sequence). A per-key or
# per-value decay keeps the adjoint op.
# ---------------------------------------------------------------------------


def _first_step_decay(g, cu, N):
    """a_0 per sequence, [N, H] (1 for an empty sequence), for dh0 = a_0 dS_0."""
    T = g.shape[1]
    first = g[:, 0] if cu is None else g[0, cu[:-1].clamp(max=T - 1)]
    if cu is not None:
        first = torch.where((cu[1:] > cu[:-1]).view(N, *([1] * (first.dim() - 1))), first, 0.0)
    return torch.exp(first)


def _delta_backward(q, k, v, g, beta, scale, h0, cu, final, do, dfinal, needs, config):
    need_q, need_k, need_v, need_g, need_beta, need_h0 = needs
    need_g = need_g and g is not None
    group = v.shape[2] // q.shape[2]
    if group > 1:
        q, k = q.repeat_interleave(group, 2), k.repeat_interleave(group, 2)
    B, T, H, K = q.shape
    N = B if cu is None else cu.numel() - 1
    low = q.dtype in (torch.float16, torch.bfloat16)
    wide = torch.float32 if low else None  # outputs that feed sums below
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    h0_t = None if h0 is None else h0.transpose(-1, -2)
    # With scale 0 only dS_T flows: the reversed passes run with scale 1 and zero q, do.
    s = scale if scale != 0 else 1.0
    q_in, do_in = (q, do) if scale != 0 else (torch.zeros_like(q), torch.zeros_like(do))
    cu_r = None if cu is None else _reversed_offsets(cu, T)
    g_r = None if g is None else _next_step_log_decay(g, cu)
    as_reversed = (lambda x: x) if cu is None else (lambda x: x.flip(0))  # noqa: E731
    init_r = None if dfinal is None else as_reversed(dfinal) / s

    # 1-3: the corrected values, the additive adjoint's w and the reversed delta rule.
    y_f, _, u = _CORRECTED_OP(k, k, v, g, beta, 1.0, h0, cu, False, wide, False, config)
    w, A0 = _pass(k, q_in, do_in, g_r, s, init_r, cu_r, config, output_final_state=need_h0,
                  out_dtype=wide, reverse=True)
    y_r, Q0, z = _CORRECTED_OP(k, k, w.to(v.dtype), g_r, beta, 1.0, None, cu_r, need_h0, wide,
                               True, config)
    dq = dk = dg = dbeta = dh0 = None
    if need_q or need_g:
        dq = _pass(do, u, k, g, scale, h0_t, cu, config, out_dtype=wide)[0]
    if need_k or need_g:
        init_t = None if init_r is None else init_r.transpose(-1, -2)
        Aa = _pass(u, do_in, q_in, g_r, s, init_t, cu_r, config, out_dtype=wide,
                   reverse=True)[0].to(acc)
        Bb = _pass(u, z, k, g_r, 1.0, None, cu_r, config, out_dtype=wide, reverse=True)[0]
        Cc = _pass(z, u, k, g, 1.0, h0_t, cu, config, out_dtype=wide)[0]
        uz_k = (u.to(acc) * z.to(acc)).sum(-1, keepdim=True) * k.to(acc)
        dk_a = Aa - Bb.to(acc) + uz_k  # the part through the keys of the update
        dk_b = uz_k - Cc.to(acc)  # the part through the keys of the correction
        dk = dk_a + dk_b
    if need_beta:
        kk = (k.to(acc) ** 2).sum(-1, keepdim=True)
        x = v.to(acc) - y_f.to(acc) + kk * u.to(acc)
        y = w.to(acc) - y_r.to(acc) + kk * z.to(acc)
        dbeta = (x * y).sum(-1)
    if need_g:
        dG = (q.to(acc) * dq.to(acc)).sum(-1) - (k.to(acc) * (dk_a - dk_b)).sum(-1)
        if dfinal is not None and T > 0:
            last = (dfinal.to(acc) * final.to(acc)).sum((-1, -2))  # [N, H]
            if cu is None:
                dG[:, T - 1] += last
            else:
                ends = (cu[1:] - 1).clamp(min=0)
                dG[0].index_add_(0, ends, torch.where((cu[1:] > cu[:-1])[:, None], last, 0.0))
        dg = _sequence_suffix_sum(dG, cu)
    if need_h0:
        dh0 = as_reversed(A0) * s - as_reversed(Q0)
        if g is not None and T > 0:
            dh0 = dh0 * _first_step_decay(g, cu, N).to(dh0.dtype)[..., None, None]
    grads = [dq if need_q else None, dk if need_k else None, z if need_v else None, dg, dbeta,
             dh0]
    if group > 1:
        for i in (0, 1):
            if grads[i] is not None:
                grads[i] = grads[i].view(B, T, H // group, group, K).sum(3)
    return grads


# Kept alive: a Library object withdraws its registrations when collected.
_LIB = torch.library.Library("mixir", "IMPL")
_LIB.impl("linear_attention_backward", _backward, "CompositeImplicitAutograd")


def _forward(fn, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens,
             vector_decay, lowering_config=None, g_name="g", reverse=False, value_decay=False,
             state_v_first=False):
    if value_decay:  # g [B, T, H, V]: a decay per state column (fla's gv)
        _check(fn, q, k, v, None, beta, None, cu_seqlens, False, g_name)
        want = (*v.shape[:3], v.shape[3])
        if not isinstance(g, torch.Tensor) or tuple(g.shape) != want or g.dtype not in _FLOATS:
            _fail(fn, f"{g_name} must be a float tensor of shape {list(want)} (a log decay per "
                      f"value dimension), got "
                      f"{tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__}")
        if g.device != q.device:
            _fail(fn, f"{g_name} is on {g.device} but q is on {q.device}")
    if state_v_first is not False:
        state_v_first = as_flag(f"mixir.ops.{fn}", "state_v_first", state_v_first)
    if state_v_first and initial_state is not None:
        # fla's [N, H, V, K] state layout: the op's [N, H, K, V] as a view.
        if not isinstance(initial_state, torch.Tensor) or initial_state.dim() != 4:
            _fail(fn, "initial_state must be a [sequences, heads, V, K] tensor with "
                      "state_v_first=True", TypeError)
        initial_state = initial_state.transpose(-1, -2)
    _check(fn, q, k, v, None if value_decay else g, beta, initial_state, cu_seqlens,
           vector_decay, g_name)
    if type(scale) is not float or type(output_final_state) is not bool or \
            lowering_config is not None:
        scale, output_final_state = _scalars(fn, scale, output_final_state, lowering_config)
    if scale is None:
        scale = q.shape[3] ** -0.5
    g, beta = _decays_as_fla_reads_them(q, g, beta)
    cu = cu_seqlens
    if reverse:
        reverse = as_flag(f"mixir.ops.{fn}", "reverse", reverse)
    if reverse and cu is not None:
        # The op reads the whole row in reversed time: the packed sequences come in
        # reverse order, and so do their states.
        cu = _reversed_offsets(cu, q.shape[1])
        initial_state = None if initial_state is None else initial_state.flip(0)
    try:
        o, final = _OP(q, k, v, g, beta, scale, initial_state, cu, output_final_state, None,
                       bool(reverse), value_decay, lowering_config)
    except RuntimeError as e:
        problem = key_dim_problem(fn, e, q.shape[3])
        if problem is None:
            raise
        raise problem from None
    if not output_final_state:
        return o, None
    if reverse and cu is not None:
        final = final.flip(0)
    return o, (final.transpose(-1, -2) if state_v_first else final)


def _fla_kwargs(fn, kwargs, chunk_sizes=None):
    """fla's **kwargs: `head_first` is refused as fla 0.6 refuses it, `chunk_size` is
    checked as fla checks it and otherwise ignored (the compiler chooses the chunk;
    the result does not depend on it), anything else is an error naming it."""
    kwargs = dict(kwargs)
    if "head_first" in kwargs:
        _fail(fn, "head_first has been removed (as in fla 0.6): inputs are [B, T, H, ...]")
    chunk = kwargs.pop("chunk_size", None)
    if chunk is not None:
        if type(chunk) is not int or chunk <= 0 or chunk & (chunk - 1):
            _fail(fn, f"chunk_size must be a power of 2, got {chunk!r}")
        if chunk_sizes is not None and chunk not in chunk_sizes:
            _fail(fn, f"chunk_size must be one of {sorted(chunk_sizes)}, got {chunk}")
    if kwargs:
        _fail(fn, f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}", TypeError)


def _not_supported(fn, **flags):
    """fla options this module cannot honour yet: a clear error, never ignored."""
    for name, value in flags.items():
        if value is not None and value is not False:
            _fail(fn, f"{name}={value!r} is not supported yet", NotImplementedError)


def _head_decay(fn, name, gamma, q, v):
    """A data-independent log decay per value head (fla's g_gamma, [H]) as the op's
    [B, T, H] gate: a stride-0 view of it, nothing copied per step."""
    B, T, H = v.shape[:3] if isinstance(v, torch.Tensor) and v.dim() == 4 else (0, 0, 0)
    if not isinstance(gamma, torch.Tensor):
        _fail(fn, f"{name} must be a torch.Tensor or None, got {type(gamma).__name__}", TypeError)
    if tuple(gamma.shape) != (H,) or gamma.dtype not in _FLOATS:
        _fail(fn, f"{name} must be a float tensor of shape [heads] = [{H}], got "
                  f"{tuple(gamma.shape)} {gamma.dtype}")
    if isinstance(q, torch.Tensor) and gamma.device != q.device:
        _fail(fn, f"{name} is on {gamma.device} but q is on {q.device}")
    acc = torch.float64 if gamma.dtype == torch.float64 else torch.float32
    return gamma.to(acc).view(1, 1, H).expand(B, T, H)


def _simple_decay(fn, g, g_gamma, q, v):
    if g_gamma is None:
        return g
    if g is not None:
        _fail(fn, "give g (a log decay per step and head) or g_gamma (one per head), not both")
    return _head_decay(fn, "g_gamma", g_gamma, q, v)


def _retention_decay(q, v):
    """RetNet's fixed decays, log(1 - 2^(-5 - h)) for value head h (fla's
    chunk_retention, which has no grouped heads: there q's heads are v's)."""
    H = v.shape[2] if isinstance(v, torch.Tensor) and v.dim() == 4 else 0
    return _retention_decays(H, q.device if isinstance(q, torch.Tensor) else None)


@functools.lru_cache(maxsize=64)
def _retention_decays(H, device):
    """Made once per (heads, device), not on every call."""
    return torch.log1p(-2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64, device=device))) \
        .float()


def linear_attention(q, k, v, g=None, beta=None, scale=None, initial_state=None,
                     output_final_state=False, cu_seqlens=None, vector_decay=False,
                     lowering_config: Optional[str] = None):
    """The general op: decay none (g None), per head (g [B, T, H]) or per key dimension
    (g [B, T, H, K] with vector_decay), additive or delta-rule (beta) update.
    lowering_config: a `#mixer.lowering_config<...>` that overrides the compiler's
    choice (with `kernel = auto`, only the parameters it names: how tests and sweeps
    force a kernel, a split or a value tile)."""
    o, final = _forward("linear_attention", q, k, v, g, beta, scale, initial_state,
                        output_final_state, cu_seqlens, vector_decay, lowering_config)
    return o, final


def chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                     output_final_state=False, state_v_first=False, cu_seqlens=None,
                     cu_seqlens_cpu=None, **kwargs):
    """fla.ops.simple_gla.chunk_simple_gla: S_t = exp(g_t) S_{t-1} + k_t v_t^T,
    o_t = scale S_t^T q_t; g [B, T, H] (log decay per step and head), or g_gamma [H]
    (one per head), or neither. Returns (o [B, T, H, V], final_state [N, H, K, V]
    float32 ([N, H, V, K] with state_v_first) or None)."""
    fn = "chunk_simple_gla"
    _fla_kwargs(fn, kwargs)
    return _forward(fn, q, k, v, _simple_decay(fn, g, g_gamma, q, v), None, scale,
                    initial_state, output_final_state, cu_seqlens, False,
                    state_v_first=state_v_first)


def fused_recurrent_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                               output_final_state=False, reverse=False, state_v_first=False,
                               cu_seqlens=None, **kwargs):
    """The decode form of chunk_simple_gla (same math); reverse runs each sequence from
    its end (forward only)."""
    fn = "fused_recurrent_simple_gla"
    _fla_kwargs(fn, kwargs)
    return _forward(fn, q, k, v, _simple_decay(fn, g, g_gamma, q, v), None, scale,
                    initial_state, output_final_state, cu_seqlens, False, reverse=reverse,
                    state_v_first=state_v_first)


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False,
              cu_seqlens=None, **kwargs):
    """fla.ops.gla.chunk_gla: S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T; g [B, T, H, K]."""
    fn = "chunk_gla"
    _fla_kwargs(fn, kwargs)
    return _forward(fn, q, k, v, g, None, scale, initial_state, output_final_state, cu_seqlens,
                    True)


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None,
                        output_final_state=False, reverse=False, state_v_first=False,
                        cu_seqlens=None, **kwargs):
    """The decode form of chunk_gla: gk [B, T, H, K] decays the state's rows (key
    dimensions), gv [B, T, H, V] its columns (value dimensions; forward only), one of
    the two; reverse runs each sequence from its end (forward only)."""
    fn = "fused_recurrent_gla"
    _fla_kwargs(fn, kwargs)
    if gk is not None and gv is not None:
        _fail(fn, "gk and gv together (a decay over both state dimensions) are not "
                  "supported yet", NotImplementedError)
    if gv is not None:
        return _forward(fn, q, k, v, gv, None, scale, initial_state, output_final_state,
                        cu_seqlens, False, g_name="gv", reverse=reverse, value_decay=True,
                        state_v_first=state_v_first)
    return _forward(fn, q, k, v, gk, None, scale, initial_state, output_final_state, cu_seqlens,
                    gk is not None, g_name="gk", reverse=reverse, state_v_first=state_v_first)


def chunk_retention(q, k, v, scale=None, initial_state=None, output_final_state=False,
                    cu_seqlens=None, **kwargs):
    """fla.ops.retention.chunk_retention (RetNet): simple GLA with the fixed per-head
    decay log(1 - 2^(-5 - h)) (a stride-0 view: no gate tensor is materialised)."""
    fn = "chunk_retention"
    _fla_kwargs(fn, kwargs)
    return _forward(fn, q, k, v, _head_decay(fn, "the decay", _retention_decay(q, v), q, v),
                    None, scale, initial_state, output_final_state, cu_seqlens, False)


def fused_recurrent_retention(q, k, v, scale=None, initial_state=None, output_final_state=False,
                              reverse=False, state_v_first=False, cu_seqlens=None, **kwargs):
    """The decode form of chunk_retention; reverse runs each sequence from its end
    (forward only)."""
    fn = "fused_recurrent_retention"
    _fla_kwargs(fn, kwargs)
    return _forward(fn, q, k, v, _head_decay(fn, "the decay", _retention_decay(q, v), q, v),
                    None, scale, initial_state, output_final_state, cu_seqlens, False,
                    reverse=reverse, state_v_first=state_v_first)


def _state_layout_alias(fn, state_v_first, kwargs):
    """fla's deprecated `transpose_state_layout`, the old name of state_v_first."""
    if "transpose_state_layout" in kwargs:
        if state_v_first:
            _fail(fn, "give state_v_first or the deprecated transpose_state_layout, not both")
        state_v_first = kwargs.pop("transpose_state_layout")
    return as_flag(f"mixir.ops.{fn}", "state_v_first", state_v_first)


def _delta_rule_options(fn, kwargs, use_qk_l2norm_in_kernel, use_beta_sigmoid_in_kernel,
                        allow_neg_eigval, use_gate_in_kernel, A_log, dt_bias):
    """fla's in-kernel options of the gated delta rule: refused by name until they are
    fused into the compiled kernel (they are not applied as torch ops first)."""
    if allow_neg_eigval and not use_beta_sigmoid_in_kernel:
        _fail(fn, "allow_neg_eigval=True requires use_beta_sigmoid_in_kernel=True (as in fla)")
    if use_gate_in_kernel and A_log is None:
        _fail(fn, "A_log must be provided when use_gate_in_kernel=True (as in fla)")
    _not_supported(fn, use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel,
                   use_beta_sigmoid_in_kernel=use_beta_sigmoid_in_kernel,
                   allow_neg_eigval=allow_neg_eigval, use_gate_in_kernel=use_gate_in_kernel)


def chunk_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None,
                           output_final_state=False, use_qk_l2norm_in_kernel=False,
                           use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False,
                           state_v_first=False, cu_seqlens=None, cu_seqlens_cpu=None,
                           chunk_indices=None, cp_context=None, **kwargs):
    """fla.ops.gated_delta_rule.chunk_gated_delta_rule (spec 4.7): S <- exp(g_t) S;
    u_t = beta_t (v_t - S^T k_t); S <- S + k_t u_t^T; o_t = scale S^T q_t.
    g, beta [B, T, H] (value heads; q/k heads may be fewer, fla's GVA); q and k as given
    (normalise them first, as fla expects). fla's signature: chunk_size (16, 32, 64)
    is checked and the compiler's chunk used (the result does not depend on it);
    cu_seqlens_cpu and chunk_indices are accepted and not needed; the in-kernel
    options and cp_context are refused by name."""
    fn = "chunk_gated_delta_rule"
    kwargs = dict(kwargs)
    state_v_first = _state_layout_alias(fn, state_v_first, kwargs)
    use_gate = kwargs.pop("use_gate_in_kernel", False)
    A_log, dt_bias = kwargs.pop("A_log", None), kwargs.pop("dt_bias", None)
    _fla_kwargs(fn, kwargs, chunk_sizes=(16, 32, 64))
    _delta_rule_options(fn, kwargs, use_qk_l2norm_in_kernel, use_beta_sigmoid_in_kernel,
                        allow_neg_eigval, use_gate, A_log, dt_bias)
    _not_supported(fn, cp_context=cp_context)
    if beta is None:
        _fail(fn, "beta is required (the delta rule's step sizes)")
    return _forward(fn, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens,
                    False, state_v_first=state_v_first)


def fused_recurrent_gated_delta_rule(q, k, v, g=None, gk=None, gv=None, beta=None, scale=None,
                                     initial_state=None, output_final_state=False,
                                     use_qk_l2norm_in_kernel=False, use_gate_in_kernel=False,
                                     A_log=None, dt_bias=None, use_beta_sigmoid_in_kernel=False,
                                     allow_neg_eigval=False, state_v_first=False,
                                     cu_seqlens=None, **kwargs):
    """The decode form of chunk_gated_delta_rule, with fla's signature: g (per head),
    gk (per key dimension) or gv (per value dimension; forward only) or no decay, one
    of them; beta None is 1 at every step (as fla)."""
    fn = "fused_recurrent_gated_delta_rule"
    kwargs = dict(kwargs)
    state_v_first = _state_layout_alias(fn, state_v_first, kwargs)
    _fla_kwargs(fn, kwargs)
    _delta_rule_options(fn, kwargs, use_qk_l2norm_in_kernel, use_beta_sigmoid_in_kernel,
                        allow_neg_eigval, use_gate_in_kernel, A_log, dt_bias)
    given = [name for name, x in (("g", g), ("gk", gk), ("gv", gv)) if x is not None]
    if len(given) > 1:
        _fail(fn, f"{' and '.join(given)} together are not supported yet", NotImplementedError)
    if beta is None and isinstance(v, torch.Tensor) and v.dim() == 4:
        beta = torch.ones((), dtype=v.dtype, device=v.device).expand(v.shape[:3])
    decay = g if g is not None else gk if gk is not None else gv
    return _forward(fn, q, k, v, decay, beta, scale, initial_state, output_final_state,
                    cu_seqlens, gk is not None, g_name=given[0] if given else "g",
                    value_decay=gv is not None, state_v_first=state_v_first)


# fla's short names (fla.ops.gated_delta_rule.chunk_gdn, fused_recurrent_gdn).
chunk_gdn = chunk_gated_delta_rule
fused_recurrent_gdn = fused_recurrent_gated_delta_rule


def chunk_delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False,
                     use_qk_l2norm_in_kernel=False, cu_seqlens=None, cu_seqlens_cpu=None,
                     **kwargs):
    """fla.ops.delta_rule.chunk_delta_rule: the delta rule without a decay,
    u_t = beta_t (v_t - S^T k_t), S <- S + k_t u_t^T, o_t = scale S^T q_t; beta
    [B, T, H]. The gated delta rule's kernels with no gate."""
    fn = "chunk_delta_rule"
    _fla_kwargs(fn, kwargs, chunk_sizes=(16, 32, 64))
    _not_supported(fn, use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)
    if beta is None:
        _fail(fn, "beta is required (the delta rule's step sizes)")
    return _forward(fn, q, k, v, None, beta, scale, initial_state, output_final_state,
                    cu_seqlens, False)


def fused_recurrent_delta_rule(q, k, v, beta=None, scale=None, initial_state=None,
                               output_final_state=False, use_qk_l2norm_in_kernel=False,
                               cu_seqlens=None):
    """The decode form of chunk_delta_rule; beta None is 1 at every step (as fla),
    a stride-0 view."""
    fn = "fused_recurrent_delta_rule"
    _not_supported(fn, use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)
    if beta is None and isinstance(v, torch.Tensor) and v.dim() == 4:
        beta = torch.ones((), dtype=v.dtype, device=v.device).expand(v.shape[:3])
    return _forward(fn, q, k, v, None, beta, scale, initial_state, output_final_state,
                    cu_seqlens, False)
