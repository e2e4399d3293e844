"""mixir.ops.linear_attention against the float64 recurrent oracle (spec 4.7, fla semantics).

CPU runs the recurrent lowering; CUDA runs the fused tensor-core kernel for bf16/fp16
simple GLA and plain linear attention (K <= 128), and the recurrent kernel for the
rest. Errors are max |ours - oracle| / max |oracle|, with the oracle fed the same
(rounded) inputs, so a tolerance measures the kernel, not the input rounding.
"""

import pytest
import torch
import torch.nn.functional as F

from mixir.ops import linear_attention as la
from mixir.reference import linear_attention_ref

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
# fp32/fp64 are exact up to summation order. bf16/fp16 on the tensor-core path
# round the intra-chunk scores and the state operand to 16 bits, as fla does;
# on the recurrent path only the stored output is rounded.
TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 1e-2}

STATE_TOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


def rel(got, want):
    want = torch.as_tensor(want)
    return ((got.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def inputs(B, T, H, K, V, dtype, device, decay="scalar", delta=False, strength=1.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = torch.randn(B, T, H, K, generator=gen)
    v = torch.randn(B, T, H, V, generator=gen)
    if delta:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    g = None
    if decay == "scalar":
        g = F.logsigmoid(torch.rand(B, T, H, generator=gen)) / strength
    elif decay == "vector":
        g = F.logsigmoid(torch.rand(B, T, H, K, generator=gen)) / strength
    beta = torch.sigmoid(torch.rand(B, T, H, generator=gen)) if delta else None
    cast = lambda x: None if x is None else x.to(dtype).to(device)  # noqa: E731
    return cast(q), cast(k), cast(v), (None if g is None else g.to(device)), cast(beta)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("variant", ["none", "simple_gla", "gla", "gated_delta_rule"])
@pytest.mark.parametrize("T", [1, 15, 64, 65, 150])
def test_variants_match_oracle(device, dtype, variant, T):
    B, H, K, V = 2, 3, 32, 16
    decay = {"none": None, "simple_gla": "scalar", "gla": "vector",
             "gated_delta_rule": "scalar"}[variant]
    q, k, v, g, beta = inputs(B, T, H, K, V, dtype, device, decay, variant == "gated_delta_rule")
    h0 = torch.randn(B, H, K, V, generator=torch.Generator().manual_seed(1)).to(device)
    if variant == "gla":
        o, f = la.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    elif variant == "gated_delta_rule":
        o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0,
                                         output_final_state=True)
    else:
        o, f = la.chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0)
    assert o.dtype == dtype and o.shape == (B, T, H, V)
    assert f.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    # The state never leaves f32/f64. The recurrent path rounds only the output; the
    # tensor-core path (CUDA, 16-bit inputs, V = 16 here) also rounds the decayed values
    # its state update reads.
    state_tol = TOL[dtype] if dtype in (torch.float32, torch.float64) else 1e-5
    if device == "cuda" and dtype == torch.bfloat16 and decay == "scalar" and beta is None:
        state_tol = STATE_TOL[dtype]
    assert rel(o, ro) < TOL[dtype]
    assert rel(f, rf) < state_tol, rel(f, rf)


@pytest.mark.parametrize("device", DEVICES)
def test_scale_and_no_states(device):
    q, k, v, g, _ = inputs(1, 40, 2, 16, 16, torch.float32, device)
    o, f = la.chunk_simple_gla(q, k, v, g, scale=0.3)
    ro, _ = linear_attention_ref(q, k, v, g=g, scale=0.3)
    assert f is None
    assert rel(o, ro) < 2e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["simple_gla", "gated_delta_rule"])
def test_varlen_equals_per_sequence(device, variant):
    """Packed sequences (with an empty one) equal running each sequence on its own."""
    delta = variant == "gated_delta_rule"
    q, k, v, g, beta = inputs(1, 150, 2, 16, 16, torch.float32, device, "scalar", delta)
    cu = torch.tensor([0, 7, 7, 80, 150], dtype=torch.int32, device=device)
    h0 = torch.randn(4, 2, 16, 16, generator=torch.Generator().manual_seed(2)).to(device)
    fn = la.chunk_gated_delta_rule if delta else la.chunk_simple_gla
    extra = (beta,) if delta else ()
    o, f = fn(q, k, v, g, *extra, initial_state=h0, output_final_state=True, cu_seqlens=cu)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0, cu_seqlens=cu)
    assert rel(o, ro) < 2e-5 and rel(f, rf) < 2e-5
    # The empty sequence hands its initial state through unchanged.
    assert torch.equal(f[1], h0[1])


