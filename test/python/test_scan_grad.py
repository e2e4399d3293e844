"""Gradients of mixir.ops.scan against autograd of the float64 references.

scan_ref_torch (closed form, term by term) is independent of both the compiled
forward and the adjoint-scan backward. Tolerance: 1e-10 relative (float64).
"""

import itertools

import pytest
import torch

import mixir
from mixir.reference import scan_ref, scan_ref_torch
from scan_inputs import random_scan_inputs

WINDOWS = {"global": None, "jagged1": mixir.ops.jagged(block=8, k=1),
           "jagged2": mixir.ops.jagged(block=8, k=2)}


def ref_window(w):
    return None if w is None else ("jagged", w.block, w.k)


def inputs(T, complex_, log_space, with_init, seed):
    dtype = torch.complex128 if complex_ else torch.float64
    a, b, h0 = random_scan_inputs(2, T, 3, dtype, log_space, seed)
    g = torch.Generator().manual_seed(seed + 1)
    wh = torch.randn(2, T, 3, dtype=dtype, generator=g)
    wf = torch.randn(2, 3, dtype=dtype, generator=g)
    return a, b, (h0 if with_init else None), wh, wf


def loss(h, f, wh, wf):
    v = (h * wh).sum() + (f * wf).sum()
    return v.real if v.is_complex() else v


def test_torch_reference_matches_numpy_oracle():
    """The two references agree (they are written differently)."""
    for window, reverse in itertools.product(WINDOWS.values(), [False, True]):
        a, b, h0, _, _ = inputs(21, False, False, window is None or window.k == 2, 1)
        r1, f1 = scan_ref_torch(a, b, h0, reverse=reverse, window=ref_window(window))
        r2, f2 = scan_ref(a, b, h0, reverse=reverse, window=ref_window(window))
        assert torch.allclose(r1, torch.from_numpy(r2), atol=1e-12)
        assert torch.allclose(f1, torch.from_numpy(f2), atol=1e-12)


CASES = [c for c in itertools.product([1, 7, 8, 9, 21, 40], WINDOWS, [False, True],
                                      [False, True], [False, True], [False, True])
         if not (c[1] == "jagged1" and c[5])]


@pytest.mark.parametrize("T,window,reverse,log_space,complex_,with_init", CASES)
def test_gradients_match_reference(T, window, reverse, log_space, complex_, with_init):
    w = WINDOWS[window]
    a, b, h0, wh, wf = inputs(T, complex_, log_space, with_init, hash((T, window)) % 1000)
    leaves = [x.clone().requires_grad_() for x in (a, b) + ((h0,) if with_init else ())]
    h, f = mixir.ops.scan(leaves[0], leaves[1], leaves[2] if with_init else None,
                          reverse=reverse, log_space=log_space, window=w, output_final_state=True)
    got = torch.autograd.grad(loss(h, f, wh, wf), leaves)
    ref_leaves = [x.clone().requires_grad_() for x in leaves]
    rh, rf = scan_ref_torch(ref_leaves[0], ref_leaves[1], ref_leaves[2] if with_init else None,
                            reverse=reverse, log_space=log_space, window=ref_window(w))
    want = torch.autograd.grad(loss(rh, rf, wh, wf), ref_leaves)
    for name, g, r in zip(["a", "b", "initial_state"], got, want):
        err = float(torch.linalg.vector_norm(g - r) / torch.linalg.vector_norm(r).clamp_min(1e-300))
        assert err <= 1e-10, (name, err)


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_fp64(window, reverse):
    w = WINDOWS[window]
    g = torch.Generator().manual_seed(2)
    a = torch.sigmoid(torch.randn(1, 19, 2, dtype=torch.float64, generator=g)).requires_grad_()
    b = torch.randn(1, 19, 2, dtype=torch.float64, generator=g).requires_grad_()
    h0 = torch.randn(1, 2, dtype=torch.float64, generator=g).requires_grad_()
    init = None if (w is not None and w.k == 1) else h0

    def f(a, b, h0):
        h, hT = mixir.ops.scan(a, b, init if init is None else h0, reverse=reverse, window=w,
                               output_final_state=True)
        return h, hT
    assert torch.autograd.gradcheck(f, (a, b, h0 if init is not None else None))


def test_half_precision_gradients_have_input_dtype():
    a = torch.rand(1, 32, 4, dtype=torch.bfloat16, requires_grad=True)
    b = torch.randn(1, 32, 4, dtype=torch.bfloat16, requires_grad=True)
    h, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged())
    h.sum().backward()
    assert a.grad.dtype == torch.bfloat16 and b.grad.dtype == torch.bfloat16


def test_opcheck():
    """Schema, fake kernel, autograd registration and AOT dispatch of torch.ops.mixir.scan."""
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 20, 3, generator=g, requires_grad=True)
    b = torch.randn(2, 20, 3, generator=g, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, requires_grad=True)
    for args in [(a, b, None, False, False, 0, 0), (a, b, h0, True, False, 16, 2),
                 (a, b, None, False, True, 8, 1)]:
        torch.library.opcheck(torch.ops.mixir.scan.default, args)
    h, _ = torch.ops.mixir.scan(a, b, h0, False, True, 16, 2)
    torch.library.opcheck(torch.ops.mixir.scan_backward.default,
                          (a.detach(), b.detach(), h0.detach(), h.detach(), torch.randn_like(h),
                           torch.randn(2, 3), False, True, 16, 2))


