"""fla's other entry points over the same op: the plain delta rule, RetNet's retention,
g_gamma, gv, reverse, state_v_first and fla's keyword arguments, against the float64
oracle (mixir.reference.linear_attention_ref, or the loops below where it has no such
option)."""

import pytest
import torch
import torch.nn.functional as F

from mixir.ops import linear_attention as la
from mixir.reference import linear_attention_ref

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 1e-2}
# The device and dtype pairs: CPU in float32, the GPU's tensor-core path in bf16 (the
# recurrent kernel for fp32 there).
CASES = [("cpu", torch.float32), pytest.param("cuda", torch.bfloat16, marks=pytest.mark.gpu),
         pytest.param("cuda", torch.float32, marks=pytest.mark.gpu)]


def rel(got, want):
    want = torch.as_tensor(want)
    return ((got.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def tensors(B, T, H, K, V, dtype, device, seed=0, normalise=True):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(B, T, H, K, generator=gen), torch.randn(B, T, H, K, generator=gen)
    if normalise:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    beta = torch.sigmoid(torch.randn(B, T, H, generator=gen))
    return [x.to(dtype).to(device) for x in (q, k, v, beta)]


def retention_gamma(H):
    return torch.log1p(-2.0 ** (-5.0 - torch.arange(H, dtype=torch.float64)))


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("T", [1, 65, 300])
@pytest.mark.parametrize("fn", ["chunk_delta_rule", "fused_recurrent_delta_rule"])
def test_delta_rule_matches_oracle(device, dtype, T, fn):
    q, k, v, beta = tensors(2, T, 2, 64, 64, dtype, device)
    h0 = torch.randn(2, 2, 64, 64, generator=torch.Generator().manual_seed(3)).to(device) * 0.1
    o, final = getattr(la, fn)(q, k, v, beta, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, beta=beta, initial_state=h0)
    assert o.dtype == dtype and final.dtype == torch.float32
    assert rel(o, ro) < TOL[dtype], rel(o, ro)
    assert rel(final, rf) < max(TOL[dtype], 2e-5), rel(final, rf)


@pytest.mark.parametrize("device,dtype", CASES)
def test_delta_rule_varlen_and_gradients(device, dtype):
    """Packed sequences with states, and every gradient (q, k, v, beta, h0) against the
    oracle's autograd."""
    q, k, v, beta = tensors(1, 150, 2, 32, 32, dtype, device)
    cu = torch.tensor([0, 10, 10, 150], dtype=torch.int64, device=device)
    h0 = (torch.randn(3, 2, 32, 32, generator=torch.Generator().manual_seed(5)) * 0.1).to(device)
    xs = [x.detach().clone().requires_grad_() for x in (q, k, v, beta, h0)]
    o, final = la.chunk_delta_rule(*xs[:4], initial_state=xs[4], output_final_state=True,
                                   cu_seqlens=cu)
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(6)).to(device)
    dfinal = torch.randn(final.shape, generator=torch.Generator().manual_seed(7)).to(device)
    grads = torch.autograd.grad((o.float() * do).sum() + (final * dfinal).sum(), xs)
    ref = [x.detach().double().cpu().requires_grad_() for x in xs]
    ro, rf = linear_attention_ref(*ref[:3], beta=ref[3], initial_state=ref[4], cu_seqlens=cu)
    want = torch.autograd.grad((ro * do.double().cpu()).sum() + (rf * dfinal.double().cpu()).sum(),
                               ref)
    assert rel(o, ro) < TOL[dtype]
    # Gradients: float32 arithmetic (the adjoint) on inputs rounded to dtype.
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for name, got, w in zip(("q", "k", "v", "beta", "h0"), grads, want):
        assert rel(got, w) < tol, (name, rel(got, w))


def test_fused_recurrent_delta_rule_without_beta_is_beta_one():
    q, k, v, _ = tensors(1, 40, 2, 16, 8, torch.float32, "cpu")
    o, _ = la.fused_recurrent_delta_rule(q, k, v)
    ro, _ = linear_attention_ref(q, k, v, beta=torch.ones(1, 40, 2))
    assert rel(o, ro) < TOL[torch.float32]


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("fn", ["chunk_retention", "fused_recurrent_retention"])
def test_retention_matches_oracle_with_gradients(device, dtype, fn):
    B, T, H = 2, 130, 3
    q, k, v, _ = tensors(B, T, H, 64, 64, dtype, device)
    xs = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    o, final = getattr(la, fn)(*xs, output_final_state=True)
    g = retention_gamma(H).view(1, 1, H).expand(B, T, H)
    ref = [x.detach().double().cpu().requires_grad_() for x in xs]
    ro, rf = linear_attention_ref(*ref, g=g)
    assert rel(o, ro) < TOL[dtype] and rel(final, rf) < max(TOL[dtype], 2e-5)
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(1)).to(device)
    grads = torch.autograd.grad((o.float() * do).sum(), xs)
    want = torch.autograd.grad((ro * do.double().cpu()).sum(), ref)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for got, w in zip(grads, want):
        assert rel(got, w) < tol, rel(got, w)


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("fn", ["chunk_simple_gla", "fused_recurrent_simple_gla"])
def test_g_gamma_is_a_per_head_decay_with_its_gradient(device, dtype, fn):
    """g_gamma [H] is g_t = g_gamma at every step (fla); its gradient is the sum of the
    per-step decay's over batch and time."""
    B, T, H = 2, 100, 2
    q, k, v, _ = tensors(B, T, H, 32, 32, dtype, device)
    gamma = (-torch.rand(H, generator=torch.Generator().manual_seed(2)) * 0.2).to(device)
    xs = [x.detach().clone().requires_grad_() for x in (q, k, v, gamma)]
    o, _ = getattr(la, fn)(*xs[:3], g_gamma=xs[3])
    ref = [x.detach().double().cpu() for x in xs[:3]]
    steps = xs[3].detach().double().cpu().view(1, 1, H).expand(B, T, H).clone().requires_grad_()
    ro, _ = linear_attention_ref(*ref, g=steps)
    assert rel(o, ro) < TOL[dtype], rel(o, ro)
    do = torch.randn(o.shape, generator=torch.Generator().manual_seed(3)).to(device)
    got = torch.autograd.grad((o.float() * do).sum(), xs[3])[0].double().cpu()
    per_step = torch.autograd.grad((ro * do.double().cpu()).sum(), steps)[0]
    want = per_step.sum((0, 1))
    if dtype == torch.float32:
        assert rel(got, want) < 1e-4, rel(got, want)
    else:
        # A sum of B T per-step gradients that partly cancel: its error is measured
        # against the size of its terms (16-bit inputs: about 1e-3 of it).
        err = ((got - want).abs() / per_step.abs().sum((0, 1))).max().item()
        assert err < 1e-2, err