@pytest.mark.parametrize("device", DEVICES)
def test_split_sequence_equals_one_shot(device):
    """Prefill + continuation from the final state equals the one-shot forward (decode)."""
    q, k, v, g, beta = inputs(2, 70, 2, 16, 16, torch.float32, device, "scalar", True)
    o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
    o1, f1 = la.chunk_gated_delta_rule(q[:, :69], k[:, :69], v[:, :69], g[:, :69],
                                       beta[:, :69], output_final_state=True)
    o2, f2 = la.fused_recurrent_gated_delta_rule(q[:, 69:], k[:, 69:], v[:, 69:], g[:, 69:],
                                                 beta=beta[:, 69:], initial_state=f1,
                                                 output_final_state=True)
    assert torch.allclose(torch.cat([o1, o2], 1), o, rtol=1e-5, atol=1e-5)
    assert torch.allclose(f2, f, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    """Head-first storage viewed as [B, T, H, K], and a slice of a wider tensor."""
    B, T, H, K = 2, 33, 2, 16
    gen = torch.Generator().manual_seed(3)
    qh = torch.randn(B, H, T, K, generator=gen).to(device)
    k = torch.randn(B, T, H, 2 * K, generator=gen).to(device)[..., :K]
    v = torch.randn(B, T, H, K, generator=gen).to(device)[:, :, :, :]
    g = F.logsigmoid(torch.randn(B, H, T, generator=gen)).to(device).transpose(1, 2)
    q = qh.transpose(1, 2)
    o, _ = la.chunk_simple_gla(q, k, v, g)
    ro, _ = linear_attention_ref(q, k, v, g=g)
    assert rel(o, ro) < 2e-5


def test_errors_name_the_argument():
    q, k, v, g, _ = inputs(1, 8, 2, 16, 16, torch.float32, "cpu")
    with pytest.raises(ValueError, match="k must have the shape of q"):
        la.chunk_simple_gla(q, k[..., :8], v, g)
    with pytest.raises(ValueError, match=r"g must have shape \[1, 8, 2\]"):
        la.chunk_simple_gla(q, k, v, g[..., :1])
    with pytest.raises(ValueError, match=r"g must have shape \[1, 8, 2, 16\]"):
        la.chunk_gla(q, k, v, g)
    with pytest.raises(TypeError, match="share a dtype"):
        la.chunk_simple_gla(q, k.double(), v, g)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        la.chunk_simple_gla(q, k, v, g, initial_state=torch.zeros(1, 2, 16, 8))
    with pytest.raises(ValueError, match="cu_seqlens must start at 0"):
        la.chunk_simple_gla(q, k, v, g, cu_seqlens=torch.tensor([0, 3, 7], dtype=torch.int32))
    with pytest.raises(ValueError, match="batch must be 1"):
        la.chunk_simple_gla(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1),
                            v.expand(2, -1, -1, -1), g.expand(2, -1, -1),
                            cu_seqlens=torch.tensor([0, 8], dtype=torch.int32))
    with pytest.raises(ValueError, match="beta is required"):
        la.chunk_gated_delta_rule(q, k, v, g, None)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        la.chunk_simple_gla(q.numpy(), k, v, g)


# --- Gradients ------------------------------------------------------------------------
# The backward is built from forward passes (see mixir.ops.linear_attention._backward);
# the oracle is autograd through the float64 step-by-step recurrence. Errors are
# max |ours - oracle| / max |oracle| per gradient. fp32/fp64 are exact up to
# summation order. bf16 on the tensor-core path: dv and dh0 are each one pass with
# 16-bit operands (like the forward's output); dq and dk are kept float32 when g needs a
# gradient, and dg = suffix sums of q.dq - k.dk adds their errors.
# Measured on the H100 (K = V = 64, fused and split): bf16 <= 5.2e-3, fp16 <= 5.9e-4,
# fp32 <= 8.4e-7.
GRAD_TOL = {torch.float64: 1e-10, torch.float32: 5e-6, torch.bfloat16: 1e-2,
            torch.float16: 1.5e-3}


def state_and_cotangents(N, B, T, H, K, V, dtype, device, states: bool, seed: int):
    """A small initial state (state dtype), the output's cotangent and, with states, the
    final state's (float64 CPU: the loss is formed in float64)."""
    gen = torch.Generator().manual_seed(seed)
    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    h0 = (torch.randn(N, H, K, V, generator=gen) * 0.1).to(device, state_dtype) \
        if states else None
    # o has v's dtype, so autograd hands the op do in that dtype: the oracle gets the same.
    do = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64).to(dtype).double()
    dfinal = torch.randn(N, H, K, V, generator=gen, dtype=torch.float64) if states else None
    return h0, do, dfinal


def grads_of(fn, leaves, do, dfinal):
    o, f = fn(*leaves)
    loss = (o.double().cpu() * do).sum() + (0 if dfinal is None else (f.cpu() * dfinal).sum())
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("device,dtype", [("cpu", torch.float64), ("cpu", torch.float32),
                                          pytest.param("cuda", torch.float32, marks=pytest.mark.gpu),
                                          pytest.param("cuda", torch.bfloat16, marks=pytest.mark.gpu),
                                          pytest.param("cuda", torch.float16, marks=pytest.mark.gpu)])
@pytest.mark.parametrize("decay", [None, "scalar", "vector"])
@pytest.mark.parametrize("layout", ["batch", "equal_pieces", "varlen"])
@pytest.mark.parametrize("states", [False, True])
@pytest.mark.parametrize("split", [None, 64])
def test_gradients_match_oracle(device, dtype, decay, layout, states, split):
    """split: every pass (forward and the backward's) through a sequence split into
    pieces of 64 steps (a config override, which the backward's passes inherit)."""
    config = None if split is None else SPLIT.format(piece=split)
    H, K, V = 2, 64, 64  # tensor-core eligible on CUDA for 16-bit inputs
    B, T = {"batch": (2, 150), "equal_pieces": (2, 128), "varlen": (1, 200)}[layout]
    cu = torch.tensor([0, 1, 64, 64, 130, 200], device=device) if layout == "varlen" else None
    N = B if cu is None else 5
    q, k, v, g, _ = inputs(B, T, H, K, V, dtype, device, decay, strength=4.0)
    q, k = F.normalize(q.double(), dim=-1).to(dtype), F.normalize(k.double(), dim=-1).to(dtype)
    if g is not None and dtype == torch.float64:
        g = g.double()  # else float32, as fla keeps decays
    h0, do, dfinal = state_and_cotangents(N, B, T, H, K, V, dtype, device, states, seed=5)
    ours = [x.detach().clone().requires_grad_() for x in (q, k, v, g, h0) if x is not None]
    oracle = [x.detach().double().cpu().requires_grad_() for x in ours]

    def run(impl, xs):
        it = iter(xs)
        qq, kk, vv = next(it), next(it), next(it)
        gg = next(it) if decay else None
        hh = next(it) if states else None
        return impl(qq, kk, vv, gg, hh)

    got = grads_of(lambda *xs: run(lambda a, b, c, d, e: la.linear_attention(
        a, b, c, d, scale=0.5, initial_state=e, output_final_state=True, cu_seqlens=cu,
        vector_decay=decay == "vector", lowering_config=config), xs), ours, do, dfinal)
    want = grads_of(lambda *xs: run(lambda a, b, c, d, e: linear_attention_ref(
        a, b, c, g=d, scale=0.5, initial_state=e, cu_seqlens=cu), xs), oracle, do, dfinal)
    names = ["q", "k", "v"] + (["g"] if decay else []) + (["initial_state"] if states else [])
    for name, x, a, b in zip(names, ours, got, want):
        assert a.dtype == x.dtype and a.shape == x.shape, name
        assert rel(a, b) < GRAD_TOL[dtype], (name, rel(a, b))


