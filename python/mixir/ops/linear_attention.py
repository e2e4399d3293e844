"""mixir.ops.linear_attention: linear attention with a matrix state, fla's interface.

Every function here compiles one `mixer.linear_attention` specialisation (head
dimensions, dtypes, decay kind, which optional operands exist) and keeps it in
memory; sizes, strides and `scale` are run-time arguments. The names, argument
order, layouts ([B, T, H, d], time before heads) and returns are fla's, so that a
user swaps an import:

    from mixir.ops.linear_attention import chunk_simple_gla   # was: from fla.ops.simple_gla

What runs where (chosen by the compiler's pipeline from the same IR):
* CUDA, bf16/fp16 inputs, K a multiple of 16 (up to 128 per pass), V a multiple
  of 64: the chunked tensor-core kernels (mixer-lower-linear-attention-mma): the
  sequential kernel, preceded for the delta rule by its WY-factor kernel and for a
  per-key decay (GLA, f32 gates) by its chunk-factor kernel. Above them (strategy,
  below): a sequence split when few heads would leave SMs idle (not for the delta
  rule), and a key split for K > 128 (not for the delta rule either).
* everything else (CPU; fp32/fp64 inputs; the backward's per-value-dimension
  decays): the exact recurrent kernel (mixer-lower-linear-attention), one thread per
  state column. On the GPU this is the decode path and a slow fallback for long
  prefills of those variants.

The state is float32 (float64 for float64 inputs); the output has v's dtype.
Every function is the custom op `mixir::linear_attention` (fake kernel for meta
tensors and torch.compile). Gradients flow to q, k, v, g, beta and initial_state:
for the additive update with no, per-head or per-key decay they are forward passes
of the same kernels (see _backward); for the delta rule they come from the adjoint
kernel (mixer.linear_attention_adjoint, see run_adjoint), which checkpoints states
and runs one sequential program per (head, sequence): exact, but on a GPU only one
thread per (head, sequence) works (a fallback until a chunked adjoint exists; not
yet run on a GPU).
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import List, Optional, Tuple

import torch

from .scan import _ELEMENT, TimeReversed, _kernel

__all__ = [
    "linear_attention", "chunk_simple_gla", "fused_recurrent_simple_gla", "chunk_gla",
    "fused_recurrent_gla", "chunk_gated_delta_rule", "fused_recurrent_gated_delta_rule",
]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _memref(shape, element: str, unit_last: bool) -> str:
    dims = "x".join(str(d) if d is not None else "?" for d in shape)
    strides = ", ".join(["?"] * (len(shape) - 1) + ["1" if unit_last else "?"])
    return f"memref<{dims}x{element}, strided<[{strides}], offset: ?>>"


def _primal_operands(qk: str, v: str, K: int, V: int, decay: str, gate: str, has_beta: bool,
                     beta: str, has_init: bool, offsets: Optional[str], state: str,
                     input_gate: Optional[str], mlstm_init: bool):
    """The forward operands that mixer.linear_attention and its adjoint share, as
    (function arguments, op operand clauses, position of `scale`)."""
    tq = _memref((None, None, None, K), qk, True)
    tv = _memref((None, None, None, V), v, True)
    ts = _memref((None, None, K, V), state, False)
    args, uses = [f"%q: {tq}", f"%k: {tq}", f"%v: {tv}"], [
        f"query(%q : {tq})", f"key(%k : {tq})", f"value(%v : {tv})"]
    if decay != "none":
        # A per-key decay's rows are copied as 16-byte vectors (unit innermost stride).
        tg = _memref((None, None, None) + {"vector": (K,), "value": (V,)}.get(decay, ()), gate,
                     decay in ("vector", "value"))
        args.append(f"%g: {tg}")
        uses.append(f"log_decay(%g : {tg})")
    if has_beta:
        tb = _memref((None, None, None), beta, False)
        args.append(f"%beta: {tb}")
        uses.append(f"beta(%beta : {tb})")
    if input_gate:
        ti = _memref((None, None, None), input_gate, False)
        args.append(f"%ig: {ti}")
        uses.append(f"input_gate(%ig : {ti})")
    scale_pos = len(args)
    args.append(f"%scale: {state}")
    uses.append(f"scale(%scale : {state})")
    if has_init:
        args.append(f"%h0: {ts}")
        uses.append(f"init(%h0 : {ts})")
    if mlstm_init:
        tn, tm = _memref((None, None, K), state, False), _memref((None, None), state, False)
        args += [f"%n0: {tn}", f"%m0: {tm}"]
        uses += [f"init_normalizer(%n0 : {tn})", f"init_stabilizer(%m0 : {tm})"]
    if offsets:
        tcu = f"memref<?x{offsets}, strided<[?], offset: ?>>"
        args.append(f"%cu: {tcu}")
        uses.append(f"offsets(%cu : {tcu})")
    return args, uses, scale_pos


def _function(args, op: str, uses, attrs: dict) -> str:
    if attrs:
        uses = uses + ["{" + ", ".join(f"{k} = {v}" for k, v in attrs.items()) + "}"]
    body = f"mixer.{op} " + " ".join(uses)
    return (f"func.func @la({', '.join(args)}) attributes {{llvm.emit_c_interface}} {{\n"
            f"  {body}\n  return\n}}\n")


def _f64_attr(x: float) -> str:
    return f"{float(x):.17e} : f64"  # MLIR floats need a dot or an exponent


@functools.lru_cache(maxsize=None)
def linear_attention_ir(qk: str, v: str, K: int, V: int, decay: str, gate: str, has_beta: bool,
                        beta: str, has_init: bool, offsets: Optional[str], has_final: bool,
                        state: str, out: Optional[str] = "", workspace: int = 0,
                        input_gate: Optional[str] = None, mlstm_init: bool = False,
                        mlstm_final: bool = False, epsilon: Optional[float] = None
                        ) -> Tuple[str, int]:
    """The `mixer.linear_attention` function of one specialisation (buffer form).
    decay: "none", "scalar" ([B, T, H]), "vector" ([B, T, H, K]) or "value" ([B, T, H, V],
    the op's value_decay). Returns the IR and
    the position of the `scale` argument (a scalar of the state type). out: the output's
    element type ("": v's; None: no output, the state pass). workspace: the width W of a
    [B, T, H, W] scratch operand of k's type (0: none): K + V for the chunked delta
    rule's WY factors, 4 K + 64 for a per-key decay's chunk factors. input_gate: the
    element type of an mLSTM input gate [B, T, H] (the cell, see MixerOps.td), with
    mlstm_init / mlstm_final: normaliser [N, H, K] and stabiliser [N, H] operands
    after the initial / final state, and the denominator's epsilon."""
    args, uses, scale_pos = _primal_operands(qk, v, K, V, decay, gate, has_beta, beta,
                                             has_init, offsets, state, input_gate, mlstm_init)
    ts = _memref((None, None, K, V), state, False)
    if out is not None:
        tout = _memref((None, None, None, V), out or v, True)
        args.append(f"%o: {tout}")
        uses.append(f"outs(%o : {tout})")
    if has_final:
        args.append(f"%hT: {ts}")
        uses.append(f"final(%hT : {ts})")
    if mlstm_final:
        tn, tm = _memref((None, None, K), state, False), _memref((None, None), state, False)
        args += [f"%nT: {tn}", f"%mT: {tm}"]
        uses += [f"final_normalizer(%nT : {tn})", f"final_stabilizer(%mT : {tm})"]
    if workspace:
        tw = _memref((None, None, None, workspace), qk, True)
        args.append(f"%ws: {tw}")
        uses.append(f"workspace(%ws : {tw})")
    if decay == "value":
        uses.append("value_decay")
    attrs = {} if epsilon is None else {"epsilon": _f64_attr(epsilon)}
    return _function(args, "linear_attention", uses, attrs), scale_pos


@functools.lru_cache(maxsize=None)
def linear_attention_adjoint_ir(qk: str, v: str, K: int, V: int, decay: str, gate: str,
                                has_beta: bool, beta: str, has_init: bool,
                                offsets: Optional[str], has_final_grad: bool, state: str,
                                chunk: int, input_gate: Optional[str] = None,
                                mlstm_init: bool = False, mlstm_final_grad: bool = False,
                                epsilon: Optional[float] = None) -> Tuple[str, int]:
    """The `mixer.linear_attention_adjoint` function of one specialisation: the forward
    operands of linear_attention_ir, then the output's gradient (v's element type), the
    final states' gradients (state type), the workspace [N, H, slots, K, V] (mLSTM:
    [N, H, slots, K + 1, V + 1]) and every gradient (state type: dq, dk per value head,
    dv, then dg, dbeta, di, dS0, dn0, dm0 where the forward operand exists). `chunk`:
    the checkpoint interval. Returns the IR and the position of `scale`."""
    args, uses, scale_pos = _primal_operands(qk, v, K, V, decay, gate, has_beta, beta,
                                             has_init, offsets, state, input_gate, mlstm_init)
    tdo = _memref((None, None, None, V), v, True)
    ts = _memref((None, None, K, V), state, False)
    tn, tm = _memref((None, None, K), state, False), _memref((None, None), state, False)
    args.append(f"%do: {tdo}")
    uses.append(f"output_grad(%do : {tdo})")
    if has_final_grad:
        args.append(f"%dhT: {ts}")
        uses.append(f"final_grad(%dhT : {ts})")
    if mlstm_final_grad:
        args += [f"%dnT: {tn}", f"%dmT: {tm}"]
        uses += [f"final_normalizer_grad(%dnT : {tn})", f"final_stabilizer_grad(%dmT : {tm})"]
    border = 1 if input_gate else 0
    tw = f"memref<?x?x?x{K + border}x{V + border}x{state}>"
    args.append(f"%ws: {tw}")
    uses.append(f"workspace(%ws : {tw})")
    grads = [("query_grad", (None, None, None, K)), ("key_grad", (None, None, None, K)),
             ("value_grad", (None, None, None, V))]
    if decay == "scalar":
        grads.append(("log_decay_grad", (None, None, None)))
    elif decay == "vector":
        grads.append(("log_decay_grad", (None, None, None, K)))
    if has_beta:
        grads.append(("beta_grad", (None, None, None)))
    if input_gate:
        grads.append(("input_gate_grad", (None, None, None)))
    if has_init:
        grads.append(("init_grad", (None, None, K, V)))
    if mlstm_init:
        grads += [("init_normalizer_grad", (None, None, K)), ("init_stabilizer_grad", (None, None))]
    for i, (name, shape) in enumerate(grads):
        t = _memref(shape, state, False)
        args.append(f"%d{i}: {t}")
        uses.append(f"{name}(%d{i} : {t})")
    attrs = {"chunk_size": f"{int(chunk)} : i64"}
    if epsilon is not None:
        attrs["epsilon"] = _f64_attr(epsilon)
    return _function(args, "linear_attention_adjoint", uses, attrs), scale_pos


def gpu_config(sequences_x_heads: int, V: int, device: torch.device) -> str:
    """Pipeline options for a CUDA specialisation (strategy; the passes are the mechanism).

    The tensor-core kernel runs one thread block per (value tile, head, sequence). The
    widest value tile (`block-v`, 16 channels per warp) is the fastest at every S1 shape
    we measured on the H100 (bench/results/linear_attention_*): narrower tiles add
    blocks but repeat each chunk's Q K^T per tile. Constants are sunk into the kernel
    (not kernel arguments), so that fragment addresses fold into immediate offsets."""
    block_v = next(bv for bv in (64, 32, 16, 1) if V % bv == 0)
    return f"sink-constants=1 block-v={max(block_v, 16)}"


def _fail(fn: str, message: str, exc=ValueError):
    raise exc(f"mixir.ops.{fn}: {message}")


def _check(fn, q, k, v, g, beta, initial_state, cu_seqlens, vector_decay: bool):
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
    named = [("q", q), ("k", k), ("v", v), ("g", g), ("beta", beta),
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
            _fail(fn, f"g must have shape {list(want)} "
                      f"({'a log decay per key dimension' if vector_decay else 'a log decay per head'}), "
                      f"got {tuple(g.shape)}")
        if g.dtype not in _FLOATS:
            _fail(fn, f"g must be a float tensor, got {g.dtype}", TypeError)
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
    if initial_state is not None and tuple(initial_state.shape) != (N, H, K, V):
        _fail(fn, f"initial_state must have shape [sequences, heads, K, V] = {[N, H, K, V]}, "
                  f"got {tuple(initial_state.shape)}")
    return N


def _vector_ready(x: torch.Tensor) -> torch.Tensor:
    """Rows of the head dimension move as 16-byte vectors: unit stride, 16-byte aligned
    start and row strides. Anything else is copied once into a contiguous tensor."""
    per16 = 16 // x.element_size()
    if x.stride(-1) == 1 and x.data_ptr() % 16 == 0 and all(
            s % per16 == 0 for s in x.stride()[:-1]):
        return x
    return x.contiguous()


def _invoke(q, k, v, g, beta, scale: float, initial_state, cu_seqlens, o, final,
            reverse: bool = False, value_decay: bool = False):
    """Compiles (once) and runs the specialisation of these operands; o or final may be
    None (no output: the state pass). reverse: the [B, T, ...] operands are read and o
    written with time reversed (negative strides, no copies)."""
    K, V = q.shape[3], v.shape[3]
    state = final if final is not None else initial_state
    state_dtype = state.dtype if state is not None else (
        torch.float64 if q.dtype == torch.float64 else torch.float32)
    vector_decay = g is not None and g.dim() == 4 and not value_decay
    decay = "none" if g is None else ("value" if value_decay else
                                      "vector" if vector_decay else "scalar")
    # The chunked delta rule writes each chunk's WY factors to a scratch buffer, a
    # chunked per-key decay its decayed queries and keys, scores and chunk decays.
    width = 0
    if beta is not None and o is not None and _delta_rule_on_tensor_cores(q, v, g, o.dtype):
        width = K + V
    elif vector_decay and _chunked_on_tensor_cores(q, v, g, None,
                                                   q.dtype if o is None else o.dtype):
        width = 4 * K + 64
    workspace = None if not width else torch.empty(v.shape[:3] + (width,), dtype=q.dtype,
                                                   device=q.device)
    ir, scale_pos = linear_attention_ir(
        _ELEMENT[q.dtype], _ELEMENT[v.dtype], K, V, decay,
        _ELEMENT[g.dtype] if g is not None else "f32", beta is not None,
        _ELEMENT[beta.dtype] if beta is not None else "f32", initial_state is not None,
        None if cu_seqlens is None else ("i32" if cu_seqlens.dtype == torch.int32 else "i64"),
        final is not None, _ELEMENT[state_dtype], None if o is None else _ELEMENT[o.dtype],
        width)
    N = q.shape[0] if cu_seqlens is None else cu_seqlens.numel() - 1
    options = gpu_config(N * q.shape[2], V, q.device) if q.is_cuda else None
    key = ("linear_attention", q.device, ir, options)
    device = q.device
    if reverse:
        q, k, v, g, beta, o = [None if x is None else TimeReversed(x)
                               for x in (q, k, v, g, beta, o)]
    args = [q, k, v] + [x for x in (g, beta) if x is not None] + [float(scale)]
    args += [x for x in (initial_state, cu_seqlens, o, final, workspace) if x is not None]
    scalar = ctypes.c_double if state_dtype == torch.float64 else ctypes.c_float
    kernel = _kernel(key, ir, len(args), device, options, entry="la",
                     scalar_args={scale_pos: scalar})
    kernel(*args)


def _kernel_inputs(q, k, v, g, beta):
    """The operands as the kernels read them: decays in float32 at least (fla's rule:
    decays are accumulated in float32), beta in q's dtype or float32/64, head rows
    16-byte vectorisable (a per-key decay's too)."""
    if g is not None and g.dtype not in (torch.float32, torch.float64):
        g = g.float()
    if beta is not None and beta.dtype != q.dtype and beta.dtype not in (torch.float32,
                                                                          torch.float64):
        beta = beta.float()
    q, k, v = _vector_ready(q), _vector_ready(k), _vector_ready(v)
    if g is not None and g.dim() == 4:
        g = _vector_ready(g)
    return q, k, v, g, beta


def _launch(q, k, v, g, beta, scale: float, initial_state, cu_seqlens, output_final_state: bool,
            vector_decay: bool, out_dtype: Optional[torch.dtype] = None, reverse: bool = False,
            value_decay: bool = False):
    """Runs the op on checked arguments. The output has v's dtype unless out_dtype says
    otherwise (the backward asks for float32 dq/dk). reverse: time runs backwards
    (the op on the time-flipped operands, its output flipped back; cu_seqlens then
    describes the flipped row). Returns (o, final or None)."""
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    state_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    o = torch.empty((B, T, H, V), dtype=out_dtype or v.dtype, device=v.device)
    final = torch.empty((N, H, K, V), dtype=state_dtype, device=v.device) \
        if output_final_state else None
    if initial_state is not None:
        initial_state = initial_state.to(state_dtype)
    if o.numel() == 0:
        if final is not None:
            final.copy_(initial_state if initial_state is not None else torch.zeros_like(final))
        return o, final
    q, k, v, g, beta = _kernel_inputs(q, k, v, g, beta)
    if value_decay:  # the recurrent kernel only (GLA's gradient passes): no splits
        _invoke(q, k, v, g, beta, scale, initial_state, cu_seqlens, o, final, reverse, True)
        return o, final
    if K > _MMA_MAX_K and _chunked_on_tensor_cores(q[..., :_MMA_MAX_K], v, g, beta, o.dtype):
        _run_key_split(q, k, v, g, scale, initial_state, cu_seqlens, o, final, reverse)
        return o, final
    if beta is None:
        piece = split_length(N, H, V, B * T if cu_seqlens is None else T,
                             T if cu_seqlens is None else None, q.device,
                             _chunked_on_tensor_cores(q, v, g, beta, o.dtype))
        if piece and _run_split(q, k, v, g, scale, initial_state, cu_seqlens, o, final, piece,
                                reverse):
            return o, final
    _invoke(q, k, v, g, beta, scale, initial_state, cu_seqlens, o, final, reverse)
    return o, final


# ---------------------------------------------------------------------------
# The adjoint kernel (mixer.linear_attention_adjoint): the backward of the delta
# rule and of the mLSTM cell, whose gradients are not forward passes of the op.
# One sequential program per (head, sequence) that checkpoints the state every
# `chunk` steps and recomputes each chunk's states while it runs back through
# them: the exact gradient of the recurrent forward, on every device.
# ---------------------------------------------------------------------------

_ADJOINT_CHUNKS = (16, 32, 64, 128, 256)


def adjoint_chunk(longest: int) -> int:
    """Strategy: the checkpoint interval C for sequences of at most `longest` steps.
    The workspace holds ceil(longest / C) checkpoints and C recomputed states; C near
    sqrt(longest) keeps their sum near its minimum, 2 sqrt(longest). A few fixed
    values keep the number of compiled specialisations small."""
    return min(_ADJOINT_CHUNKS, key=lambda c: (-(-max(longest, 1) // c) + c, c))


def run_adjoint(q, k, v, g, beta, scale: float, initial_state, cu_seqlens, do, dfinal,
                input_gate=None, n0=None, m0=None, dn_final=None, dm_final=None,
                epsilon: Optional[float] = None) -> dict:
    """Gradients of the op's forward ([B, T, Hq|H, d] operands as the forward got them,
    `do` in v's dtype, final-state gradients or None) in the state dtype: a dict with
    q and k per value head ([B, T, H, K]), v, and g, beta, i, h0, n0, m0 where the
    forward operand exists. The mLSTM cell: input_gate, n0, m0 (with initial_state),
    dn_final, dm_final and its epsilon."""
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]
    state = torch.float64 if q.dtype == torch.float64 else torch.float32
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    longest = T if cu_seqlens is None else int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
    chunk = adjoint_chunk(longest)
    mlstm = input_gate is not None
    border = 1 if mlstm else 0
    slots = max(-(-longest // chunk), 1) + chunk + 1
    workspace = torch.empty((N, H, slots, K + border, V + border), dtype=state, device=q.device)
    q, k, v, g, beta = _kernel_inputs(q, k, v, g, beta)
    do = _vector_ready(do.to(v.dtype))
    as_state = lambda x: None if x is None else x.to(state)  # noqa: E731
    initial_state, n0, m0 = as_state(initial_state), as_state(n0), as_state(m0)
    dfinal, dn_final, dm_final = as_state(dfinal), as_state(dn_final), as_state(dm_final)
    # The mLSTM's final cotangents come as one operand group: zeros stand in for absent ones.
    mlstm_final_grad = mlstm and (dn_final is not None or dm_final is not None)
    if mlstm_final_grad:
        zeros = lambda x, *shape: x if x is not None else torch.zeros(  # noqa: E731
            shape, dtype=state, device=q.device)
        dfinal, dn_final = zeros(dfinal, N, H, K, V), zeros(dn_final, N, H, K)
        dm_final = zeros(dm_final, N, H)
    has_final_grad = dfinal is not None
    decay = "none" if g is None else ("vector" if g.dim() == 4 and not mlstm else "scalar")
    grads = {"q": torch.empty((B, T, H, K), dtype=state, device=q.device),
             "k": torch.empty((B, T, H, K), dtype=state, device=q.device),
             "v": torch.empty((B, T, H, V), dtype=state, device=q.device)}
    for name, x in (("g", g), ("beta", beta), ("i", input_gate), ("h0", initial_state),
                    ("n0", n0), ("m0", m0)):
        if x is not None:
            grads[name] = torch.empty(x.shape, dtype=state, device=q.device)
    ir, scale_pos = linear_attention_adjoint_ir(
        _ELEMENT[q.dtype], _ELEMENT[v.dtype], K, V, decay,
        _ELEMENT[g.dtype] if g is not None else "f32", beta is not None,
        _ELEMENT[beta.dtype] if beta is not None else "f32", initial_state is not None,
        None if cu_seqlens is None else ("i32" if cu_seqlens.dtype == torch.int32 else "i64"),
        has_final_grad, _ELEMENT[state], chunk,
        input_gate=_ELEMENT[input_gate.dtype] if mlstm else None, mlstm_init=n0 is not None,
        mlstm_final_grad=mlstm_final_grad, epsilon=epsilon)
    options = gpu_config(N * H, V, q.device) if q.is_cuda else None
    args = [q, k, v] + [x for x in (g, beta, input_gate) if x is not None] + [float(scale)]
    args += [x for x in (initial_state, n0, m0, cu_seqlens, do, dfinal) if x is not None]
    if mlstm_final_grad:
        args += [dn_final, dm_final]
    args.append(workspace)
    args += list(grads.values())
    scalar = ctypes.c_double if state == torch.float64 else ctypes.c_float
    kernel = _kernel(("linear_attention_adjoint", q.device, ir, options), ir, len(args),
                     q.device, options, entry="la", scalar_args={scale_pos: scalar})
    kernel(*args)
    return grads


_ADJOINT_GRADS = ("q", "k", "v", "g", "beta", "i", "h0", "n0", "m0")


# The adjoint as an op of its own, so that the backwards calling it trace under fake
# tensors (torch.compile, AOT): the workspace's size depends on the longest packed
# sequence, which only the real kernel reads. Returns the gradients in
# _ADJOINT_GRADS's order, state dtype; an empty tensor where the operand is absent.
@torch.library.custom_op("mixir::linear_attention_adjoint", mutates_args=(),
                         device_types=("cpu", "cuda"))
def _adjoint_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: Optional[torch.Tensor],
                beta: Optional[torch.Tensor], scale: float, initial_state: Optional[torch.Tensor],
                cu_seqlens: Optional[torch.Tensor], do: torch.Tensor,
                dfinal: Optional[torch.Tensor], input_gate: Optional[torch.Tensor],
                n0: Optional[torch.Tensor], m0: Optional[torch.Tensor],
                dn_final: Optional[torch.Tensor], dm_final: Optional[torch.Tensor],
                epsilon: Optional[float]) -> List[torch.Tensor]:
    grads = run_adjoint(q, k, v, g, beta, scale, initial_state, cu_seqlens, do, dfinal,
                        input_gate, n0, m0, dn_final, dm_final, epsilon)
    state = grads["v"].dtype
    return [grads[n] if n in grads else q.new_empty(0, dtype=state) for n in _ADJOINT_GRADS]


@_adjoint_op.register_fake
def _adjoint_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens, do, dfinal, input_gate,
                  n0, m0, dn_final, dm_final, epsilon):
    B, T, _, K = q.shape
    H = v.shape[2]
    state = torch.float64 if q.dtype == torch.float64 else torch.float32
    shapes = dict(q=(B, T, H, K), k=(B, T, H, K), v=v.shape)
    shapes.update((name, (0,) if x is None else x.shape) for name, x in (
        ("g", g), ("beta", beta), ("i", input_gate), ("h0", initial_state), ("n0", n0),
        ("m0", m0)))
    return [q.new_empty(shapes[name], dtype=state) for name in _ADJOINT_GRADS]


def adjoint(q, k, v, g, beta, scale: float, initial_state, cu_seqlens, do, dfinal,
            input_gate=None, n0=None, m0=None, dn_final=None, dm_final=None,
            epsilon: Optional[float] = None) -> dict:
    """run_adjoint through the registered op (traceable): the same dict."""
    out = _adjoint_op(q, k, v, g, beta, float(scale), initial_state, cu_seqlens, do, dfinal,
                      input_gate, n0, m0, dn_final, dm_final, epsilon)
    present = dict(q=q, k=k, v=v, g=g, beta=beta, i=input_gate, h0=initial_state, n0=n0, m0=m0)
    return {n: x for n, x in zip(_ADJOINT_GRADS, out) if present[n] is not None}


# ---------------------------------------------------------------------------
# Sequence split (the two-phase schedule). The fused kernel runs one block per
# (value tile, head, sequence) along the whole sequence; with few heads and
# sequences that leaves most SMs idle (e.g. 64 blocks on 132 SMs at
# (B, T, H) = (2, 16384, 16)). Cutting every sequence into pieces restores the
# parallelism: the state pass (no output) gives each piece's state from zero,
# L_j; the pieces' initial states follow from y_j = A_j y_{j-1} + L_j with A_j
# the piece's total decay (a short recurrence over pieces); then the fused
# kernel runs on the pieces from those states. Exact up to rounding.
# ---------------------------------------------------------------------------

_SPLIT_MIN_TOKENS = 512  # at least 8 chunks per piece: the state pass and combine amortise
_SPLIT_MIN_SEQUENCE = 4096  # shorter sequences run fused (see split_length)
_MMA_MAX_K = 128  # the tensor-core kernel's widest key dimension


@functools.lru_cache(maxsize=None)
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _chunked_on_tensor_cores(q, v, g, beta, out_dtype) -> bool:
    """Whether the CUDA pipeline lowers this specialisation to the tensor-core kernel
    (the conditions of mmaIneligibility in LowerLinearAttentionMma.cpp, which a split
    serves; the recurrent kernel is not split)."""
    K, V = q.shape[3], v.shape[3]
    return (q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and v.dtype == q.dtype
            and beta is None and (g is None or g.dim() == 3 or g.dtype == torch.float32)
            and K % 16 == 0 and K <= 128 and V % 64 == 0
            and out_dtype in (q.dtype, torch.float32))


def _delta_rule_on_tensor_cores(q, v, g, out_dtype) -> bool:
    """Whether the CUDA pipeline lowers a delta rule to the chunked tensor-core kernels
    (mmaIneligibility and deltaRulePrepareIneligibility in lib/Conversion/MixerToGPU)."""
    K, V = q.shape[3], v.shape[3]
    return (q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and v.dtype == q.dtype
            and (g is None or g.dim() == 3) and K % 16 == 0 and K <= 128 and V % 64 == 0
            and V <= 256 and out_dtype in (q.dtype, torch.float32))


def split_length(N: int, H: int, V: int, tokens: int, longest: Optional[int],
                 device: torch.device, tensor_cores: bool) -> int:
    """Strategy: the piece length (tokens, a multiple of the chunk) to cut sequences
    into, or 0 for the single fused pass. Only the tensor-core kernel is split, and
    only when the fused pass would leave at least half the SMs idle on sequences of
    4096 tokens or more: the split costs a state pass, a combine and about 0.2 ms of
    host work, which short sequences do not repay (H100, bench/results: at
    (B, T, H) = (4, 2048, 16) the split took 0.29-0.34 ms against 0.156 fused; at
    (2, 16384, 16) 0.60 against 1.10). Pieces fill about two waves of two blocks per
    SM (255 registers per thread allow two): 2048 tokens there, the steadiest in two
    sweeps (0.597/0.597 ms; 1024: 0.656/0.655; 4096: 0.802/0.568, host-bound timings
    vary). `longest`: the longest sequence (None for
    packed sequences, whose mean length is used). MIXIR_LA_SPLIT=<tokens> overrides,
    for every additive variant on any device (0: never split; tests and sweeps)."""
    forced = os.environ.get("MIXIR_LA_SPLIT")
    tiles = H * max(V // 64, 1)
    if forced is not None:
        piece = int(forced)
    elif not tensor_cores:
        return 0
    else:
        sms = _sm_count(device)
        length = longest if longest is not None else tokens // max(N, 1)
        if 2 * N * tiles > sms or length < _SPLIT_MIN_SEQUENCE:
            return 0
        pieces = max((4 * sms) // tiles, 1)
        piece = max(-(-tokens // pieces), _SPLIT_MIN_TOKENS)
    piece = -(-piece // 64) * 64
    return piece if piece and piece < (longest if longest is not None else tokens) else 0


def _run_key_split(q, k, v, g, scale, initial_state, cu_seqlens, o, final, reverse: bool):
    """Key dimensions wider than the tensor-core kernel's, by linearity: with a decay
    that is diagonal over the key dimensions (none, per head or per key dimension),
    the state's rows over a block of key dimensions evolve on their own and o is the
    sum of the blocks' outputs. Each block is one tensor-core pass with a float32
    output; the final state is the blocks' states stacked."""
    K = q.shape[3]
    vector_decay = g is not None and g.dim() == 4
    total = None
    for lo in range(0, K, _MMA_MAX_K):
        hi = min(lo + _MMA_MAX_K, K)
        init = None if initial_state is None else initial_state[:, :, lo:hi]
        gb = g[..., lo:hi] if vector_decay else g
        part, part_final = _launch(q[..., lo:hi], k[..., lo:hi], v, gb, None, scale, init,
                                   cu_seqlens, final is not None, vector_decay, torch.float32,
                                   reverse)
        total = part if total is None else total.add_(part)
        if final is not None:
            final[:, :, lo:hi] = part_final
    o.copy_(total)


def _piece_offsets(bounds: tuple, piece: int, device: torch.device):
    """Offsets of the pieces (P per sequence, sequence-major; pieces past a sequence's
    end are empty) and P. Cached for batches (the same bounds every step)."""
    if len(bounds) <= 65:
        return _cached_piece_offsets(bounds, piece, device)
    return _cached_piece_offsets.__wrapped__(bounds, piece, device)


@functools.lru_cache(maxsize=64)
def _cached_piece_offsets(bounds: tuple, piece: int, device: torch.device):
    P = max(max(-(-(e - s) // piece) for s, e in zip(bounds, bounds[1:])), 1)
    cuts = [s + min(j * piece, e - s) for s, e in zip(bounds, bounds[1:]) for j in range(P)]
    offsets = torch.tensor(cuts + [bounds[-1]], dtype=torch.int32)
    if device.type == "cuda":  # pinned: the copy does not wait for the stream
        offsets = offsets.pin_memory()
    return offsets.to(device, non_blocking=True), P


def _run_split(q, k, v, g, scale, initial_state, cu_seqlens, o, final, piece: int,
               reverse: bool) -> bool:
    """The split schedule into o and final; False (nothing done) when the operands
    cannot be viewed as one packed row."""
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]
    try:
        row = lambda x: x if cu_seqlens is not None else x.view(1, B * T, *x.shape[2:])  # noqa: E731
        qf, kf, vf, of = row(q), row(k), row(v), row(o)
        gf = None if g is None else row(g)
    except RuntimeError:
        return False
    bounds = tuple(n * T for n in range(B + 1)) if cu_seqlens is None else tuple(
        int(x) for x in cu_seqlens.tolist())
    N = len(bounds) - 1
    offsets, P = _piece_offsets(bounds, piece, q.device)
    state_dtype = final.dtype if final is not None else (
        torch.float64 if q.dtype == torch.float64 else torch.float32)
    # Reversing the packed row of a batch also reverses the order of its sequences.
    flip_rows = reverse and cu_seqlens is None
    if flip_rows and initial_state is not None:
        initial_state = initial_state.flip(0)
    final_rows = final.flip(0).clone() if flip_rows and final is not None else final
    # 1. Each piece's state from zero.
    local = torch.empty((N * P, H, K, V), dtype=state_dtype, device=q.device)
    _invoke(qf, kf, vf, gf, None, scale, None, offsets, None, local, reverse)
    local = local.view(N, P, H, K, V)
    # 2. The pieces' initial states (float64 sums of the log decays per piece).
    starts = torch.empty((N, P, H, K, V), dtype=state_dtype, device=q.device)
    if initial_state is not None:
        starts[:, 0] = initial_state
    else:
        starts[:, 0] = 0
    decay = None
    if gf is not None:  # [1, T, H] or [1, T, H, K] -> [N, P, H, 1 or K, 1]
        if cu_seqlens is None and T == P * piece:  # equal pieces: a reduction
            total = gf.view(B, P, piece, *gf.shape[2:]).sum(2, dtype=torch.float64)
            if reverse:
                total = total.flip(0, 1)  # pieces of the reversed row, in its order
        else:
            csum = _time_prefix_sums(gf.flip(1) if reverse else gf)[0]  # [H, (K,) T + 1]
            cut = offsets.long()
            total = (csum[..., cut[1:]] - csum[..., cut[:-1]]).movedim(-1, 0)
        decay = torch.exp(total).to(state_dtype).reshape(N, P, H, -1, 1)
    for j in range(1, P + (final is not None)):
        out = starts[:, j] if j < P else final_rows
        if decay is None:
            torch.add(local[:, j - 1], starts[:, j - 1], out=out)
        else:
            torch.addcmul(local[:, j - 1], decay[:, j - 1], starts[:, j - 1], out=out)
    if final_rows is not final:
        final.copy_(final_rows.flip(0))
    # 3. The fused kernel on the pieces.
    _invoke(qf, kf, vf, gf, None, scale, starts.view(N * P, H, K, V), offsets, of, None,
            reverse)
    return True


# The op PyTorch sees: one schema for every variant, so that autograd, fake tensors
# (torch.compile, meta) and the dispatcher treat all of them alike. `final` is an
# empty tensor when not requested (a schema cannot return an optional tensor).
@torch.library.custom_op("mixir::linear_attention", mutates_args=(), device_types=("cpu", "cuda"))
def _linear_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         g: Optional[torch.Tensor], beta: Optional[torch.Tensor], scale: float,
                         initial_state: Optional[torch.Tensor], cu_seqlens: Optional[torch.Tensor],
                         output_final_state: bool, vector_decay: bool,
                         out_dtype: Optional[torch.dtype], reverse: bool, value_decay: bool
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    o, final = _launch(q, k, v, g, beta, scale, initial_state, cu_seqlens, output_final_state,
                       vector_decay, out_dtype, reverse, value_decay)
    return o, final if final is not None else o.new_empty(0, dtype=torch.float32)


@_linear_attention_op.register_fake
def _linear_attention_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens,
                           output_final_state, vector_decay, out_dtype, reverse, value_decay):
    B, T, _, K = q.shape
    H, V = v.shape[2], v.shape[3]
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    state_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    o = v.new_empty((B, T, H, V), dtype=out_dtype or v.dtype)
    final = v.new_empty((N, H, K, V), dtype=state_dtype) if output_final_state \
        else v.new_empty(0, dtype=torch.float32)
    return o, final


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


def _setup_context(ctx, inputs, output):
    (q, k, v, g, beta, scale, h0, cu, output_final_state, vector_decay, out_dtype, reverse,
     value_decay) = inputs
    if reverse:
        raise NotImplementedError("mixir.ops.linear_attention: no gradient through a "
                                  "time-reversed pass (the backward's own)")
    ctx.scale = scale
    ctx.unsupported = "per-value-dimension decay" if value_decay else None
    ctx.per_key = g is not None and g.dim() == 4
    ctx.output_final_state = output_final_state
    final = output[1] if output_final_state and g is not None and beta is None else None
    ctx.save_for_backward(q, k, v, g, beta, h0, cu, final)


def _adjoint_backward(ctx, q, k, v, g, beta, h0, cu, do, dfinal):
    """The delta rule's gradients: the adjoint kernel (its gradients are not forward
    passes of the op, unlike the additive update's)."""
    grads = adjoint(q, k, v, g, beta, ctx.scale, h0, cu, do, dfinal)
    group = v.shape[2] // q.shape[2]
    B, T, Hq, K = q.shape
    for name in ("q", "k"):  # per value head: sum over each group of value heads
        if group > 1:
            grads[name] = grads[name].view(B, T, Hq, group, K).sum(3)
    cast = lambda name, like: None if like is None else grads[name].to(like.dtype)  # noqa: E731
    return (cast("q", q), cast("k", k), cast("v", v), cast("g", g), cast("beta", beta), None,
            cast("h0", h0), None, None, None, None, None, None)


def _backward(ctx, do, dfinal):
    if ctx.unsupported:
        raise NotImplementedError(f"mixir.ops.linear_attention: the backward pass of "
                                  f"{ctx.unsupported} is not implemented yet")
    q, k, v, g, beta, h0, cu, final = ctx.saved_tensors
    if beta is not None:
        if not ctx.output_final_state or dfinal is None or dfinal.numel() == 0:
            dfinal = None
        if do is None:
            do = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
        return _adjoint_backward(ctx, q, k, v, g, beta, h0, cu, do, dfinal)
    need_q, need_k, need_v, need_g, _, _, need_h0 = ctx.needs_input_grad[:7]
    need_g = need_g and g is not None
    # Grouped value heads: the passes below run per value head on q and k repeated
    # over each group; their gradients are summed over the group at the end.
    group = v.shape[2] // q.shape[2]
    if group > 1:
        q, k = q.repeat_interleave(group, 2), k.repeat_interleave(group, 2)
    B, T, H, K = q.shape
    N = B if cu is None else cu.numel() - 1
    if not ctx.output_final_state or dfinal is None or dfinal.numel() == 0:
        dfinal = None
    do = torch.zeros((B, T, H, v.shape[3]), dtype=v.dtype, device=v.device) if do is None \
        else do.to(v.dtype)
    # dq and dk feed the decay gradient: keep them float32 then.
    wide = torch.float32 if need_g and q.dtype in (torch.float16, torch.bfloat16) else None
    op = _linear_attention_op
    per_key = ctx.per_key  # dq and dk then decay by value dimension (see above)
    grads = dict(q=None, k=None, v=None, g=None, h0=None)
    dq = dk = None
    if need_q or need_g:
        h0_t = None if h0 is None else h0.transpose(-1, -2)
        dq = op(do, v, k, g, None, ctx.scale, h0_t, cu, False, per_key, wide, False,
                per_key)[0]
        grads["q"] = dq.to(q.dtype) if need_q else None

    # The reversed passes. With scale 0 the output is 0 and only dS_T flows: run them
    # with scale 1 and zero keys.
    scale = ctx.scale if ctx.scale != 0 else 1.0
    cu_r = None if cu is None else _reversed_offsets(cu, T)
    g_r = None if g is None else _next_step_log_decay(g, cu)
    init_r = None
    if dfinal is not None:
        init_r = (dfinal if cu is None else dfinal.flip(0)) / scale
    q_in, do_in = (q, do) if ctx.scale != 0 else (torch.zeros_like(q), torch.zeros_like(do))
    if need_v or need_h0:
        dv, dS0 = op(k, q_in, do_in, g_r, None, scale, init_r, cu_r, need_h0, per_key, None,
                     True, False)
        grads["v"] = dv if need_v else None
        if need_h0:
            dS0 = (dS0 if cu is None else dS0.flip(0)) * scale
            if g is not None and T > 0:
                first = g[:, 0] if cu is None else g[0, cu[:-1].clamp(max=T - 1)]
                if cu is not None:
                    first = torch.where((cu[1:] > cu[:-1]).view(N, *([1] * (first.dim() - 1))),
                                        first, 0.0)
                dS0 = dS0 * torch.exp(first.to(dS0.dtype)).view(N, H, -1, 1)
            grads["h0"] = dS0.to(h0.dtype)
    if need_k or need_g:
        init_t = None if init_r is None else init_r.transpose(-1, -2)
        dk = op(v, do_in, q_in, g_r, None, scale, init_t, cu_r, False, per_key, wide, True,
                per_key)[0]
        grads["k"] = dk.to(k.dtype) if need_k else None
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
        grads["g"] = _sequence_suffix_sum(dG, cu).to(g.dtype)
    if group > 1:
        for name in ("q", "k"):
            if grads[name] is not None:
                grads[name] = grads[name].view(B, T, H // group, group, K).sum(3)
    return (grads["q"], grads["k"], grads["v"], grads["g"], None, None, grads["h0"], None,
            None, None, None, None, None)


_linear_attention_op.register_autograd(_backward, setup_context=_setup_context)


def _forward(fn, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens,
             vector_decay):
    _check(fn, q, k, v, g, beta, initial_state, cu_seqlens, vector_decay)
    if scale is None:
        scale = q.shape[3] ** -0.5
    if q.device.type == "meta":
        o, final = _linear_attention_fake(q, k, v, g, beta, scale, initial_state, cu_seqlens,
                                          output_final_state, vector_decay, None, False, False)
    else:
        o, final = _linear_attention_op(q, k, v, g, beta, float(scale), initial_state,
                                        cu_seqlens, output_final_state, vector_decay, None,
                                        False, False)
    return o, (final if output_final_state else None)


def linear_attention(q, k, v, g=None, beta=None, scale=None, initial_state=None,
                     output_final_state=False, cu_seqlens=None, vector_decay=False):
    """The general op: decay none (g None), per head (g [B, T, H]) or per key dimension
    (g [B, T, H, K] with vector_decay), additive or delta-rule (beta) update."""
    o, final = _forward("linear_attention", q, k, v, g, beta, scale, initial_state,
                        output_final_state, cu_seqlens, vector_decay)
    return o, final


def chunk_simple_gla(q, k, v, g=None, scale=None, initial_state=None, output_final_state=False,
                     cu_seqlens=None):
    """fla.ops.simple_gla.chunk_simple_gla: S_t = exp(g_t) S_{t-1} + k_t v_t^T,
    o_t = scale S_t^T q_t; g [B, T, H] (log decay per head) or None.
    Returns (o [B, T, H, V], final_state [N, H, K, V] float32 or None)."""
    o, final = _forward("chunk_simple_gla", q, k, v, g, None, scale, initial_state,
                        output_final_state, cu_seqlens, False)
    return o, final


def fused_recurrent_simple_gla(q, k, v, g=None, scale=None, initial_state=None,
                               output_final_state=False, cu_seqlens=None):
    """The decode form of chunk_simple_gla (same math; short sequences)."""
    return chunk_simple_gla(q, k, v, g, scale, initial_state, output_final_state, cu_seqlens)


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False,
              cu_seqlens=None):
    """fla.ops.gla.chunk_gla: S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T; g [B, T, H, K]."""
    o, final = _forward("chunk_gla", q, k, v, g, None, scale, initial_state,
                        output_final_state, cu_seqlens, True)
    return o, final


def fused_recurrent_gla(q, k, v, gk=None, scale=None, initial_state=None,
                        output_final_state=False, cu_seqlens=None):
    """The decode form of chunk_gla (fla names the key-dimension decay `gk`)."""
    return chunk_gla(q, k, v, gk, scale, initial_state, output_final_state, cu_seqlens)


def chunk_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None,
                           output_final_state=False, cu_seqlens=None):
    """fla.ops.gated_delta_rule.chunk_gated_delta_rule (spec 4.7): S <- exp(g_t) S;
    u_t = beta_t (v_t - S^T k_t); S <- S + k_t u_t^T; o_t = scale S^T q_t.
    g, beta [B, T, H]; q and k as given (normalise them first, as fla expects)."""
    if beta is None:
        _fail("chunk_gated_delta_rule", "beta is required (the delta rule's step sizes)")
    o, final = _forward("chunk_gated_delta_rule", q, k, v, g, beta, scale, initial_state,
                        output_final_state, cu_seqlens, False)
    return o, final


def fused_recurrent_gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None,
                                     output_final_state=False, cu_seqlens=None):
    """The decode form of chunk_gated_delta_rule."""
    return chunk_gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state,
                                  cu_seqlens)