def reversed_oracle(q, k, v, g, initial_state, cu):
    """fla's reverse: each sequence run from its last step to its first."""
    spans = [(0, q.shape[1])] if cu is None else list(zip(cu.tolist(), cu.tolist()[1:]))
    outs, finals = torch.zeros(v.shape, dtype=torch.float64), []
    for n, (a, b) in enumerate(spans):
        flip = lambda x: x[:, a:b].flip(1)  # noqa: E731
        h0 = None if initial_state is None else initial_state[n:n + 1]
        o, f = linear_attention_ref(flip(q), flip(k), flip(v), g=flip(g), initial_state=h0)
        outs[:, a:b] = o.flip(1)
        finals.append(f)
    return outs, torch.cat(finals)


@pytest.mark.parametrize("device,dtype", CASES)
@pytest.mark.parametrize("varlen", [False, True])
def test_reverse_runs_each_sequence_from_its_end(device, dtype, varlen):
    q, k, v, _ = tensors(1, 120, 2, 16, 16, dtype, device)
    g = F.logsigmoid(torch.randn(1, 120, 2, generator=torch.Generator().manual_seed(4))).to(device)
    cu = torch.tensor([0, 50, 50, 120], device=device) if varlen else None
    N = 3 if varlen else 1
    h0 = (torch.randn(N, 2, 16, 16, generator=torch.Generator().manual_seed(8)) * 0.1).to(device)
    o, final = la.fused_recurrent_simple_gla(q, k, v, g, initial_state=h0,
                                             output_final_state=True, reverse=True,
                                             cu_seqlens=cu)
    ro, rf = reversed_oracle(q, k, v, g, h0, None if cu is None else cu.cpu())
    assert rel(o, ro) < TOL[dtype] and rel(final, rf) < max(TOL[dtype], 2e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_value_decay_gv(device):
    """gv [B, T, H, V] decays the state's columns: S_t = S_{t-1} diag(exp(gv_t)) + k v^T."""
    B, T, H, K, V = 2, 70, 2, 8, 16
    q, k, v, _ = tensors(B, T, H, K, V, torch.float32, device)
    gv = F.logsigmoid(torch.randn(B, T, H, V, generator=torch.Generator().manual_seed(9)))
    o, final = la.fused_recurrent_gla(q, k, v, gv=gv.to(device), output_final_state=True)
    S = torch.zeros(B, H, K, V, dtype=torch.float64)
    want = torch.zeros(B, T, H, V, dtype=torch.float64)
    qd, kd, vd, gd = (x.double().cpu() for x in (q, k, v, gv))
    for t in range(T):
        S = S * gd[:, t, :, None, :].exp() + kd[:, t, :, :, None] * vd[:, t, :, None, :]
        want[:, t] = torch.einsum("bhkv,bhk->bhv", S, qd[:, t]) * K ** -0.5
    assert rel(o, want) < TOL[torch.float32] and rel(final, S) < TOL[torch.float32]


def test_state_v_first_takes_and_gives_states_as_v_by_k():
    q, k, v, _ = tensors(2, 30, 2, 16, 8, torch.float32, "cpu")
    g = F.logsigmoid(torch.randn(2, 30, 2, generator=torch.Generator().manual_seed(1)))
    h0 = torch.randn(2, 2, 16, 8, generator=torch.Generator().manual_seed(2))
    o, final = la.chunk_simple_gla(q, k, v, g, initial_state=h0.transpose(-1, -2).contiguous(),
                                   output_final_state=True, state_v_first=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, initial_state=h0)
    assert final.shape == (2, 2, 8, 16)
    assert rel(o, ro) < TOL[torch.float32] and rel(final.transpose(-1, -2), rf) < 2e-5


def test_fla_keyword_arguments_and_unsupported_options():
    q, k, v, beta = tensors(1, 20, 2, 16, 8, torch.float32, "cpu")
    g = torch.zeros(1, 20, 2)
    o32, _ = la.chunk_delta_rule(q, k, v, beta, chunk_size=32)  # fla's choice; same result
    o, _ = la.chunk_delta_rule(q, k, v, beta)
    assert torch.equal(o, o32)
    with pytest.raises(ValueError, match="chunk_delta_rule: chunk_size must be one of"):
        la.chunk_delta_rule(q, k, v, beta, chunk_size=128)
    with pytest.raises(ValueError, match="chunk_simple_gla: chunk_size must be a power of 2"):
        la.chunk_simple_gla(q, k, v, g, chunk_size=48)
    with pytest.raises(ValueError, match="head_first has been removed"):
        la.chunk_retention(q, k, v, head_first=True)
    with pytest.raises(TypeError, match="chunk_gla: unexpected keyword argument.*: bogus"):
        la.chunk_gla(q, k, v, torch.zeros(1, 20, 2, 16), bogus=1)
    with pytest.raises(NotImplementedError, match="use_qk_l2norm_in_kernel=True"):
        la.chunk_delta_rule(q, k, v, beta, use_qk_l2norm_in_kernel=True)
    with pytest.raises(ValueError, match="g .* or g_gamma .*, not both"):
        la.chunk_simple_gla(q, k, v, g, g_gamma=torch.zeros(2))
    with pytest.raises(ValueError, match="g_gamma must be a float tensor of shape \\[heads\\]"):
        la.chunk_simple_gla(q, k, v, g_gamma=torch.zeros(3))
    with pytest.raises(NotImplementedError, match="gk and gv together"):
        la.fused_recurrent_gla(q, k, v, gk=torch.zeros(1, 20, 2, 16), gv=torch.zeros(1, 20, 2, 8))
    with pytest.raises(ValueError, match="gv must be a float tensor of shape \\[1, 20, 2, 8\\]"):
        la.fused_recurrent_gla(q, k, v, gv=torch.zeros(1, 20, 2, 16))
    with pytest.raises(TypeError, match="reverse must be"):
        la.fused_recurrent_retention(q, k, v, reverse="yes")
    with pytest.raises(TypeError, match="state_v_first must be"):
        la.chunk_simple_gla(q, k, v, g, state_v_first="yes")
    with pytest.raises(RuntimeError, match="no gradient through a time-reversed pass"):
        qr = q.clone().requires_grad_()
        la.fused_recurrent_simple_gla(qr, k, v, g, reverse=True)[0].sum().backward()


@pytest.mark.parametrize("device,dtype", CASES)
def test_gated_delta_rule_fla_signature(device, dtype):
    """chunk_gdn is chunk_gated_delta_rule; fla's varlen helpers are accepted; states in
    fla's [N, H, V, K] layout with state_v_first (or its deprecated name)."""
    q, k, v, beta = tensors(1, 90, 2, 32, 32, dtype, device)
    g = F.logsigmoid(torch.randn(1, 90, 2, generator=torch.Generator().manual_seed(3))).to(device)
    cu = torch.tensor([0, 30, 90], dtype=torch.int64, device=device)
    h0 = (torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(4)) * 0.1).to(device)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0, cu_seqlens=cu)
    o, f = la.chunk_gdn(q, k, v, g, beta, initial_state=h0.transpose(-1, -2),
                        output_final_state=True, state_v_first=True, cu_seqlens=cu,
                        cu_seqlens_cpu=cu.cpu(), chunk_indices=None, chunk_size=64)
    assert rel(o, ro) < TOL[dtype] and rel(f.transpose(-1, -2), rf) < max(TOL[dtype], 2e-5)
    o2, f2 = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0.transpose(-1, -2),
                                       output_final_state=True, cu_seqlens=cu,
                                       transpose_state_layout=True)
    assert torch.equal(o2, o) and torch.equal(f2, f)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_recurrent_gated_delta_rule_decays(device):
    """fla's fused_recurrent_gated_delta_rule: g (per head), gk (per key dimension) or
    no decay, beta None = 1, against the oracle."""
    q, k, v, beta = tensors(2, 50, 2, 16, 16, torch.float32, device)
    gen = torch.Generator().manual_seed(5)
    g = F.logsigmoid(torch.randn(2, 50, 2, generator=gen)).to(device)
    gk = F.logsigmoid(torch.randn(2, 50, 2, 16, generator=gen)).to(device)
    for kw, ref_g, ref_beta in (({"g": g, "beta": beta}, g, beta),
                                ({"gk": gk, "beta": beta}, gk, beta),
                                ({"beta": beta}, None, beta),
                                ({"g": g}, g, torch.ones(2, 50, 2))):
        o, f = la.fused_recurrent_gdn(q, k, v, output_final_state=True, **kw)
        ro, rf = linear_attention_ref(q, k, v, g=ref_g, beta=ref_beta)
        assert rel(o, ro) < TOL[torch.float32] and rel(f, rf) < TOL[torch.float32], sorted(kw)


