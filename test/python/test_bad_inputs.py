"""Every public op, given bad input: an error naming the function and the argument, or a
defined result checked numerically (issue 15, item 4).

The matrix, for mixir.ops.scan (global and jagged windows, packed sequences), btp, the
linear attention family, the mLSTM cell and the Phalanx layer (forward, prefill, step):
wrong rank, mismatched shapes, wrong dtypes, malformed cu_seqlens, wrong-shaped or
wrong-dtype states, unknown keywords and non-bool flags are errors; empty inputs, T = 1,
NaN/inf, out-of-range gates and non-contiguous or stride-0 views have defined results,
checked against the float64 references of mixir.reference (or a direct formula) with
tight tolerances. The jagged windows that used to crash the process run in a subprocess,
so a crash fails a test instead of killing pytest. CPU only (device mismatches need a GPU).
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mixir
from mixir.nn import Phalanx
from mixir.nn.phalanx import inference
from mixir.ops import linear_attention as la
from mixir.ops import mlstm
from mixir.reference import linear_attention_ref, mlstm_ref, scan_ref, swr_ref

# The float64 references compute NaN/inf cases too: numpy says so, and is right to.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")

F64 = torch.float64
# float64 kernels against the float64 step-by-step references: the same arithmetic up to
# summation order.
TIGHT = dict(rtol=1e-11, atol=1e-12)


def close(got, want, equal_nan=False, **tol):
    want = torch.as_tensor(np.ascontiguousarray(want)) if isinstance(want, np.ndarray) else want
    torch.testing.assert_close(got.to(want.dtype), want, equal_nan=equal_nan,
                               **(tol or TIGHT))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- Inputs ---------------------------------------------------------------------------

def scan_inputs(B=1, T=4, D=3, dtype=torch.float32, seed=0):
    g = gen(seed)
    return torch.rand(B, T, D, generator=g).to(dtype), torch.randn(B, T, D, generator=g).to(dtype)


def la_inputs(B=1, T=4, H=2, K=4, V=4, dtype=torch.float32, seed=0):
    """q, k, v, a per-head and a per-key log decay, beta and an initial state."""
    g = gen(seed)
    q = torch.randn(B, T, H, K, generator=g)
    k = F.normalize(torch.randn(B, T, H, K, generator=g), dim=-1)
    v = torch.randn(B, T, H, V, generator=g)
    gs = F.logsigmoid(torch.randn(B, T, H, generator=g))
    gv = F.logsigmoid(torch.randn(B, T, H, K, generator=g))
    beta = torch.rand(B, T, H, generator=g)
    h0 = torch.randn(B, H, K, V, generator=g)
    return [x.to(dtype) for x in (q, k, v, gs, gv, beta, h0)]


# name: (decay: None | "scalar" | "vector", delta rule, name of the decay argument)
LA_FNS = {
    "linear_attention": (None, False, "g"),
    "chunk_simple_gla": ("scalar", False, "g"),
    "fused_recurrent_simple_gla": ("scalar", False, "g"),
    "chunk_gla": ("vector", False, "g"),
    "fused_recurrent_gla": ("vector", False, "gk"),
    "chunk_gated_delta_rule": ("scalar", True, "g"),
    "fused_recurrent_gated_delta_rule": ("scalar", True, "g"),
}


def la_call(name, q, k, v, g=None, beta=None, **kw):
    """The op `name` with its positional layout (fla's)."""
    decay, delta, _ = LA_FNS[name]
    fn = getattr(la, name)
    if name == "linear_attention":
        return fn(q, k, v, g=g, beta=beta, **kw)
    if delta:
        return fn(q, k, v, g, beta=beta, **kw)
    return fn(q, k, v, g, **kw)


def la_operands(name, dtype=torch.float32, B=1, T=4, seed=0):
    """(q, k, v, g, beta, h0) for `name` (g and beta None where it takes none)."""
    q, k, v, gs, gv, beta, h0 = la_inputs(B=B, T=T, dtype=dtype, seed=seed)
    decay, delta, _ = LA_FNS[name]
    g = {None: None, "scalar": gs, "vector": gv}[decay]
    return q, k, v, g, (beta if delta else None), h0


def mlstm_inputs(B=1, NH=2, S=4, K=4, V=4, dtype=torch.float32, seed=0):
    g = gen(seed)
    q, k = torch.randn(B, NH, S, K, generator=g), torch.randn(B, NH, S, K, generator=g)
    v = torch.randn(B, NH, S, V, generator=g)
    i, f = torch.randn(B, NH, S, generator=g), torch.randn(B, NH, S, generator=g) + 2.0
    c0 = torch.randn(B, NH, K, V, generator=g) * 0.1
    n0 = torch.randn(B, NH, K, generator=g) * 0.1
    m0 = torch.randn(B, NH, 1, generator=g) * 0.1
    return [x.to(dtype) for x in (q, k, v, i, f, c0, n0, m0)]


def cases(table):
    """pytest params from {id: (thunk, exception, regex)}."""
    return [pytest.param(*case, id=name) for name, case in table.items()]


def check_raises(thunk, exc, match):
    with pytest.raises(exc, match=match):
        thunk()


# --- Errors: scan ----------------------------------------------------------------------

def _scan_errors():
    a, b = scan_inputs(T=8)
    S = mixir.ops.scan
    cu = lambda *v, dtype=torch.int32: torch.tensor(v, dtype=dtype)  # noqa: E731
    P = r"mixir\.ops\.scan: "
    return {
        "a_rank": (lambda: S(a[0], b), ValueError, P + r"a must have shape \[batch, time, channels\]"),
        "b_rank": (lambda: S(a, b[None]), ValueError, P + r"b must have shape"),
        "shape_mismatch": (lambda: S(a, b[:, :5]), ValueError, P + r"a and b must have the same shape"),
        "a_int": (lambda: S(a.int(), b), TypeError, P + r"a has dtype torch.int32"),
        "b_bool": (lambda: S(a, b > 0), TypeError, P + r"b has dtype torch.bool"),
        "b_list": (lambda: S(a, b.tolist()), TypeError, P + r"b must be a torch.Tensor"),
        "h0_shape": (lambda: S(a, b, initial_state=torch.zeros(3, 1)), ValueError,
                     P + r"initial_state must have shape \(1, 3\)"),
        "h0_rank": (lambda: S(a, b, initial_state=torch.zeros(3)), ValueError,
                    P + r"initial_state must have shape"),
        "h0_complex": (lambda: S(a, b, initial_state=torch.zeros(1, 3, dtype=torch.complex64)),
                       TypeError, P + r"initial_state is complex but a and b are real"),
        "h0_int": (lambda: S(a, b, initial_state=torch.zeros(1, 3, dtype=torch.int64)), TypeError,
                   P + r"initial_state has dtype torch.int64"),
        "h0_list": (lambda: S(a, b, initial_state=[[0.0] * 3]), TypeError,
                    P + r"initial_state must be a torch.Tensor"),
        "h0_k1": (lambda: S(a, b, initial_state=torch.zeros(1, 3), window=mixir.ops.jagged(k=1)),
                  ValueError, P + r"a jagged window with k=1 has no carry, so initial_state"),
        "window_str": (lambda: S(a, b, window="sliding"), ValueError, P + r"window must be"),
        "window_int": (lambda: S(a, b, window=16), ValueError, P + r"window must be"),
        "reverse_str": (lambda: S(a, b, reverse="no"), TypeError, P + r"reverse must be a bool"),
        "log_space_2": (lambda: S(a, b, log_space=2), TypeError, P + r"log_space must be a bool"),
        "final_none": (lambda: S(a, b, output_final_state=None), TypeError,
                       P + r"output_final_state must be a bool"),
        "unknown_kw": (lambda: S(a, b, head_first=True), TypeError, r"head_first"),
        "cu_unsorted": (lambda: S(a, b, cu_seqlens=cu(0, 5, 3, 8)), ValueError,
                        P + r"cu_seqlens must start at 0, end at T = 8 and be non-decreasing"),
        "cu_start": (lambda: S(a, b, cu_seqlens=cu(1, 8)), ValueError, P + r"cu_seqlens must start at 0"),
        "cu_end": (lambda: S(a, b, cu_seqlens=cu(0, 4)), ValueError, P + r"cu_seqlens must start at 0"),
        "cu_past_end": (lambda: S(a, b, cu_seqlens=cu(0, 9)), ValueError, P + r"cu_seqlens must start at 0"),
        "cu_float": (lambda: S(a, b, cu_seqlens=cu(0, 8, dtype=torch.float32)), ValueError,
                     P + r"cu_seqlens must be a 1-D int32/int64 tensor"),
        "cu_bool": (lambda: S(a, b, cu_seqlens=cu(0, 1, dtype=torch.bool)), ValueError,
                    P + r"cu_seqlens must be a 1-D int32/int64 tensor"),
        "cu_rank": (lambda: S(a, b, cu_seqlens=cu(0, 8)[None]), ValueError,
                    P + r"cu_seqlens must be a 1-D int32/int64 tensor"),
        "cu_one": (lambda: S(a, b, cu_seqlens=cu(0)), ValueError, P + r"cu_seqlens must be a 1-D"),
        "cu_list": (lambda: S(a, b, cu_seqlens=[0, 8]), ValueError, P + r"cu_seqlens must be a 1-D"),
        "cu_meta": (lambda: S(a, b, cu_seqlens=torch.tensor([0, 8], device="meta")), ValueError,
                    P + r"cu_seqlens is a meta tensor"),
        "cu_batch": (lambda: S(a.expand(2, -1, -1), b.expand(2, -1, -1), cu_seqlens=cu(0, 8)),
                     ValueError, P + r"with cu_seqlens the batch must be 1"),
        "cu_h0_shape": (lambda: S(a, b, initial_state=torch.zeros(1, 3), cu_seqlens=cu(0, 4, 8)),
                        ValueError, P + r"with cu_seqlens initial_state must have shape \(2, 3\)"),
        "cu_h0_complex": (lambda: S(a, b, initial_state=torch.zeros(2, 3, dtype=torch.complex64),
                                    cu_seqlens=cu(0, 4, 8)),
                          TypeError, P + r"initial_state is complex but a and b are real"),
    }


@pytest.mark.parametrize("thunk,exc,match", cases(_scan_errors()))
def test_scan_errors(thunk, exc, match):
    check_raises(thunk, exc, match)


@pytest.mark.parametrize("thunk,match", [
    pytest.param(lambda: mixir.ops.jagged(block=0), r"mixir\.ops\.jagged: block must be a positive int", id="block0"),
    pytest.param(lambda: mixir.ops.jagged(block=-16), r"mixir\.ops\.jagged: block must be a positive", id="negative"),
    pytest.param(lambda: mixir.ops.jagged(block=16.0), r"mixir\.ops\.jagged: block must be a positive int", id="float"),
    pytest.param(lambda: mixir.ops.jagged(block=True), r"mixir\.ops\.jagged: block must be a positive int", id="bool"),
    pytest.param(lambda: mixir.ops.jagged(k=3), r"mixir\.ops\.jagged: k must be 1 or 2, got 3", id="k3"),
    pytest.param(lambda: mixir.ops.jagged(k=True), r"mixir\.ops\.jagged: k must be 1 or 2, got True", id="k_bool"),
    pytest.param(lambda: mixir.ops.Window("jagged", 0, 2), r"mixir\.ops\.Window: block must be a positive int", id="W_block0"),
    pytest.param(lambda: mixir.ops.Window("jagged", 16, 0), r"mixir\.ops\.Window: k must be 1 or 2", id="W_k0"),
    pytest.param(lambda: mixir.ops.Window("sliding", 16, 2), r"mixir\.ops\.Window: kind must be 'global' or 'jagged'", id="W_kind"),
    pytest.param(lambda: mixir.ops.Window("global", 16, 2), r"mixir\.ops\.Window: a global window takes no block", id="W_global_block"),
])
def test_window_errors(thunk, match):
    check_raises(thunk, ValueError, match)


CRASH_SCRIPT = textwrap.dedent("""
    import torch, mixir
    from mixir.ops import linear_attention as la, mlstm
    from mixir.reference import scan_ref, scan_ref_torch
    g = torch.Generator().manual_seed(0)
    # Windows that used to SIGSEGV: a block that is not a multiple of 16 (or of the kernels'
    # tiles), one longer than the sequence, k = 1 and 2, forward, reverse and autograd.
    for block, k, T, reverse in [(24, 2, 50, False), (24, 1, 50, True), (200, 2, 40, False),
                                 (5, 2, 13, True), (3, 1, 7, False)]:
        a = torch.rand(2, T, 4, generator=g, dtype=torch.float64)
        b = torch.randn(2, T, 4, generator=g, dtype=torch.float64)
        h, f = mixir.ops.scan(a, b, reverse=reverse, window=mixir.ops.jagged(block, k),
                              output_final_state=True)
        rh, rf = scan_ref(a, b, reverse=reverse, window=("jagged", block, k))
        torch.testing.assert_close(h, torch.tensor(rh.copy()), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f, torch.tensor(rf.copy()), rtol=1e-12, atol=1e-12)
    # Through autograd (the compiled adjoint), against autograd through the reference.
    for block, k in [(24, 2), (5, 1), (200, 2)]:
        a = torch.rand(1, 30, 3, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(1, 30, 3, generator=g, dtype=torch.float64, requires_grad=True)
        w = torch.randn(1, 30, 3, generator=g, dtype=torch.float64)
        h, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged(block, k))
        got = torch.autograd.grad((h * w).sum(), (a, b))
        rh, _ = scan_ref_torch(a, b, window=("jagged", block, k))
        want = torch.autograd.grad((rh * w).sum(), (a, b))
        for x, y in zip(got, want):
            torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-12)
    # A block beyond the compiler's limit (kMaxJaggedBlock), forward or through autograd,
    # with or without cu_seqlens: right, or a ValueError naming the block; never a crash.
    a = torch.rand(1, 8, 2, dtype=torch.float64, requires_grad=True)
    for block in (512, 10 ** 6):
        for cu in (None, torch.tensor([0, 8])):
            try:
                h, _ = mixir.ops.scan(a, a, window=mixir.ops.jagged(block), cu_seqlens=cu)
            except ValueError as e:
                assert str(e).startswith(f"mixir.ops.scan: window block {block} "), e
            else:
                assert block < 10 ** 6, "accepted a block of a million steps"
                rh, _ = scan_ref(a.detach(), a.detach(), window=("jagged", block, 2))
                torch.testing.assert_close(h.detach(), torch.tensor(rh), rtol=1e-12, atol=1e-12)
                h.sum().backward()
    # Bad windows: a ValueError naming the argument.
    for make, word in ((lambda: mixir.ops.jagged(block=-3), "block"),
                       (lambda: mixir.ops.jagged(k=3), "k must"),
                       (lambda: mixir.ops.Window("jagged", 0, 2), "block"),
                       (lambda: mixir.ops.Window("ragged", 4, 2), "kind")):
        try:
            mixir.ops.scan(a, a, window=make())
        except ValueError as e:
            assert word in str(e), e
        else:
            raise AssertionError("accepted a bad window")
    # A key dimension far beyond the compiler's limit (kMaxKeyDim): a ValueError naming
    # the function, not a compile that never ends.
    q, v = torch.randn(1, 1, 1, 1 << 16), torch.randn(1, 1, 1, 4)
    for name, call in (("chunk_simple_gla", lambda: la.chunk_simple_gla(q, q, v)),
                       ("chunk_gated_delta_rule",
                        lambda: la.chunk_gated_delta_rule(q, q, v, None, torch.ones(1, 1, 1))),
                       ("mlstm.mlstm_chunkwise",
                        lambda: mlstm.mlstm_chunkwise(q, q, v, q[..., 0], q[..., 0]))):
        try:
            call()
        except ValueError as e:
            assert str(e).startswith(f"mixir.ops.{name}: q and k have key dimension 65536"), e
        else:
            raise AssertionError(f"{name} accepted a key dimension of 65536")
    print("ok")
""")


def test_jagged_windows_and_limits_do_not_crash():
    """Run in a subprocess: a SIGSEGV (or a runaway compile) fails this test, not the
    whole session."""
    r = subprocess.run([sys.executable, "-c", CRASH_SCRIPT], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), \
        f"rc {r.returncode}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-4000:]}"


# --- Errors: btp -------------------------------------------------------------------------

def _btp_errors():
    c = torch.rand(1, 2, 16)
    x = torch.randn(1, 2, 16, 16)
    P = r"mixir\.ops\.btp: "
    btp = mixir.ops.btp
    return {
        "coeff_rank": (lambda: btp(c[0], x), ValueError, P + r"coeff must be \[batch, heads, length\]"),
        "x_rank": (lambda: btp(c, x[0]), ValueError, P + r"x must be \[batch, heads, 16, length\]"),
        "x_head_dim": (lambda: btp(c, x[:, :, :8]), ValueError, P + r"x must be \[batch, heads, 16, length\]"),
        "mismatch": (lambda: btp(c, x[:, :1]), ValueError, P + r"x \(1, 1, 16, 16\) does not match coeff"),
        "length": (lambda: btp(c[..., :8], x[..., :8]), ValueError, P + r"length 8 is not a multiple of 16"),
        "coeff_int": (lambda: btp(c.int(), x), TypeError, P + r"coeff has dtype torch.int32"),
        "x_bool": (lambda: btp(c, x > 0), TypeError, P + r"x has dtype torch.bool"),
        "x_complex": (lambda: btp(c, x.to(torch.complex64)), TypeError, P + r"x has dtype torch.complex64"),
        "coeff_list": (lambda: btp(c.tolist(), x), TypeError, P + r"coeff must be a torch.Tensor"),
        "k3": (lambda: btp(c, x, k=3), ValueError, P + r"k must be 1 or 2, got 3"),
        "k_bool": (lambda: btp(c, x, k=True), ValueError, P + r"k must be 1 or 2, got True"),
        "k_float": (lambda: btp(c, x, k=2.0), ValueError, P + r"k must be 1 or 2, got 2.0"),
        "output_dtype": (lambda: btp(c, x, output_dtype=torch.int32), TypeError, P + r"output_dtype must be"),
        "output_dtype_str": (lambda: btp(c, x, output_dtype="float32"), TypeError, P + r"output_dtype must be"),
        "unknown_kw": (lambda: btp(c, x, block=16), TypeError, r"block"),
    }


@pytest.mark.parametrize("thunk,exc,match", cases(_btp_errors()))
def test_btp_errors(thunk, exc, match):
    check_raises(thunk, exc, match)


# --- Errors: linear attention ------------------------------------------------------------

def _la_errors(name):
    decay, delta, gname = LA_FNS[name]
    q, k, v, g, beta, h0 = la_operands(name)
    P = rf"mixir\.ops\.{name}: "
    call = lambda *a, **kw: (lambda: la_call(name, *a, **kw))  # noqa: E731
    cu = lambda *vals, dtype=torch.int32: torch.tensor(vals, dtype=dtype)  # noqa: E731
    t = {
        "q_rank": (call(q[0], k, v, g, beta), ValueError, P + r"q must have shape \[batch, time, heads, dim\]"),
        "k_shape": (call(q, k[..., :2], v, g, beta), ValueError, P + r"k must have the shape of q"),
        "v_time": (call(q, k, v[:, :3], g, beta), ValueError, P + r"v must have shape \[batch, time, value_heads"),
        "v_heads": (call(q, k, v[:, :, :1], g, beta), ValueError, P + r"v must have shape"),
        "q_int": (call(q.int(), k, v, g, beta), TypeError, P + r"q must be float16/bfloat16/float32/float64"),
        "k_bool": (call(q, k > 0, v, g, beta), TypeError, P + r"k must be float16"),
        "v_complex": (call(q, k, v.to(torch.complex64), g, beta), TypeError, P + r"v must be float16"),
        "dtypes": (call(q, k.double(), v, g, beta), TypeError, P + r"q, k and v must share a dtype"),
        "q_list": (call(q.tolist(), k, v, g, beta), TypeError, P + r"q must be a torch.Tensor"),
        "h0_shape": (call(q, k, v, g, beta, initial_state=h0[:, :1]), ValueError,
                     P + r"initial_state must have shape \[sequences, heads, K, V\] = \[1, 2, 4, 4\]"),
        "h0_complex": (call(q, k, v, g, beta, initial_state=h0.to(torch.complex64)), TypeError,
                       P + r"initial_state must be a float16/bfloat16/float32/float64 tensor"),
        "h0_int": (call(q, k, v, g, beta, initial_state=h0.int()), TypeError, P + r"initial_state must be a float16"),
        "h0_bool": (call(q, k, v, g, beta, initial_state=h0 > 0), TypeError, P + r"initial_state must be a float16"),
        "h0_list": (call(q, k, v, g, beta, initial_state=h0.tolist()), TypeError,
                    P + r"initial_state must be a torch.Tensor or None"),
        "cu_unsorted": (call(q, k, v, g, beta, cu_seqlens=cu(0, 3, 1, 4)), ValueError,
                        P + r"cu_seqlens must start at 0, end at T = 4 and be non-decreasing"),
        "cu_start": (call(q, k, v, g, beta, cu_seqlens=cu(1, 4)), ValueError, P + r"cu_seqlens must start at 0"),
        "cu_end": (call(q, k, v, g, beta, cu_seqlens=cu(0, 3)), ValueError, P + r"cu_seqlens must start at 0"),
        "cu_float": (call(q, k, v, g, beta, cu_seqlens=cu(0, 4, dtype=torch.float32)), ValueError,
                     P + r"cu_seqlens must be a 1-D int32/int64 tensor"),
        "cu_rank": (call(q, k, v, g, beta, cu_seqlens=cu(0, 4)[None]), ValueError, P + r"cu_seqlens must be a 1-D"),
        "cu_one": (call(q, k, v, g, beta, cu_seqlens=cu(0)), ValueError, P + r"cu_seqlens must be a 1-D"),
        "cu_list": (call(q, k, v, g, beta, cu_seqlens=[0, 4]), TypeError, P + r"cu_seqlens must be a torch.Tensor"),
        "cu_meta": (call(q, k, v, g, beta, cu_seqlens=torch.tensor([0, 4], device="meta")), ValueError,
                    P + r"cu_seqlens is on meta but q is on cpu"),
        "cu_batch": (lambda: la_call(name, *[None if x is None else x.expand(2, *x.shape[1:])
                                             for x in (q, k, v, g, beta)], cu_seqlens=cu(0, 4)),
                     ValueError, P + r"with cu_seqlens the batch must be 1"),
        "cu_h0": (call(q, k, v, g, beta, initial_state=h0, cu_seqlens=cu(0, 2, 4)), ValueError,
                  P + r"initial_state must have shape \[sequences, heads, K, V\] = \[2, 2, 4, 4\]"),
        "scale_str": (call(q, k, v, g, beta, scale="0.5"), TypeError, P + r"scale must be a real number"),
        "scale_complex": (call(q, k, v, g, beta, scale=1j), TypeError, P + r"scale must be a real number"),
        "final_str": (call(q, k, v, g, beta, output_final_state="yes"), TypeError,
                      P + r"output_final_state must be a bool"),
        "unknown_kw": (call(q, k, v, g, beta, bogus_option=False), TypeError, r"bogus_option"),
    }
    if decay is not None:
        t["g_shape"] = (call(q, k, v, g[..., :1], beta), ValueError, P + rf"{gname} must have shape")
        t["g_int"] = (call(q, k, v, g.int(), beta), TypeError, P + rf"{gname} must be a float tensor")
        t["g_complex"] = (call(q, k, v, g.to(torch.complex64), beta), TypeError,
                          P + rf"{gname} must be a float tensor")
        t["g_list"] = (call(q, k, v, g.tolist(), beta), TypeError, P + rf"{gname} must be a torch.Tensor")
    if delta:
        if name != "fused_recurrent_gated_delta_rule":  # there beta None is 1 (fla's)
            t["beta_none"] = (call(q, k, v, g, None), ValueError, P + r"beta is required")
        t["beta_shape"] = (call(q, k, v, g, beta[..., :1]), ValueError, P + r"beta must have shape \[1, 4, 2\]")
        t["beta_bool"] = (call(q, k, v, g, beta > 0.5), TypeError, P + r"beta must be a float tensor")
    return {f"{name}-{case}": v for case, v in t.items()}


LA_ERRORS = {}
for _name in LA_FNS:
    LA_ERRORS.update(_la_errors(_name))


@pytest.mark.parametrize("thunk,exc,match", cases(LA_ERRORS))
def test_linear_attention_errors(thunk, exc, match):
    check_raises(thunk, exc, match)


# --- Errors: mLSTM -----------------------------------------------------------------------

def _mlstm_errors(name):
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs()
    fn = getattr(mlstm, name)
    P = rf"mixir\.ops\.mlstm\.{name}: "
    call = lambda *a, **kw: (lambda: fn(*a, **kw))  # noqa: E731
    t = {
        "q_rank": (call(q[0], k, v, i, f), ValueError, P + r"q must have shape \[batch, heads, time, head_dim\]"),
        "k_shape": (call(q, k[..., :2], v, i, f), ValueError, P + r"k must have the shape of q"),
        "v_shape": (call(q, k, v[:, :1], i, f), ValueError, P + r"v must have shape"),
        "i_shape": (call(q, k, v, i[..., :3], f), ValueError, P + r"i must have shape \[1, 2, 4\]"),
        "f_rank": (call(q, k, v, i, f[..., None]), ValueError, P + r"f must have shape"),
        "q_int": (call(q.int(), k, v, i, f), TypeError, P + r"q must be float16"),
        "f_bool": (call(q, k, v, i, f > 0), TypeError, P + r"f must be float16"),
        "v_complex": (call(q, k, v.to(torch.complex64), i, f), TypeError, P + r"v must be float16"),
        "dtypes": (call(q, k, v.double(), i, f), TypeError, P + r"q, k and v must share a dtype"),
        "i_list": (call(q, k, v, i.tolist(), f), TypeError, P + r"i must be a torch.Tensor"),
        "partial_states": (call(q, k, v, i, f, c0, n0), ValueError,
                           P + r"c_initial, n_initial and m_initial must be given together"),
        "c_shape": (call(q, k, v, i, f, c0[..., :2], n0, m0), ValueError, P + r"c_initial must have shape \[1, 2, 4, 4\]"),
        "m_shape": (call(q, k, v, i, f, c0, n0, m0[..., 0]), ValueError, P + r"m_initial must have shape \[1, 2, 1\]"),
        "c_complex": (call(q, k, v, i, f, c0.to(torch.complex64), n0, m0), TypeError,
                      P + r"c_initial must be a float16/bfloat16/float32/float64 tensor"),
        "n_int": (call(q, k, v, i, f, c0, n0.int(), m0), TypeError, P + r"n_initial must be a float16"),
        "m_bool": (call(q, k, v, i, f, c0, n0, m0 > 0), TypeError, P + r"m_initial must be a float16"),
        "n_list": (call(q, k, v, i, f, c0, n0.tolist(), m0), TypeError, P + r"n_initial must be a torch.Tensor"),
        "eps_str": (call(q, k, v, i, f, eps="1e-6"), TypeError, P + r"eps must be a real number"),
        "last_str": (call(q, k, v, i, f, return_last_states="yes"), TypeError,
                     P + r"return_last_states must be a bool"),
        "unknown_kw": (call(q, k, v, i, f, qk_scale=0.5), TypeError,
                       P + r"got an unexpected keyword argument 'qk_scale'"),
        "dtype_state": (call(q, k, v, i, f, dtype_state=torch.bfloat16), ValueError,
                        P + r"dtype_state must be torch.float32"),
        "reset_mask": (call(q, k, v, i, f, reset_mask=torch.zeros(1, 4, dtype=torch.bool)),
                       NotImplementedError, P + r"reset_mask is not supported"),
    }
    return {f"{name}-{case}": v for case, v in t.items()}


def _step_errors():
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(S=1)
    q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
    P = r"mixir\.ops\.mlstm\.mlstm_recurrent_step: "
    st = mlstm.mlstm_recurrent_step
    return {
        "step-q_rank": (lambda: st(c0, n0, m0, q[:, :, None], k, v, i, f), ValueError,
                        P + r"q must have shape \[batch, heads, head_dim\]"),
        "step-k_shape": (lambda: st(c0, n0, m0, q, k[..., :2], v, i, f), ValueError, P + r"k must have the shape of q"),
        "step-v_shape": (lambda: st(c0, n0, m0, q, k, v[:, :1], i, f), ValueError, P + r"v must have shape \[1, 2, value_dim\]"),
        "step-i_shape": (lambda: st(c0, n0, m0, q, k, v, i[..., 0], f), ValueError, P + r"i must have shape \[1, 2, 1\]"),
        "step-q_int": (lambda: st(c0, n0, m0, q.int(), k, v, i, f), TypeError, P + r"q must be float16"),
        "step-c_shape": (lambda: st(c0[..., :2], n0, m0, q, k, v, i, f), ValueError, P + r"c must have shape \[1, 2, 4, 4\]"),
        "step-n_shape": (lambda: st(c0, n0[..., :1], m0, q, k, v, i, f), ValueError, P + r"n must have shape \[1, 2, 4\]"),
        "step-m_complex": (lambda: st(c0, n0, m0.to(torch.complex64), q, k, v, i, f), TypeError,
                           P + r"m must be a float16"),
        "step-partial": (lambda: st(c0, None, m0, q, k, v, i, f), ValueError, P + r"c, n and m must be given together"),
        "step-q_list": (lambda: st(c0, n0, m0, q.tolist(), k, v, i, f), TypeError, P + r"q must be a torch.Tensor"),
        "step-unknown_kw": (lambda: st(c0, n0, m0, q, k, v, i, f, foo=1), TypeError,
                            P + r"got an unexpected keyword argument 'foo'"),
    }


MLSTM_ERRORS = {}
for _name in ("mlstm_chunkwise", "mlstm_recurrent_sequence"):
    MLSTM_ERRORS.update(_mlstm_errors(_name))
MLSTM_ERRORS.update(_step_errors())


@pytest.mark.parametrize("thunk,exc,match", cases(MLSTM_ERRORS))
def test_mlstm_errors(thunk, exc, match):
    check_raises(thunk, exc, match)


def test_mlstm_compatibility_keywords_are_ignored():
    """mlstm_kernels' tuning keywords do not change the result; a matching dtype_state and
    reset_mask=None are accepted."""
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(dtype=F64)
    want = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0)
    tuning = dict(chunk_size=128, chunk_size_inter=64, chunk_size_intra=64, siz_b_L_parallel=64,
                  siz_b_L_loop=64, siz_b_DH_parallel=32, siz_b_DH_loop=32, num_warps_intra=4,
                  num_warps_inter=4, num_stages_intra=1, num_stages_inter=1,
                  recompute_states_in_bw=False, autocast_kernel_dtype=torch.bfloat16,
                  dtype_state=F64, reset_mask=None)
    for fn in (mlstm.mlstm_chunkwise, mlstm.mlstm_recurrent_sequence):
        assert torch.equal(fn(q, k, v, i, f, c0, n0, m0, **tuning), want)
    h, _ = mlstm.mlstm_recurrent_step(c0, n0, m0, q[:, :, 0], k[:, :, 0], v[:, :, 0], i[..., :1],
                                      f[..., :1], dtype_state=F64, num_warps=4)
    assert torch.equal(h, want[:, :, 0])