@pytest.mark.parametrize("scale", [0.0, 1.3])
def test_gradients_of_state_only_use_and_zero_scale(scale):
    """Only the final state feeds the loss (and scale 0: the output is identically 0)."""
    q, k, v, g, _ = inputs(1, 40, 2, 8, 4, torch.float64, "cpu", "scalar")
    h0 = torch.randn(1, 2, 8, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    xs = [x.clone().requires_grad_() for x in (q, k, v, g, h0)]
    _, f = la.chunk_simple_gla(*xs[:4], scale=scale, initial_state=xs[4], output_final_state=True)
    got = torch.autograd.grad(f.square().sum(), xs)
    ys = [x.clone().requires_grad_() for x in (q, k, v, g, h0)]
    _, rf = linear_attention_ref(*ys[:3], g=ys[3], scale=scale, initial_state=ys[4])
    want = torch.autograd.grad(rf.square().sum(), ys, allow_unused=True)
    # Relative to each gradient's largest entry: dg_t sums terms of that size which
    # cancel down to ~1e-8 for early t (g_0 reaches S_T only through h0), so an
    # elementwise relative tolerance would measure float64 cancellation, not the kernel.
    for name, a, b in zip(["q", "k", "v", "g", "initial_state"], got, want):
        if b is None:  # q does not reach the final state
            assert not a.any(), name
        else:
            assert rel(a, b) < GRAD_TOL[torch.float64], (name, rel(a, b))


def test_internal_passes_refuse_gradients():
    """The backward's own passes (per-value-dimension decay, time reversed) are not
    differentiable: asking fails loudly instead of returning something wrong."""
    q, k, v, _, _ = inputs(1, 8, 2, 16, 16, torch.float64, "cpu", None)
    gv = torch.randn(1, 8, 2, 16, dtype=torch.float64).sigmoid().log()
    with pytest.raises(RuntimeError, match="per-value-dimension decay"):
        torch.ops.mixir.linear_attention(q.requires_grad_(), k, v, gv, None, 0.5, None, None,
                                         False, None, False, True, None)
    with pytest.raises(RuntimeError, match="time-reversed"):
        torch.ops.mixir.linear_attention(q, k, v, None, None, 0.5, None, None, False, None,
                                         True, False, None)


@pytest.mark.parametrize("device,dtype", [("cpu", torch.float64), ("cpu", torch.float32),
                                          pytest.param("cuda", torch.float32, marks=pytest.mark.gpu),
                                          pytest.param("cuda", torch.bfloat16, marks=pytest.mark.gpu)])
@pytest.mark.parametrize("layout", ["batch", "varlen", "reverse"])
def test_corrected_values_match_oracle(device, dtype, layout):
    """The delta rule's corrected values u_t = beta_t (v_t - S~_t^T k_t) (the backward's
    building block, torch.ops.mixir.linear_attention_corrected_values), in v's dtype;
    on CUDA with bf16 the tensor-core kernels write them. reverse: the op reads time
    backwards and writes u in forward order."""
    H, K, V = 2, 64, 64
    B, T = (1, 200) if layout == "varlen" else (2, 150)
    cu = torch.tensor([0, 1, 64, 64, 130, 200], device=device) if layout == "varlen" else None
    N = B if cu is None else 5
    q, k, v, g, beta = inputs(B, T, H, K, V, dtype, device, "scalar", delta=True, strength=4.0)
    k = F.normalize(k.double(), dim=-1).to(dtype)
    h0 = (torch.randn(N, H, K, V, generator=torch.Generator().manual_seed(3)) * 0.1).to(
        device, torch.float64 if dtype == torch.float64 else torch.float32)
    reverse = layout == "reverse"
    o, final, u = torch.ops.mixir.linear_attention_corrected_values(
        q, k, v, g, beta, 0.5, h0, cu, True, None, reverse, None)
    flip = (lambda x: x.flip(1)) if reverse else (lambda x: x)  # noqa: E731
    ro, rf, ru = linear_attention_ref(*(flip(x) for x in (q, k, v, g, beta)), scale=0.5,
                                      initial_state=h0, cu_seqlens=cu, corrected_values=True)
    assert u.dtype == v.dtype and u.shape == v.shape
    for name, a, b in (("o", o, flip(ro)), ("final", final, rf), ("u", u, flip(ru))):
        assert rel(a, b) < TOL[dtype], (name, rel(a, b))


# --- The delta rule's gradients ---------------------------------------------------------
# With no or a per-head decay: seven forward passes of the op (linear_attention.
# _delta_backward), among them two delta-rule passes that return their corrected
# values; with a per-key decay the adjoint op (mixer.linear_attention_adjoint), which
# checkpoints the state every C steps and recomputes each chunk while running back
# through it. T = 150 crosses the tensor-core kernels' chunks and the adjoint's
# checkpoints, and the varlen sequences end mid-chunk. Tolerances as GRAD_TOL: float64
# is exact up to summation order; float32 is the state type's rounding; bf16 inputs
# get float32 outputs where they feed sums, corrected values rounded to bf16.

@pytest.mark.parametrize("device,dtype", [("cpu", torch.float64), ("cpu", torch.float32),
                                          ("cpu", torch.bfloat16),
                                          pytest.param("cuda", torch.float32, marks=pytest.mark.gpu),
                                          pytest.param("cuda", torch.bfloat16, marks=pytest.mark.gpu)])
@pytest.mark.parametrize("decay", [None, "scalar"])
@pytest.mark.parametrize("layout", ["batch", "varlen"])
@pytest.mark.parametrize("states", [False, True])
def test_delta_rule_gradients_match_oracle(device, dtype, decay, layout, states):
    H, K, V = 2, 16, 32
    B, T = {"batch": (2, 150), "varlen": (1, 200)}[layout]
    cu = torch.tensor([0, 1, 64, 64, 130, 200], device=device) if layout == "varlen" else None
    N = B if cu is None else 5
    q, k, v, g, beta = inputs(B, T, H, K, V, dtype, device, decay, delta=True, strength=4.0)
    if g is not None and dtype == torch.float64:
        g = g.double()
    h0, do, dfinal = state_and_cotangents(N, B, T, H, K, V, dtype, device, states, seed=9)
    leaves = [x for x in (q, k, v, g, beta, h0) if x is not None]
    names = ["q", "k", "v"] + (["g"] if decay else []) + ["beta"] + (["h0"] if states else [])
    ours = [x.detach().clone().requires_grad_() for x in leaves]
    oracle = [x.detach().double().cpu().requires_grad_() for x in leaves]

    def split(xs):
        named = dict(zip(names, xs))
        return named["q"], named["k"], named["v"], named.get("g"), named["beta"], named.get("h0")

    def ours_fn(*xs):
        q_, k_, v_, g_, b_, h_ = split(xs)
        return la.chunk_gated_delta_rule(q_, k_, v_, g_, b_, scale=0.5, initial_state=h_,
                                         output_final_state=True, cu_seqlens=cu)

    def oracle_fn(*xs):
        q_, k_, v_, g_, b_, h_ = split(xs)
        return linear_attention_ref(q_, k_, v_, g=g_, beta=b_, scale=0.5, initial_state=h_,
                                    cu_seqlens=cu)

    got = grads_of(ours_fn, ours, do, dfinal)
    want = grads_of(oracle_fn, oracle, do, dfinal)
    for name, x, a, b in zip(names, ours, got, want):
        assert a.dtype == x.dtype and a.shape == x.shape, name
        assert rel(a, b) < GRAD_TOL[dtype], (name, rel(a, b))


def test_delta_rule_per_key_decay_gradients():
    """A per-key decay with the delta rule: autograd through the adjoint op."""
    q, k, v, g, beta = inputs(1, 40, 2, 8, 4, torch.float64, "cpu", "vector", delta=True)
    g = g.double()
    ours = [x.clone().requires_grad_() for x in (q, k, v, g, beta)]
    oracle = [x.clone().requires_grad_() for x in (q, k, v, g, beta)]
    do = torch.randn(1, 40, 2, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    o, _ = la.fused_recurrent_gated_delta_rule(*ours[:3], gk=ours[3], beta=ours[4], scale=0.6)
    got = torch.autograd.grad((o * do).sum(), ours)
    ro, _ = linear_attention_ref(*oracle[:3], g=oracle[3], beta=oracle[4], scale=0.6)
    want = torch.autograd.grad((ro * do).sum(), oracle)
    for name, a, b in zip(["q", "k", "v", "gk", "beta"], got, want):
        assert rel(a, b) < GRAD_TOL[torch.float64], (name, rel(a, b))


def test_delta_rule_gradients_grouped_heads_and_one_step():
    """GVA (q and k gradients summed over each group of value heads) and T = 1."""
    for T in (1, 37):
        B, Hq, G, K, V = 2, 2, 3, 8, 8
        q, k, _, _, _ = inputs(B, T, Hq, K, V, torch.float64, "cpu", None, delta=True)
        _, _, v, g, beta = inputs(B, T, Hq * G, K, V, torch.float64, "cpu", "scalar", True, seed=3)
        g = g.double()
        ours = [x.clone().requires_grad_() for x in (q, k, v, g, beta)]
        oracle = [x.clone().requires_grad_() for x in (q, k, v, g, beta)]
        do = torch.randn(B, T, Hq * G, V, generator=torch.Generator().manual_seed(4),
                         dtype=torch.float64)
        got = torch.autograd.grad((la.chunk_gated_delta_rule(*ours)[0] * do).sum(), ours)
        rq, rk, rv, rg, rb = oracle
        want = torch.autograd.grad((linear_attention_ref(
            _repeat_heads(rq, G), _repeat_heads(rk, G), rv, g=rg, beta=rb)[0] * do).sum(), oracle)
        for name, a, b in zip(["q", "k", "v", "g", "beta"], got, want):
            assert a.shape == b.shape, (T, name)
            if T == 1 and name == "g":
                # g_0 decays the zero initial state: dg is 0, ours terms of size 1 that
                # cancel (q.dq - k.dk), so the error is absolute.
                assert not b.any() and a.abs().max() < 1e-14, (T, name, a.abs().max())
            else:
                assert rel(a, b) < GRAD_TOL[torch.float64], (T, name, rel(a, b))


@pytest.mark.parametrize("decay", [None, "scalar", "vector"])
@pytest.mark.parametrize("delta", [False, True])
def test_adjoint_kernel(decay, delta):
    """The adjoint op is general: the additive update's gradient (which the op's
    autograd gets from forward passes instead) and the delta rule's (autograd's only
    for a per-key decay, else forward passes too); checked against the oracle for
    every decay across checkpoints."""
    B, T, H, K, V = 2, 70, 2, 8, 4
    q, k, v, g, beta = inputs(B, T, H, K, V, torch.float64, "cpu", decay, delta=delta)
    g = None if g is None else g.double()
    gen = torch.Generator().manual_seed(12)
    h0 = torch.randn(B, H, K, V, generator=gen, dtype=torch.float64)
    do = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    dfinal = torch.randn(B, H, K, V, generator=gen, dtype=torch.float64)
    got = la.adjoint(q, k, v, g, beta, 0.7, h0, None, do, dfinal)
    leaves = [x.clone().requires_grad_() for x in (q, k, v, g, beta, h0) if x is not None]
    it = iter(leaves)
    rq, rk, rv = next(it), next(it), next(it)
    rg = next(it) if g is not None else None
    rb = next(it) if beta is not None else None
    o, f = linear_attention_ref(rq, rk, rv, g=rg, beta=rb, scale=0.7, initial_state=next(it))
    want = torch.autograd.grad((o * do).sum() + (f * dfinal).sum(), leaves)
    names = ["q", "k", "v"] + (["g"] if g is not None else []) + (["beta"] if delta else []) \
        + ["h0"]
    for name, b in zip(names, want):
        assert rel(got[name], b) < GRAD_TOL[torch.float64], (name, rel(got[name], b))


def workspace_bytes(op, operands, attributes=None, target="cpu"):
    """What the compiled module of a call asks of its workspace (its generated
    <op>_workspace_bytes), for tensors known only by their facts (meta tensors)."""
    import ctypes
    import mixir
    from calls import operand
    ops = [operand(role, x) for role, x in operands]
    m = mixir._compiler.compile_call(op, ops, attributes, target=target, sm_count=132,
                                     runtime=mixir.runtime.library_path())
    args = [x for _, x in operands] + [torch.empty(0, dtype=torch.uint8, device="meta")]
    return mixir.runtime.Function(m, f"{op}_workspace_bytes", result=ctypes.c_int64)(*args)


def test_adjoint_checkpoint_interval():
    """The adjoint's checkpoint interval C follows the mean sequence length at run time
    (near its square root: ceil(L / C) + C states), read off its scratch: per head
    floor(B T / C) + N + 1 checkpoints and N (C + 1) more states."""
    def interval(B, T):
        K = V = 4
        meta = lambda *shape: torch.empty(*shape, device="meta", dtype=torch.float64)  # noqa
        ops = [("query", meta(B, T, 1, K)), ("key", meta(B, T, 1, K)), ("value", meta(B, T, 1, V)),
               ("scale", 0.5), ("output_grad", meta(B, T, 1, V)), ("query_grad", meta(B, T, 1, K)),
               ("key_grad", meta(B, T, 1, K)), ("value_grad", meta(B, T, 1, V))]
        got = workspace_bytes("linear_attention_adjoint", ops)
        states = lambda C: B * T // C + B + 1 + B * (C + 1)  # noqa: E731
        return [C for C in (16, 32, 64, 128, 256) if -(-states(C) * K * V * 8 // 256) * 256 == got]
    assert interval(2, 150) == [16] and interval(1, 4096) == [64]
    assert interval(1, 65536) == [256]


def test_registered_op_passes_opcheck():
    """Schema, fake kernel, autograd registration and AOT dispatch of mixir::linear_attention."""
    q, k, v, g, _ = inputs(1, 20, 2, 16, 8, torch.float32, "cpu", "scalar")
    h0 = torch.randn(1, 2, 16, 8)
    for x in (q, k, v, g, h0):
        x.requires_grad_()
    cu = torch.tensor([0, 7, 20])
    op = torch.ops.mixir.linear_attention.default
    torch.library.opcheck(op, (q, k, v, g, None, 0.25, torch.cat([h0, h0]), cu, True, None,
                               False, False, None))
    torch.library.opcheck(op, (q, k, v, None, None, 0.25, None, None, False, None, False, False,
                               None))
    gk = torch.randn(1, 20, 2, 16).sigmoid().log().requires_grad_()  # a per-key decay
    torch.library.opcheck(op, (q, k, v, gk, None, 0.25, h0, None, True, None, False, False,
                               None))
    beta = torch.rand(1, 20, 2).sigmoid().requires_grad_()  # the delta rule (adjoint kernel)
    torch.library.opcheck(op, (q, k, v, g, beta, 0.25, torch.cat([h0, h0]), cu, True, None,
                               False, False, None))


@pytest.mark.parametrize("variant", ["simple_gla", "gated_delta_rule"])
def test_torch_compile_forward_and_backward(variant):
    """A compiled training step (fullgraph: no graph break around the op or, for the
    delta rule, around the adjoint op its backward calls)."""
    delta = variant == "gated_delta_rule"
    q, k, v, g, beta = inputs(2, 33, 2, 16, 8, torch.float64, "cpu", "scalar", delta=delta)
    xs = [x.requires_grad_() for x in (q, k, v, g.double())]

    def step(q, k, v, g):
        if delta:
            o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, output_final_state=True)
        else:
            o, f = la.chunk_simple_gla(q, k, v, g, output_final_state=True)
        return o.square().sum() + f.sum()

    loss = torch.compile(step, backend="aot_eager", fullgraph=True)(*xs)
    got = torch.autograd.grad(loss, xs)
    want = torch.autograd.grad(step(*xs), xs)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


# --- The sequence split (two-phase schedule) -------------------------------------------
# On CUDA the strategy splits the tensor-core kernel when it would leave SMs idle (a rule
# the generated code evaluates on the sizes of each call); a lowering config forces a
# piece length for every additive variant on any device, so the mechanism (state pass,
# scan over pieces, output pass from the pieces' states) is checked on CPU in float64.

SPLIT = "#mixer.lowering_config<sequence_split = #mixer.sequence_split<piece = {piece}>>"


@pytest.mark.parametrize("device,dtype", [("cpu", torch.float64),
                                          pytest.param("cuda", torch.bfloat16,
                                                       marks=pytest.mark.gpu)])
@pytest.mark.parametrize("variant", ["none", "simple_gla", "gla"])
@pytest.mark.parametrize("layout", ["batch", "equal_pieces", "varlen"])
def test_sequence_split_matches_oracle(device, dtype, variant, layout):
    B, T = {"batch": (2, 300), "equal_pieces": (2, 256), "varlen": (1, 400)}[layout]
    cu = torch.tensor([0, 0, 100, 101, 400], device=device) if layout == "varlen" else None
    N = B if cu is None else 4
    decay = {"none": None, "simple_gla": "scalar", "gla": "vector"}[variant]
    q, k, v, g, _ = inputs(B, T, 2, 64, 64, dtype, device, decay, strength=8.0)
    q, k = F.normalize(q.double(), dim=-1).to(dtype), F.normalize(k.double(), dim=-1).to(dtype)
    state = torch.float64 if dtype == torch.float64 else torch.float32
    g = None if g is None else g.to(state)
    h0 = torch.randn(N, 2, 64, 64, generator=torch.Generator().manual_seed(6)).to(device, state)
    o, f = la.linear_attention(q, k, v, g, initial_state=h0, output_final_state=True,
                               cu_seqlens=cu, vector_decay=variant == "gla",
                               lowering_config=SPLIT.format(piece=64))
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0, cu_seqlens=cu)
    assert rel(o, ro) < TOL[dtype], rel(o, ro)
    assert rel(f, rf) < (1e-12 if dtype == torch.float64 else STATE_TOL[dtype]), rel(f, rf)


@pytest.mark.skipif(not __import__("os").path.isdir(__import__("os").path.join(
    __import__("os").environ.get("CUDA_HOME", "/usr/local/cuda"), "nvvm")),
    reason="no CUDA toolkit (libdevice) on this host")
def test_split_rule_on_the_sizes_of_each_call():
    """The strategy's split rule for an H200 (132 SMs), as the compiled module evaluates
    it: only when the unsplit kernel fills at most half the SMs, on mean sequences of
    4096+ steps, into pieces that aim at 4 blocks per SM. Read off the scratch the module
    asks for (simple GLA has none unsplit): P pieces of [N, H, K, V] states, P + 1 piece
    starts, per-chunk and per-piece decay sums."""
    meta = lambda *shape, dtype=torch.bfloat16: torch.empty(*shape, device="meta", dtype=dtype)  # noqa

    def pieces(B, T, H, D, cu=None):
        N = B if cu is None else cu - 1
        ops = [("query", meta(B, T, H, D)), ("key", meta(B, T, H, D)), ("value", meta(B, T, H, D)),
               ("log_decay", meta(B, T, H, dtype=torch.float32)), ("scale", 0.5)]
        if cu is not None:
            ops.append(("offsets", meta(cu, dtype=torch.int32)))
        ops.append(("output", meta(B, T, H, D)))
        got = workspace_bytes("linear_attention", ops, target="sm_90a")
        if got == 0:
            return 0
        align = lambda x: -(-x // 256) * 256  # noqa: E731
        chunks = -(-T // 64)
        for P in range(1, T // 64 + 1):
            state = N * H * D * D * 4
            if align(P * state) + align((P + 1) * state) + align(chunks * N * H * D * 4) + \
                    align(P * N * H * D * 4) == got:
                return P
        raise AssertionError(f"unexpected workspace {got}")
    assert pieces(2, 16384, 16, 128) == 8          # 64 blocks: pieces of 2048 steps
    assert pieces(1, 8192, 96, 128) == 0           # 192 blocks fill the SMs
    assert pieces(4, 2048, 16, 128) == 0           # 128 blocks, and short
    assert pieces(8, 1024, 8, 64) == 0             # short sequences
    assert pieces(1, 100032, 4, 64, cu=2) == 131   # one packed sequence: 768-step pieces


def test_empty_sequence_passes_state_through():
    q, k, v, g, _ = inputs(2, 0, 2, 16, 16, torch.float32, "cpu")
    h0 = torch.randn(2, 2, 16, 16)
    o, f = la.chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    assert o.shape == (2, 0, 2, 16) and torch.equal(f, h0)


# --- The tensor-core kernel (CUDA, bf16/fp16) ---------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128), (128, 64), (64, 128)])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 300])
@pytest.mark.parametrize("decay", [None, "scalar", "vector"])
def test_tensor_core_kernel(dtype, K, V, T, decay):
    q, k, v, g, _ = inputs(2, T, 3, K, V, dtype, "cuda", decay, strength=4.0)
    # Unit-norm keys and queries keep the state O(1), like trained models'.
    q, k = F.normalize(q.float(), dim=-1).to(dtype), F.normalize(k.float(), dim=-1).to(dtype)
    h0 = torch.randn(2, 3, K, V, generator=torch.Generator().manual_seed(4)).cuda() * 0.1
    fn = la.chunk_gla if decay == "vector" else la.chunk_simple_gla
    o, f = fn(q, k, v, g, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0)
    assert rel(o, ro) < TOL[dtype], rel(o, ro)
    # The state is f32, but its update reads the decayed values rounded to 16 bits
    # (exact without a decay).
    assert rel(f, rf) < (STATE_TOL[dtype] if decay else 1e-5), rel(f, rf)


@pytest.mark.gpu
@pytest.mark.parametrize("decay", ["scalar", "vector"])
def test_tensor_core_kernel_varlen_and_strided(decay):
    B, T, H, K, V = 1, 700, 4, 128, 128
    q, k, v, g, _ = inputs(B, T, H, K, V, torch.bfloat16, "cuda", decay, strength=8.0)
    q, k = F.normalize(q.float(), dim=-1).bfloat16(), F.normalize(k.float(), dim=-1).bfloat16()
    vh = v.transpose(1, 2).contiguous().transpose(1, 2)  # head-major storage
    cu = torch.tensor([0, 1, 64, 64, 200, 700], dtype=torch.int64, device="cuda")
    h0 = torch.randn(5, H, K, V, device="cuda") * 0.1
    fn = la.chunk_gla if decay == "vector" else la.chunk_simple_gla
    o, f = fn(q, k, vh, g, initial_state=h0, output_final_state=True, cu_seqlens=cu)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0, cu_seqlens=cu)
    assert rel(o, ro) < TOL[torch.bfloat16] and rel(f, rf) < STATE_TOL[torch.bfloat16]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_per_key_decay_strong_and_mixed_gates(dtype):
    """Per-key log decays from 0 to -12 per step: 16-step blocks that decay by more than
    exp(-80) (exp(-8) in fp16) in some key dimensions take the exact diagonal path, the
    others the tensor cores; both must match the oracle, and nothing may overflow."""
    B, T, H, K, V = 2, 200, 2, 64, 64
    q, k, v, _, _ = inputs(B, T, H, K, V, dtype, "cuda", None)
    q, k = F.normalize(q.float(), dim=-1).to(dtype), F.normalize(k.float(), dim=-1).to(dtype)
    gen = torch.Generator().manual_seed(11)
    g = -torch.rand(B, T, H, K, generator=gen) * torch.tensor([0.01, 0.5, 2.0, 12.0]).repeat(
        K // 4)
    g[:, 100:, 1] = -1e-3  # a quiet head after a loud start
    g = g.cuda()
    h0 = torch.randn(B, H, K, V, generator=torch.Generator().manual_seed(4)).cuda() * 0.1
    o, f = la.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0)
    assert torch.isfinite(o).all() and torch.isfinite(f).all()
    assert rel(o, ro) < TOL[dtype], rel(o, ro)
    assert rel(f, rf) < STATE_TOL[dtype], rel(f, rf)


@pytest.mark.gpu
@pytest.mark.parametrize("decay", [None, "scalar", "vector"])
def test_wide_keys_split_over_tensor_core_passes(decay):
    """K = 256 (wider than the kernel's 128): two tensor-core passes summed; gradients too
    (not yet for a per-key decay)."""
    B, T, H, K, V = 2, 130, 2, 256, 64
    q, k, v, g, _ = inputs(B, T, H, K, V, torch.bfloat16, "cuda", decay, strength=4.0)
    q, k = F.normalize(q.float(), dim=-1).bfloat16(), F.normalize(k.float(), dim=-1).bfloat16()
    h0 = torch.randn(B, H, K, V, generator=torch.Generator().manual_seed(7)).cuda() * 0.1
    if decay == "vector":
        o, f = la.chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
        ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0)
        assert rel(o, ro) < TOL[torch.bfloat16] and rel(f, rf) < STATE_TOL[torch.bfloat16]
        return
    xs = [x.clone().requires_grad_() for x in (q, k, v)]
    o, f = la.chunk_simple_gla(*xs, g, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0)
    assert rel(o, ro) < TOL[torch.bfloat16] and rel(f, rf) < STATE_TOL[torch.bfloat16]
    do = torch.randn(B, T, H, V, dtype=torch.float64)
    got = torch.autograd.grad((o.double().cpu() * do).sum(), xs)
    ys = [x.detach().double().cpu().requires_grad_() for x in (q, k, v)]
    want = torch.autograd.grad((linear_attention_ref(*ys, g=g, initial_state=h0)[0] * do).sum(),
                               ys)
    for a, b in zip(got, want):
        assert rel(a, b) < GRAD_TOL[torch.bfloat16], rel(a, b)


# --- Grouped value heads (fla's GVA: v, g, beta and states have H = G * Hq heads) ----------

def _repeat_heads(x, group):
    return x.repeat_interleave(group, 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["simple_gla", "gated_delta_rule"])
def test_grouped_value_heads_match_oracle(device, variant):
    """Value head h reads query/key head h // G: the oracle gets q and k repeated."""
    B, T, Hq, G, K, V = 2, 70, 2, 3, 16, 16
    delta = variant == "gated_delta_rule"
    q, k, _, _, _ = inputs(B, T, Hq, K, V, torch.float32, device, None, delta)
    _, _, v, g, beta = inputs(B, T, Hq * G, K, V, torch.float32, device, "scalar", delta, seed=3)
    h0 = torch.randn(B, Hq * G, K, V, generator=torch.Generator().manual_seed(2)).to(device)
    if delta:
        o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0,
                                         output_final_state=True)
    else:
        o, f = la.chunk_simple_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(_repeat_heads(q, G), _repeat_heads(k, G), v, g=g, beta=beta,
                                  initial_state=h0)
    assert o.shape == (B, T, Hq * G, V) and f.shape == (B, Hq * G, K, V)
    assert rel(o, ro) < TOL[torch.float32] and rel(f, rf) < TOL[torch.float32]


def test_grouped_value_heads_gradients():
    """The backward repeats q and k over each group and sums their gradients back."""
    B, T, Hq, G, K, V = 1, 40, 2, 2, 8, 8
    q, k, _, _, _ = inputs(B, T, Hq, K, V, torch.float64, "cpu", None)
    _, _, v, g, _ = inputs(B, T, Hq * G, K, V, torch.float64, "cpu", "scalar", seed=3)
    g = g.double()
    ours = [x.clone().requires_grad_() for x in (q, k, v, g)]
    oracle = [x.clone().requires_grad_() for x in (q, k, v, g)]
    do = torch.randn(B, T, Hq * G, V, dtype=torch.float64)
    got = torch.autograd.grad((la.chunk_simple_gla(*ours)[0] * do).sum(), ours)
    rq, rk, rv, rg = oracle
    want = torch.autograd.grad((linear_attention_ref(_repeat_heads(rq, G), _repeat_heads(rk, G),
                                                     rv, g=rg)[0] * do).sum(), oracle)
    for name, a, b in zip("qkvg", got, want):
        assert a.shape == b.shape and rel(a, b) < GRAD_TOL[torch.float64], (name, rel(a, b))


def test_grouped_value_heads_errors():
    q, k, v, g, beta = inputs(1, 8, 2, 16, 16, torch.float32, "cpu")
    v3 = torch.randn(1, 8, 3, 16)
    with pytest.raises(ValueError, match="value_heads a multiple of q's 2 heads"):
        la.chunk_simple_gla(q, k, v3)
    v4 = torch.randn(1, 8, 4, 16)
    with pytest.raises(ValueError, match=r"g must have shape \[1, 8, 4\]"):
        la.chunk_simple_gla(q, k, v4, g)


# --- The chunked delta rule on tensor cores (CUDA, bf16/fp16) ------------------------------
# Two kernels: each chunk's WY factors (T = (I + A)^-1 by forward substitution, W, U) in
# parallel, then the sequential pass with V' = U - W S. Like fla, T, W, U and V' are
# rounded to 16 bits; the state stays f32.
DELTA_TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128), (128, 64), (64, 256)])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 300])
@pytest.mark.parametrize("decay", [None, "scalar"])
@pytest.mark.parametrize("schedule", ["strategy", "fused"])
def test_chunked_delta_rule(dtype, K, V, T, decay, schedule):
    """At these sizes (at most 12 fused blocks) the strategy runs the delta rule
    chunk-parallel (the state pass, then every chunk's outputs); `fused` forces the
    one-kernel schedule."""
    q, k, v, g, beta = inputs(2, T, 3, K, V, dtype, "cuda", decay, delta=True, strength=4.0)
    h0 = torch.randn(2, 3, K, V, generator=torch.Generator().manual_seed(4)).cuda() * 0.1
    if schedule == "fused":
        o, f = la.linear_attention(q, k, v, g, beta, initial_state=h0, output_final_state=True,
                                   lowering_config="#mixer.lowering_config<chunk_parallel = -1>")
    else:
        o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0,
                                         output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0)
    assert rel(o, ro) < DELTA_TOL[dtype], rel(o, ro)
    assert rel(f, rf) < DELTA_TOL[dtype], rel(f, rf)