def test_gradient_layout_follows_operands():
    """Gradients of channels-by-time operands are channels-by-time (the adjoint then
    stores whole blocks), including a stride-0 gate broadcast over channels (BTP's
    per-head gate); the fake kernel gives the same strides (opcheck), and the values
    match autograd of the float64 reference."""
    g = torch.Generator().manual_seed(5)
    B, D, T = 2, 4, 40
    a = torch.rand(B, 1, T, generator=g, dtype=torch.float64).expand(B, D, T).transpose(1, 2)
    b = torch.randn(B, D, T, generator=g, dtype=torch.float64).transpose(1, 2)
    h, _ = torch.ops.mixir.scan(a, b, None, False, False, 16, 2)
    assert h.stride(1) == 1
    dh = torch.randn(B, D, T, generator=g, dtype=torch.float64).transpose(1, 2)
    args = (a, b, None, h, dh, torch.zeros(B, D, dtype=torch.float64), False, False, 16, 2)
    ga, gb, _ = torch.ops.mixir.scan_backward(*args)
    assert ga.stride(1) == 1 and gb.stride(1) == 1
    torch.library.opcheck(torch.ops.mixir.scan_backward.default, args)
    ra, rb = a.clone().requires_grad_(), b.clone().requires_grad_()
    rh, _ = scan_ref_torch(ra, rb, window=("jagged", 16, 2))
    want = torch.autograd.grad((rh * dh).sum(), (ra, rb))
    for got, ref in zip((ga, gb), want):
        assert float((got - ref).norm() / ref.norm()) <= 1e-12


def test_torch_compile_fullgraph():
    def f(a, b):
        h, hT = mixir.ops.scan(a, b, window=mixir.ops.jagged(), output_final_state=True)
        return h.sum(-1) + 1, hT
    a, b = torch.rand(2, 40, 3), torch.randn(2, 40, 3)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    h, hT = compiled(a, b)
    rh, rT = f(a, b)
    assert torch.equal(h, rh) and torch.equal(hT, rT)


@pytest.mark.parametrize("reverse", [False, True])
def test_torch_compile_backward(reverse):
    """Forward and backward traced by AOTAutograd through the C++ autograd kernel
    (reverse jagged takes the composite adjoint, forward jagged the compiled one)."""
    def f(a, b):
        h, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged(8, 2), reverse=reverse)
        return (h * h).sum()
    g = torch.Generator().manual_seed(7)
    a, b = torch.rand(2, 40, 3, generator=g), torch.randn(2, 40, 3, generator=g)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    la, lb = a.clone().requires_grad_(), b.clone().requires_grad_()
    ga, gb = torch.autograd.grad(compiled(la, lb), (la, lb))
    ra, rb = a.double().requires_grad_(), b.double().requires_grad_()
    hr, _ = scan_ref_torch(ra, rb, None, reverse=reverse, window=("jagged", 8, 2))
    wa, wb = torch.autograd.grad((hr * hr).sum(), (ra, rb))
    assert torch.allclose(ga.double(), wa, rtol=1e-4, atol=1e-5)
    assert torch.allclose(gb.double(), wb, rtol=1e-4, atol=1e-5)


def test_autograd_node_only_when_needed():
    """The C++ autograd kernel records a node only when an input requires grad (and
    grad mode is on); otherwise the call goes straight to the device kernel."""
    a = torch.rand(1, 16, 4, requires_grad=True)
    b = torch.randn(1, 16, 4)
    h, _ = mixir.ops.scan(a, b)
    assert h.grad_fn is not None and h.requires_grad
    with torch.no_grad():
        h, _ = mixir.ops.scan(a, b)
    assert h.grad_fn is None and not h.requires_grad
    h, _ = mixir.ops.scan(a.detach(), b)
    assert h.grad_fn is None
    assert "CppNode" in mixir.ops.scan(a, b)[0].grad_fn.name()  # the C++ node


@pytest.mark.parametrize("T", [300, 530])
@pytest.mark.parametrize("window", ["global", "jagged1", "jagged16_2"])
@pytest.mark.parametrize("log_space", [False, True])
def test_gradients_across_tiles(T, window, log_space):
    """Sequences longer than one 256-step tile: the adjoint's halos (the forward carry
    from the block before a tile, the gradient carry from the block after it) and the
    partial last block must match the reference."""
    w = {"global": None, "jagged1": mixir.ops.jagged(block=16, k=1),
         "jagged16_2": mixir.ops.jagged(block=16, k=2)}[window]
    with_init = window != "jagged1"
    a, b, h0, wh, wf = inputs(T, False, log_space, with_init, T)
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()] + \
        ([h0.clone().requires_grad_()] if with_init else [])
    h, f = mixir.ops.scan(leaves[0], leaves[1], leaves[2] if with_init else None,
                          log_space=log_space, window=w, output_final_state=True)
    got = torch.autograd.grad(loss(h, f, wh, wf), leaves)
    ref_leaves = [x.detach().clone().requires_grad_() for x in leaves]
    rh, rf = scan_ref_torch(ref_leaves[0], ref_leaves[1], ref_leaves[2] if with_init else None,
                            log_space=log_space, window=ref_window(w))
    want = torch.autograd.grad(loss(rh, rf, wh, wf), ref_leaves)
    for name, g, r in zip(["a", "b", "initial_state"], got, want):
        err = float(torch.linalg.vector_norm(g - r) / torch.linalg.vector_norm(r))
        assert err <= 1e-10, (name, err)