# --- Errors: Phalanx -----------------------------------------------------------------------

LAYER = Phalanx(32)


def _phalanx_errors():
    x = torch.randn(2, 5, 32)
    st = inference.init_state(LAYER, 2)

    def with_state(**fields):
        s = st.clone()
        for key, value in fields.items():
            setattr(s, key, value)
        return lambda: inference.step(LAYER, x[:, 0], s)

    return {
        "dim0": (lambda: Phalanx(dim=0), ValueError, r"Phalanx: dim must be a positive int, got 0"),
        "dim_negative": (lambda: Phalanx(dim=-16), ValueError, r"Phalanx: dim must be a positive int"),
        "dim_float": (lambda: Phalanx(dim=32.0), ValueError, r"Phalanx: dim must be a positive int"),
        "heads0": (lambda: Phalanx(dim=32, heads=0), ValueError, r"Phalanx: heads must be a positive int"),
        "heads_float": (lambda: Phalanx(dim=32, heads=2.0), ValueError, r"Phalanx: heads must be a positive int"),
        "kv_heads0": (lambda: Phalanx(dim=32, kv_heads=0), ValueError, r"Phalanx: kv_heads must be a positive int"),
        "kv_heads3": (lambda: Phalanx(dim=64, kv_heads=3), ValueError, r"Phalanx: kv_heads \(3\) must divide heads \(4\)"),
        "k_bool": (lambda: Phalanx(dim=32, k=True), ValueError, r"Phalanx: k must be 1 or 2"),
        "recurrence_int": (lambda: Phalanx(dim=32, recurrence_dtype=torch.int32), ValueError,
                           r"Phalanx: recurrence_dtype must be one of"),
        "recurrence_complex": (lambda: Phalanx(dim=32, recurrence_dtype=torch.complex64), ValueError,
                               r"Phalanx: recurrence_dtype must be one of"),
        "x_int": (lambda: LAYER(x.long()), TypeError, r"Phalanx: x must be a floating tensor"),
        "x_bool": (lambda: LAYER(x > 0), TypeError, r"Phalanx: x must be a floating tensor"),
        "x_complex": (lambda: LAYER(x.to(torch.complex64)), TypeError, r"Phalanx: x must be a floating tensor"),
        "x_f64": (lambda: LAYER(x.double()), TypeError,
                  r"Phalanx: x has dtype torch.float64 but the layer's parameters are torch.float32"),
        "x_rank": (lambda: LAYER(x[0]), ValueError, r"Phalanx: x must be \[batch, length, 32\]"),
        "x_dim": (lambda: LAYER(x[..., :16]), ValueError, r"Phalanx: x must be \[batch, length, 32\]"),
        "x_list": (lambda: LAYER(x.tolist()), TypeError, r"Phalanx: x must be a torch.Tensor"),
        "method": (lambda: LAYER(x, method="cuda"), ValueError, r"Phalanx: method must be one of"),
        "unknown_kw": (lambda: LAYER(x, window=16), TypeError, r"window"),
        "prefill_int": (lambda: inference.prefill(LAYER, x.long()), TypeError, r"prefill: x must be a floating tensor"),
        "prefill_rank": (lambda: inference.prefill(LAYER, x[0]), ValueError, r"prefill: x must be \[batch, length, 32\]"),
        "prefill_mode": (lambda: inference.prefill(LAYER, x, mode="fast"), ValueError, r"prefill: mode must be"),
        "prefill_layer": (lambda: inference.prefill(torch.nn.Linear(32, 32), x), TypeError,
                          r"prefill: layer must be a mixir.nn.Phalanx"),
        "step_int": (lambda: inference.step(LAYER, x[:, 0].long(), st), TypeError, r"step: x_t must be a floating tensor"),
        "step_rank": (lambda: inference.step(LAYER, x, st), ValueError, r"step: x_t must be \[batch, 32\]"),
        "step_f64": (lambda: inference.step(LAYER, x[:, 0].double(), st), TypeError, r"step: x_t has dtype torch.float64"),
        "step_batch": (lambda: inference.step(LAYER, x[:1, 0], st), ValueError, r"step: the state holds 2 sequences, x_t 1"),
        "step_state_type": (lambda: inference.step(LAYER, x[:, 0], (st.h_loc, st.r)), TypeError,
                            r"step: state must be a JagState"),
        "step_h_loc": (with_state(h_loc=torch.zeros(2, 1, 16)), ValueError,
                       r"step: state.h_loc must have shape \[2, 2, 16\]"),
        "step_r": (with_state(r=torch.ones(2, 2, 1)), ValueError, r"step: state.r must have shape \[2, 2\]"),
        "step_c_prev_int": (with_state(c_prev=torch.zeros(2, 2, 16, dtype=torch.int32)), TypeError,
                            r"step: state.c_prev must be a floating tensor"),
        "step_i_float": (with_state(i=torch.zeros(2)), TypeError, r"step: state.i must be an integer tensor"),
        "step_i_shape": (with_state(i=torch.zeros(2, 1, dtype=torch.long)), ValueError,
                         r"step: state.i must have shape \[2\]"),
        "step_other_layer": (lambda: inference.step(LAYER, x[:, 0], inference.init_state(Phalanx(16), 2)),
                             ValueError, r"step: state.h_loc must have shape \[2, 2, 16\]"),
    }