@pytest.mark.gpu
@pytest.mark.parametrize("decay", [None, "scalar"])
def test_chunk_parallel_additive_update_varlen(decay):
    """The chunk-parallel schedule forced on the additive update (the strategy gives it
    the sequence split instead): packed sequences, some shorter than a chunk, states."""
    B, T, H, K, V = 1, 300, 2, 64, 128
    q, k, v, g, _ = inputs(B, T, H, K, V, torch.bfloat16, "cuda", decay, strength=4.0)
    q, k = F.normalize(q.float(), dim=-1).bfloat16(), F.normalize(k.float(), dim=-1).bfloat16()
    cu = torch.tensor([0, 10, 10, 140, 300], dtype=torch.int64, device="cuda")
    h0 = torch.randn(4, H, K, V, generator=torch.Generator().manual_seed(4)).cuda() * 0.1
    cfg = ("#mixer.lowering_config<chunk_parallel = 1000000, sequence_split = "
           "#mixer.sequence_split<max_programs = 1, target_programs = 1>>")
    o, f = la.linear_attention(q, k, v, g, initial_state=h0, output_final_state=True,
                               cu_seqlens=cu, lowering_config=cfg)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0, cu_seqlens=cu)
    assert rel(o, ro) < TOL[torch.bfloat16], rel(o, ro)
    assert rel(f, rf) < (STATE_TOL[torch.bfloat16] if decay else 1e-5), rel(f, rf)


@pytest.mark.gpu
def test_chunked_delta_rule_varlen_grouped_strided():
    Hq, G, K, V = 2, 2, 128, 128
    T = 700
    q, k, _, _, _ = inputs(1, T, Hq, K, V, torch.bfloat16, "cuda", None, delta=True)
    _, _, v, g, beta = inputs(1, T, Hq * G, K, V, torch.bfloat16, "cuda", "scalar", delta=True,
                              strength=8.0, seed=6)
    vh = v.transpose(1, 2).contiguous().transpose(1, 2)  # head-major storage
    cu = torch.tensor([0, 1, 64, 64, 200, 700], dtype=torch.int32, device="cuda")
    h0 = torch.randn(5, Hq * G, K, V, device="cuda") * 0.1
    o, f = la.chunk_gated_delta_rule(q, k, vh, g, beta, initial_state=h0,
                                     output_final_state=True, cu_seqlens=cu)
    ro, rf = linear_attention_ref(_repeat_heads(q, G), _repeat_heads(k, G), v, g=g, beta=beta,
                                  initial_state=h0, cu_seqlens=cu)
    assert rel(o, ro) < DELTA_TOL[torch.bfloat16] and rel(f, rf) < DELTA_TOL[torch.bfloat16]