def test_gated_delta_rule_options_not_supported_are_named():
    q, k, v, beta = tensors(1, 20, 2, 16, 8, torch.float32, "cpu")
    g = torch.zeros(1, 20, 2)
    for name in ("use_qk_l2norm_in_kernel", "use_beta_sigmoid_in_kernel"):
        with pytest.raises(NotImplementedError, match=f"chunk_gated_delta_rule: {name}=True"):
            la.chunk_gated_delta_rule(q, k, v, g, beta, **{name: True})
    with pytest.raises(ValueError, match="allow_neg_eigval=True requires use_beta_sigmoid"):
        la.chunk_gated_delta_rule(q, k, v, g, beta, allow_neg_eigval=True)
    with pytest.raises(ValueError, match="A_log must be provided"):
        la.chunk_gated_delta_rule(q, k, v, g, beta, use_gate_in_kernel=True)
    with pytest.raises(NotImplementedError, match="use_gate_in_kernel=True"):
        la.fused_recurrent_gated_delta_rule(q, k, v, g, beta=beta, use_gate_in_kernel=True,
                                            A_log=torch.zeros(2))
    with pytest.raises(NotImplementedError, match="cp_context"):
        la.chunk_gated_delta_rule(q, k, v, g, beta, cp_context=object())
    with pytest.raises(ValueError, match="chunk_size must be one of \\[16, 32, 64\\]"):
        la.chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=128)
    with pytest.raises(NotImplementedError, match="g and gk together"):
        la.fused_recurrent_gated_delta_rule(q, k, v, g, gk=torch.zeros(1, 20, 2, 16), beta=beta)
    with pytest.raises(ValueError, match="state_v_first or the deprecated transpose_state_layout"):
        la.chunk_gated_delta_rule(q, k, v, g, beta, state_v_first=True,
                                  transpose_state_layout=True)


def test_kernel_cache_tells_beta_from_a_gate():
    """A plain delta rule's beta [B, T, H] has the facts (dtype, rank, strides) of a
    simple GLA's gate g: the in-process kernel cache must key on the operands' roles,
    or the kernel compiled for one runs the other's calls (it did: a silent wrong
    answer after a simple GLA call of the same shapes)."""
    q, k, v, beta = tensors(2, 40, 2, 16, 16, torch.float32, "cpu", seed=11)
    la.chunk_simple_gla(q, k, v, F.logsigmoid(beta.clone()))
    o, _ = la.chunk_delta_rule(q, k, v, beta)
    ro, _ = linear_attention_ref(q, k, v, beta=beta)
    assert rel(o, ro) < TOL[torch.float32], rel(o, ro)