@pytest.mark.parametrize("thunk,exc,match", cases(_phalanx_errors()))
def test_phalanx_errors(thunk, exc, match):
    check_raises(thunk, exc, match)


def test_phalanx_accepts_other_dtypes_under_autocast():
    """The dtype check defers to autocast, which casts x for the projections itself."""
    x = torch.randn(2, 5, 32, generator=gen(12)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LAYER(x)
        want = LAYER(x.float())  # autocast rounds it to the same bf16 values
    assert torch.equal(got, want)


def test_lowering_config_must_be_a_string():
    q, k, v, g, beta, h0 = la_operands("linear_attention")
    with pytest.raises(TypeError, match=r"mixir\.ops\.linear_attention: lowering_config must be "
                                        r"a str or None, got int"):
        la.linear_attention(q, k, v, lowering_config=3)


# --- Empty inputs: empty outputs, states passed through (global) or zero -----------------

@pytest.mark.parametrize("B,T", [(0, 5), (2, 0)])
@pytest.mark.parametrize("window", [None, (4, 2), (4, 1)])
def test_scan_empty(B, T, window):
    a, b = scan_inputs(B, T, 3, F64)
    a.requires_grad_()
    b.requires_grad_()
    w = None if window is None else mixir.ops.jagged(*window)
    h0 = torch.randn(B, 3, dtype=F64, requires_grad=True) if window != (4, 1) else None
    h, f = mixir.ops.scan(a, b, initial_state=h0, window=w, output_final_state=True)
    assert h.shape == (B, T, 3) and h.dtype == F64 and f.shape == (B, 3)
    # Global: the final state is the initial state; jagged: the (zero) local state.
    want = h0 if (window is None and h0 is not None) else torch.zeros(B, 3, dtype=F64)
    assert torch.equal(f, want)
    cot = torch.randn(B, 3, dtype=F64)
    leaves = [x for x in (a, b, h0) if x is not None]
    grads = torch.autograd.grad((f * cot).sum() + h.sum(), leaves, allow_unused=True)
    assert grads[0].shape == a.shape and grads[1].shape == b.shape
    if h0 is not None:
        # d final / d h0 = identity for the global window, 0 for the jagged one.
        want_g = cot if window is None else torch.zeros_like(cot)
        assert grads[2] is not None and torch.equal(grads[2], want_g)


def test_scan_empty_sequences_in_a_pack():
    """cu_seqlens with empty sequences (T = 0 overall, or an empty one inside): their final
    states are their initial states."""
    a, b = scan_inputs(1, 0, 2, F64)
    h0 = torch.randn(1, 2, dtype=F64)
    h, f = mixir.ops.scan(a, b, initial_state=h0, cu_seqlens=torch.tensor([0, 0]),
                          output_final_state=True)
    assert h.shape == (1, 0, 2) and torch.equal(f, h0)
    a, b = scan_inputs(1, 4, 2, F64)
    h0 = torch.randn(3, 2, dtype=F64)
    h, f = mixir.ops.scan(a, b, initial_state=h0, cu_seqlens=torch.tensor([0, 2, 2, 4]),
                          output_final_state=True)
    assert torch.equal(f[1], h0[1])
    for n, (s, e) in enumerate([(0, 2), (2, 4)]):
        rh, rf = scan_ref(a[:, s:e], b[:, s:e], initial_state=h0[[2 * n]])
        close(h[:, s:e], rh)
        close(f[[2 * n]], rf)


@pytest.mark.parametrize("name", list(LA_FNS))
@pytest.mark.parametrize("B,T", [(0, 3), (2, 0)])
def test_linear_attention_empty(name, B, T):
    q, k, v, g, beta, h0 = la_operands(name, F64, B=B, T=T)
    leaves = [x.requires_grad_() for x in (q, k, v, g, beta, h0) if x is not None]
    o, f = la_call(name, q, k, v, g, beta, initial_state=h0, output_final_state=True)
    assert o.shape == (B, T, 2, 4) and o.dtype == F64
    assert torch.equal(f, h0)
    cot = torch.randn(h0.shape, dtype=F64)
    grads = torch.autograd.grad((f * cot).sum() + o.sum(), leaves)
    assert torch.equal(grads[-1], cot)  # the state passes through: d final / d h0 = 1
    for x, dx in zip(leaves, grads):
        assert dx.shape == x.shape
    _, f0 = la_call(name, q, k, v, g, beta, output_final_state=True)
    assert torch.equal(f0, torch.zeros_like(h0))


@pytest.mark.parametrize("B,S", [(0, 3), (2, 0)])
def test_mlstm_empty(B, S):
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(B=B, S=S, dtype=F64)
    for fn in (mlstm.mlstm_chunkwise, mlstm.mlstm_recurrent_sequence):
        h, (c, n, m) = fn(q, k, v, i, f, c0, n0, m0, return_last_states=True)
        assert h.shape == (B, 2, S, 4)
        assert torch.equal(c, c0) and torch.equal(n, n0) and torch.equal(m, m0)
        h, (c, n, m) = fn(q, k, v, i, f, return_last_states=True)
        assert not c.any() and not n.any() and not m.any() and m.shape == (B, 2, 1)
    if S == 0:  # a step of an empty batch
        q, k, v, i, f, c0, n0, m0 = mlstm_inputs(B=0, S=1, dtype=F64)
        h, (c, n, m) = mlstm.mlstm_recurrent_step(c0, n0, m0, q[:, :, 0], k[:, :, 0],
                                                  v[:, :, 0], i, f)
        assert h.shape == (0, 2, 4) and c.shape == (0, 2, 4, 4) and m.shape == (0, 2, 1)


@pytest.mark.parametrize("B,L", [(0, 16), (1, 0)])
def test_btp_empty(B, L):
    c = torch.rand(B, 2, L, requires_grad=True)
    x = torch.randn(B, 2, 16, L, requires_grad=True)
    y = mixir.ops.btp(c, x)
    assert y.shape == (B, 2, 16, L) and y.dtype == torch.float32
    dc, dx = torch.autograd.grad(y.sum(), (c, x))
    assert dc.shape == c.shape and dx.shape == x.shape


@pytest.mark.parametrize("B,L", [(0, 5), (2, 0)])
def test_phalanx_empty(B, L):
    x = torch.randn(B, L, 32)
    for method in ("default", "pytorch", "pytorch_linspace"):
        assert LAYER(x, method=method).shape == (B, L, 32)
    out, state = inference.prefill(LAYER, x)
    assert out.shape == (B, L, 32)
    if L == 0:  # the state before the first token
        fresh = inference.init_state(LAYER, B)
        for name in ("h_loc", "r", "c_prev", "i"):
            assert torch.equal(getattr(state, name), getattr(fresh, name)), name
    else:
        y, _ = inference.step(LAYER, x[:, 0], state)
        assert y.shape == (0, 32)


# --- T = 1 against the references ---------------------------------------------------------

@pytest.mark.parametrize("window", [None, ("jagged", 4, 2), ("jagged", 4, 1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_one_step(window, reverse):
    a, b = scan_inputs(2, 1, 3, F64)
    h0 = None if window and window[2] == 1 else torch.randn(2, 3, dtype=F64)
    w = None if window is None else mixir.ops.jagged(window[1], window[2])
    h, f = mixir.ops.scan(a, b, initial_state=h0, reverse=reverse, window=w,
                          output_final_state=True)
    # One step: h = a h0 + b (the first block's carry is h0); the jagged final state is
    # the local state b.
    direct = b[:, 0] + (0 if h0 is None else a[:, 0] * h0)
    close(h[:, 0], direct)
    close(f, direct if window is None else b[:, 0])
    rh, rf = scan_ref(a, b, initial_state=h0, reverse=reverse, window=window)
    close(h, rh)
    close(f, rf)


@pytest.mark.parametrize("name", list(LA_FNS))
def test_linear_attention_one_step(name):
    q, k, v, g, beta, h0 = la_operands(name, F64, B=2, T=1)
    o, f = la_call(name, q, k, v, g, beta, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0)
    close(o, ro)
    close(f, rf)


def test_mlstm_one_step():
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(B=2, S=1, dtype=F64)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f, c0, n0, m0)
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0, return_last_states=True)
    for got, want in ((h, rh), (c, rc), (n, rn), (m, rm)):
        close(got, want)
    h, (c, n, m) = mlstm.mlstm_recurrent_step(c0, n0, m0, q[:, :, 0], k[:, :, 0], v[:, :, 0], i, f)
    for got, want in ((h, rh[:, :, 0]), (c, rc), (n, rn), (m, rm)):
        close(got, want)


def test_phalanx_one_step():
    """At T = 1 the recurrence is y = x (zero state): out = W_o (X C + V)."""
    layer = Phalanx(32, kv_heads=1, recurrence_dtype=F64, dtype=F64)
    x = torch.randn(3, 1, 32, dtype=F64, generator=gen(1))
    A, X, C, V = layer.gates(x)
    want = layer.proj_o(X * C + V)
    close(layer(x), want)
    out, state = inference.prefill(layer, x)
    close(out, want)
    y, _ = inference.step(layer, x[:, 0], inference.init_state(layer, 3, x.device))
    close(y, want[:, 0], rtol=1e-5, atol=1e-5)  # the streaming state is float32


# --- NaN and inf: IEEE propagation, as the references compute ------------------------------

def test_scan_nan_and_inf_propagate():
    a, b = scan_inputs(1, 8, 2, F64)
    b[0, 2, 0] = float("nan")
    a[0, 4, 0] = 0.0              # a zero gate after the NaN: 0 * NaN is still NaN
    h, f = mixir.ops.scan(a, b, output_final_state=True)
    rh, rf = scan_ref(a, b)
    close(h, rh, equal_nan=True)
    close(f, rf, equal_nan=True)
    assert not h[0, :2, 0].isnan().any() and h[0, 2:, 0].isnan().all()
    assert not h[0, :, 1].isnan().any()
    # Jagged, block 2, k = 2: the NaN at t = 2 (block 1) reaches blocks 1 and 2 only.
    h, f = mixir.ops.scan(a, b, window=mixir.ops.jagged(2, 2), output_final_state=True)
    rh, rf = scan_ref(a, b, window=("jagged", 2, 2))
    close(h, rh, equal_nan=True)
    close(f, rf, equal_nan=True)
    assert h[0, 2:6, 0].isnan().all() and not h[0, 6:, 0].isnan().any()
    # log space: a log gate of -inf is a zero gate (a reset).
    lg, b2 = scan_inputs(1, 6, 2, F64)
    lg = lg.log()
    lg[0, 2, 0] = float("-inf")
    h, _ = mixir.ops.scan(lg, b2, log_space=True)
    rh, _ = scan_ref(lg, b2, log_space=True)
    close(h, rh)
    close(h[0, 2, 0], b2[0, 2, 0])


@pytest.mark.parametrize("window", [None, ("jagged", 2, 2), ("jagged", 2, 1)])
def test_scan_infinite_gate(window):
    """An infinite gate (or input) makes the states it reaches non-finite, the same states
    as in the reference. Whether one is +-inf or NaN can differ: the jagged kernels add
    the carry's term (inf * carry) to the local state's (inf * b) where the sequential
    reference multiplies their sum once, so opposite signs give inf - inf = NaN there."""
    a, b = scan_inputs(1, 8, 2, F64)
    a[0, 3, 1] = float("inf")
    b[0, 5, 0] = float("-inf")
    w = None if window is None else mixir.ops.jagged(window[1], window[2])
    h, f = mixir.ops.scan(a, b, window=w, output_final_state=True)
    rh, rf = torch.as_tensor(scan_ref(a, b, window=window)[0]), None
    assert torch.equal(h.isfinite(), rh.isfinite())
    assert not h[0, :3].isfinite().logical_not().any()
    close(h[h.isfinite()], rh[rh.isfinite()])
    if window is None:  # the sequential recurrence: the same infinities and NaNs
        close(h, rh, equal_nan=True)


@pytest.mark.parametrize("name,operand", [
    (name, operand) for name in ("chunk_simple_gla", "chunk_gla", "chunk_gated_delta_rule")
    for operand in ("q", "k", "v", "g", "beta") if operand != "beta" or LA_FNS[name][1]])
def test_linear_attention_nan_propagates(name, operand):
    q, k, v, g, beta, h0 = la_operands(name, F64, T=6)
    ops = dict(q=q, k=k, v=v, g=g, beta=beta)
    ops[operand][(0, 2, 1) + (0,) * (ops[operand].dim() - 3)] = float("nan")
    o, f = la_call(name, *ops.values(), initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(*ops.values(), initial_state=h0)
    close(o, ro, equal_nan=True)
    close(f, rf, equal_nan=True)
    assert o.isnan().any()
    assert not o[:, :2].isnan().any()  # nothing before the NaN's step
    if operand == "q":  # q reaches only its own step's output
        assert o[:, 2].isnan().any() and not o[:, 3:].isnan().any() and not f.isnan().any()


@pytest.mark.parametrize("name", ["chunk_simple_gla", "chunk_gla", "chunk_gated_delta_rule"])
@pytest.mark.parametrize("value", [float("-inf"), 0.7, 40.0, float("inf")])
def test_linear_attention_out_of_range_decay(name, value):
    """g is a log decay: -inf is a reset (decay 0), g > 0 a growth exp(g) > 1, +inf an
    infinite state; the op computes exactly what the recurrence says."""
    q, k, v, g, beta, h0 = la_operands(name, F64, T=5)
    g[:, 2] = value
    o, f = la_call(name, q, k, v, g, beta, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0)
    close(o, ro, equal_nan=True)
    close(f, rf, equal_nan=True)


@pytest.mark.parametrize("value", [2.0, -1.0, 0.0])
def test_delta_rule_out_of_range_beta(value):
    """beta outside [0, 1] is taken as given (S += k beta (v - S^T k)^T)."""
    q, k, v, g, beta, h0 = la_operands("chunk_gated_delta_rule", F64, T=5)
    beta[:, 1:3] = value
    o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0, output_final_state=True)
    ro, rf = linear_attention_ref(q, k, v, g=g, beta=beta, initial_state=h0)
    close(o, ro)
    close(f, rf)


@pytest.mark.parametrize("gate", ["i", "f"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 60.0, -60.0])
def test_mlstm_extreme_gates(gate, value):
    """NaN, +-inf and large gate pre-activations: what the stabilised recurrence gives (the
    max-stabiliser keeps exp(60) finite; i = -inf writes nothing; f = +inf keeps the
    state, f = -inf forgets it; NaN propagates)."""
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(S=5, dtype=F64)
    (i if gate == "i" else f)[0, 1, 2] = value
    h, (c, n, m) = mlstm.mlstm_chunkwise(q, k, v, i, f, c0, n0, m0, return_last_states=True)
    rh, (rc, rn, rm) = mlstm_ref(q, k, v, i, f, c0, n0, m0)
    for got, want in ((h, rh), (c, rc), (n, rn), (m, rm)):
        close(got, want, equal_nan=True)
    if value != value:
        assert h[0, 1, 2:].isnan().all() and not h[0, 1, :2].isnan().any()


@pytest.mark.parametrize("value", [float("nan"), 1.5, -0.5, 0.0])
def test_btp_nan_and_out_of_range_gates(value):
    """coeff in [0, 1] is a precondition, not checked: other values give what the
    recurrence gives (spec 2.1 closed form, the float64 reference); NaN stays in its
    block and the next (k = 2)."""
    c = torch.rand(1, 2, 48, dtype=F64, generator=gen(3))
    x = torch.randn(1, 2, 16, 48, dtype=F64, generator=gen(4))
    c[0, 0, 5] = value
    for k in (1, 2):
        y = mixir.ops.btp(c, x, k=k)
        close(y, torch.as_tensor(swr_ref(c, x, k=k)), equal_nan=True)
        if value != value:
            assert y[0, 0, :, 5:16].isnan().all() and not y[0, 0, :, :5].isnan().any()
            if k == 2:  # the carry of block 0 is NaN
                assert y[0, 0, :, 16:32].isnan().all()
            else:
                assert not y[0, 0, :, 16:32].isnan().any()
            assert not y[0, 0, :, 32:].isnan().any() and not y[0, 1].isnan().any()


def test_scan_out_of_range_gates():
    """Gates above 1 (growth) and negative (alternating) are taken as given."""
    a, b = scan_inputs(1, 7, 3, F64)
    a = a * 4 - 2  # in [-2, 2]
    for window in (None, ("jagged", 3, 2)):
        w = None if window is None else mixir.ops.jagged(3, 2)
        h0 = torch.randn(1, 3, dtype=F64)
        h, f = mixir.ops.scan(a, b, initial_state=h0, window=w, output_final_state=True)
        rh, rf = scan_ref(a, b, initial_state=h0, window=window)
        close(h, rh)
        close(f, rf)


# --- Non-contiguous and stride-0 inputs: the numbers of contiguous copies -----------------

def _contiguous(*xs):
    return [None if x is None else x.contiguous() for x in xs]


def test_scan_strided_inputs():
    g = gen(5)
    base_a = torch.rand(1, 9, 1, dtype=F64, generator=g)
    a = base_a.expand(3, 9, 4)                                    # stride 0 over batch, channels
    b = torch.randn(3, 4, 9, dtype=F64, generator=g).transpose(1, 2)  # time-contiguous
    h0 = torch.randn(4, 3, dtype=F64, generator=g).t()            # transposed state
    for window in (None, mixir.ops.jagged(4, 2)):
        h, f = mixir.ops.scan(a, b, initial_state=h0, window=window, output_final_state=True)
        hc, fc = mixir.ops.scan(*_contiguous(a, b), initial_state=h0.contiguous(), window=window,
                                output_final_state=True)
        close(h, hc)
        close(f, fc)
    b_step = torch.randn(3, 18, 4, dtype=F64, generator=g)[:, ::2]  # time stride 2
    close(mixir.ops.scan(a, b_step)[0], mixir.ops.scan(*_contiguous(a, b_step))[0])


@pytest.mark.parametrize("name", ["linear_attention", "chunk_simple_gla", "chunk_gla",
                                  "chunk_gated_delta_rule"])
def test_linear_attention_strided_inputs(name):
    q, k, v, g, beta, h0 = la_operands(name, F64, T=5)
    B = 3
    expand = lambda x: None if x is None else x.expand(B, *x.shape[1:])  # noqa: E731
    qs = q[:, :, :1].expand(B, -1, 2, -1)                          # stride 0: batch, heads
    ks = expand(k.transpose(2, 3).contiguous().transpose(2, 3))   # key dim not innermost
    vs = torch.randn(B, 4, 2, 10, dtype=F64, generator=gen(6)).transpose(1, 3)[:, ::2]
    gs, bs = expand(g), expand(beta)
    h0s = torch.randn(B, 2, 4, 4, dtype=F64, generator=gen(7)).transpose(-1, -2)
    o, f = la_call(name, qs, ks, vs, gs, bs, initial_state=h0s, output_final_state=True)
    oc, fc = la_call(name, *_contiguous(qs, ks, vs, gs, bs), initial_state=h0s.contiguous(),
                     output_final_state=True)
    close(o, oc)
    close(f, fc)


def test_mlstm_strided_inputs():
    q, k, v, i, f, c0, n0, m0 = mlstm_inputs(S=5, dtype=F64)
    B = 3
    qs = q[:, :1].expand(B, 2, -1, -1)
    ks = k.expand(B, -1, -1, -1)
    vs = torch.randn(B, 2, 4, 5, dtype=F64, generator=gen(8)).transpose(2, 3)
    i_s, fs = i.expand(B, -1, -1), f[:, :, None].expand(B, -1, 2, -1)[:, :, 0]
    c0s = c0.expand(B, -1, -1, -1).transpose(-1, -2)
    n0s, m0s = n0.expand(B, -1, -1), m0.expand(B, -1, -1)
    h, st = mlstm.mlstm_chunkwise(qs, ks, vs, i_s, fs, c0s, n0s, m0s, return_last_states=True)
    hc, stc = mlstm.mlstm_chunkwise(*_contiguous(qs, ks, vs, i_s, fs, c0s, n0s, m0s),
                                    return_last_states=True)
    close(h, hc)
    for x, y in zip(st, stc):
        close(x, y)


def test_btp_strided_inputs():
    c = torch.rand(1, 2, 32, dtype=F64, generator=gen(9))
    x = torch.randn(3, 2, 32, 16, dtype=F64, generator=gen(10)).transpose(2, 3)
    cs = c.expand(3, -1, -1)
    for k in (1, 2):
        close(mixir.ops.btp(cs, x, k=k), mixir.ops.btp(cs.contiguous(), x.contiguous(), k=k))


def test_phalanx_strided_input():
    layer = Phalanx(32, recurrence_dtype=F64, dtype=F64)
    x = torch.randn(20, 2, 32, dtype=F64, generator=gen(11)).transpose(0, 1)  # [2, 20, 32]
    close(layer(x), layer(x.contiguous()))
    xe = x[:1].expand(3, -1, -1)
    close(layer(xe), layer(xe.contiguous()))


# --- Allowed casts: lossless or documented rounding, never a warning ----------------------

def test_state_casts_are_silent_and_exact(capfd):
    """A float16 state into a float32 recurrence is exact; a float64 state into a float32
    one is rounded to float32 (documented: the state dtype is the compiler's). Neither
    warns (no warning-and-continue anywhere: the lossy complex -> real casts are errors)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q, k, v, g, beta, h0 = la_operands("chunk_gated_delta_rule", torch.float32)
        for state in (h0.half(), h0.double()):
            o, f = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=state,
                                             output_final_state=True)
            want, _ = la.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=state.float(),
                                                output_final_state=True)
            assert torch.equal(o, want)
        a, b = scan_inputs(1, 4, 3)
        for state in (torch.randn(1, 3).half(), torch.randn(1, 3, dtype=F64)):
            h, _ = mixir.ops.scan(a, b, initial_state=state)
            assert torch.equal(h, mixir.ops.scan(a, b, initial_state=state.float())[0])
        qm, km, vm, im, fm, c0, n0, m0 = mlstm_inputs()
        h = mlstm.mlstm_chunkwise(qm, km, vm, im, fm, c0.double(), n0.half(), m0.double())
        assert torch.equal(h, mlstm.mlstm_chunkwise(qm, km, vm, im, fm, c0, n0.half().float(), m0))
    assert "Warning" not in capfd.readouterr().err


def test_raw_linear_attention_op_refuses_a_complex_state():
    """The C++ op itself (not only the Python front) refuses a lossy state cast."""
    q = torch.randn(1, 2, 1, 4)
    h0 = torch.zeros(1, 1, 4, 4, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="initial_state must be a real floating tensor"):
        torch.ops.mixir.linear_attention(q, q, q, None, None, 1.0, h0, None, True, None, False,
                                         False, None)
