"""mixir.ops.btp (spec 2.7, tests 1-5 and 7) against the float64 step-by-step oracle.

The oracle `mixir.reference.swr_ref` follows the definition of spec 2.1 one time step
at a time; the blockwise PyTorch forms (mixir.nn.phalanx.btp_pytorch*) are checked
against it first, then serve as the differentiable float64 reference for gradients.
Every case runs on the CPU; the same cases run on a GPU when there is one (marker gpu).
"""

import numpy as np
import pytest
import torch

import mixir
from mixir.nn.phalanx import btp_pytorch, btp_pytorch_linspace
from mixir.reference import swr_ref

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def inputs(B, H, L, dtype=torch.float32, seed=0, x_std=1.0, gate_std=1.0):
    g = torch.Generator().manual_seed(seed)
    coeff = torch.sigmoid(gate_std * torch.randn(B, H, L, generator=g, dtype=torch.float64))
    x = x_std * torch.randn(B, H, 16, L, generator=g, dtype=torch.float64)
    return coeff.to(dtype), x.to(dtype)


def errors(y, ref):
    d = (y.double().cpu() - torch.as_tensor(ref)).abs()
    return d.max().item(), d.mean().item(), d.pow(2).mean().sqrt().item()


@pytest.mark.parametrize("k", [1, 2])
def test_blockwise_references_match_oracle(k):
    """Spec 2.7.1: both blockwise forms in float64 agree with the oracle to 1e-12."""
    coeff, x = inputs(2, 3, 80, torch.float64, seed=1)
    coeff[0, 1, 5] = 0.0  # a cut gate (log -inf in the log-space form)
    ref = swr_ref(coeff, x, k)
    for form in (btp_pytorch, btp_pytorch_linspace):
        assert errors(form(coeff, x, k), ref)[0] <= 1e-12


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("L", [16, 32, 48, 512, 4608])
def test_fp32_matches_oracle(device, k, L):
    """Spec 2.7.2 with fp32 inputs: relative error <= 1e-5."""
    coeff, x = inputs(2, 3, L, seed=L + k)
    y = mixir.ops.btp(coeff.to(device), x.to(device), k=k)
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device.type == device
    ref = swr_ref(coeff, x, k)
    assert errors(y, ref)[0] <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("heavy", [False, True])
def test_bf16_limits(device, k, heavy):
    """Spec 2.7.2 with bf16 inputs, fp32 output: upstream's limits (max 6e-2, mean 4e-3,
    rmse 1.2e-2), against the oracle on the bf16-rounded inputs; also the heavy-tail set."""
    coeff, x = inputs(2, 4, 1024, torch.bfloat16, seed=3, x_std=1.5 if heavy else 1.0,
                      gate_std=3.0 if heavy else 1.0)
    y = mixir.ops.btp(coeff.to(device), x.to(device), k=k)
    mx, mean, rmse = errors(y, swr_ref(coeff, x, k))
    assert mx <= 6e-2 and mean <= 4e-3 and rmse <= 1.2e-2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("L", [4096, 8192 + 16, 32768])
def test_long_sequences(device, L):
    """Spec 2.7.5: lengths spanning many thread blocks / tiles, so a carry dropped at a
    tile or block-cluster boundary would show (spec [OBS-1])."""
    coeff, x = inputs(1, 2, L, seed=L)
    y = mixir.ops.btp(coeff.to(device), x.to(device), k=2)
    ref = swr_ref(coeff, x, 2)
    assert errors(y, ref)[0] <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
def test_locality(device, k):
    """Spec 2.7.3: a change of x at t0 moves only outputs in [t0, 16 (block(t0) + k)).
    Gates near 1 in fp64, so every output inside the window visibly moves."""
    coeff, x = inputs(1, 2, 128, torch.float64, seed=5)
    coeff = 0.9 + 0.1 * coeff
    y0 = mixir.ops.btp(coeff.to(device), x.to(device), k=k).cpu()
    for t0 in (0, 15, 16, 37, 127):
        x1 = x.clone()
        x1[0, 1, 3, t0] += 1.0
        y1 = mixir.ops.btp(coeff.to(device), x1.to(device), k=k).cpu()
        moved = (y1 - y0).abs().amax(dim=(0, 1, 2)) > 0
        reach = min(128, 16 * (t0 // 16 + k))
        expect = torch.zeros(128, dtype=torch.bool)
        expect[t0:reach] = True
        assert torch.equal(moved, expect), t0


@pytest.mark.parametrize("device", DEVICES)
def test_exact_against_full_recurrence(device):
    """Spec 2.7.4: with a_{16 beta} = 0 at every even block, k = 2 equals the plain scan."""
    coeff, x = inputs(2, 2, 256, torch.float64, seed=6)
    coeff[..., ::32] = 0.0
    y = mixir.ops.btp(coeff.to(device), x.to(device), k=2).cpu()
    h = torch.zeros(2, 2, 16, dtype=torch.float64)
    for t in range(256):
        h = coeff[:, :, t, None] * h + x[..., t]
        assert torch.allclose(y[..., t], h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
def test_gradients_match_reference(device, k):
    """Gradients of coeff and x against autograd of the float64 blockwise reference
    (itself checked against the oracle); gate gradients by the product form."""
    coeff, x = inputs(2, 3, 64, torch.float64, seed=7)
    coeff[0, 0, 16] = 0.0
    w = torch.randn(2, 3, 16, 64, dtype=torch.float64)
    c1, x1 = coeff.clone().to(device).requires_grad_(), x.clone().to(device).requires_grad_()
    got = torch.autograd.grad((mixir.ops.btp(c1, x1, k=k) * w.to(device)).sum(), (c1, x1))
    c2, x2 = coeff.clone().requires_grad_(), x.clone().requires_grad_()
    want = torch.autograd.grad((btp_pytorch_linspace(c2, x2, k) * w).sum(), (c2, x2))
    for g, r in zip(got, want):
        assert torch.allclose(g.cpu(), r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2])
def test_gradcheck_fp64(k):
    """Spec 2.7.7: gradcheck in fp64, B = 1, H = 2, N = 48."""
    coeff, x = inputs(1, 2, 48, torch.float64, seed=8)
    assert torch.autograd.gradcheck(lambda c, u: mixir.ops.btp(c, u, k=k),
                                    (coeff.requires_grad_(), x.requires_grad_()))


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_backward_limits(device):
    """Spec 2.7.2 backward limits for bf16 inputs (max 0.5, mean 4e-2, rmse 0.15)."""
    coeff, x = inputs(1, 4, 512, torch.bfloat16, seed=9)
    w = torch.randn(1, 4, 16, 512, dtype=torch.float64)
    c1, x1 = coeff.to(device).requires_grad_(), x.to(device).requires_grad_()
    got = torch.autograd.grad((mixir.ops.btp(c1, x1) * w.float().to(device)).sum(), (c1, x1))
    c2, x2 = coeff.double().requires_grad_(), x.double().requires_grad_()
    want = torch.autograd.grad((btp_pytorch(c2, x2) * w).sum(), (c2, x2))
    for g, r in zip(got, want):
        assert g.dtype == torch.bfloat16
        mx, mean, rmse = errors(g, r)
        assert mx <= 0.5 and mean <= 4e-2 and rmse <= 0.15


def test_output_dtype_and_layout():
    coeff, x = inputs(1, 2, 32, torch.bfloat16)
    y = mixir.ops.btp(coeff, x, output_dtype=torch.bfloat16)
    assert y.dtype == torch.bfloat16 and y.is_contiguous()
    assert mixir.ops.btp(coeff.double(), x.double()).dtype == torch.float64
    # A non-contiguous x gives the same answer.
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)
    assert torch.equal(mixir.ops.btp(coeff, xt), mixir.ops.btp(coeff, x))


def test_torch_compile_traces_btp():
    coeff, x = inputs(2, 2, 48)
    f = torch.compile(lambda c, u: mixir.ops.btp(c, u) * 2, fullgraph=True, backend="aot_eager")
    assert torch.allclose(f(coeff, x), mixir.ops.btp(coeff, x) * 2)


@pytest.mark.parametrize("args,match", [
    ((torch.rand(1, 2, 40), torch.rand(1, 2, 16, 40)), "multiple of 16"),
    ((torch.rand(1, 2, 32), torch.rand(1, 2, 8, 32)), "head dim 16"),
    ((torch.rand(1, 3, 32), torch.rand(1, 2, 16, 32)), "does not match coeff"),
    ((torch.rand(2, 32), torch.rand(1, 2, 16, 32)), "coeff must be"),
    ((torch.rand(1, 2, 32).to(torch.int32), torch.rand(1, 2, 16, 32)), "coeff has dtype"),
])
def test_errors(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mixir.ops.btp(*args)


def test_bad_k():
    with pytest.raises(ValueError, match="k must be 1 or 2"):
        mixir.ops.btp(torch.rand(1, 1, 16), torch.rand(1, 1, 16, 16), k=3)


def test_scan_output_layout_follows_time_major_inputs():
    """A time-contiguous b gives a channels-by-time h (what BTP's layout needs), and the
    fake kernel agrees with the real one on those strides (opcheck)."""
    a = torch.rand(2, 5, 40).transpose(1, 2)
    b = torch.randn(2, 5, 40).transpose(1, 2)
    h, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged(16, 2))
    assert h.stride() == (200, 1, 40)
    assert mixir.ops.scan(a.contiguous(), b.contiguous())[0].is_contiguous()
    torch.library.opcheck(torch.ops.mixir.scan.default, (a, b, None, False, False, 16, 2))
