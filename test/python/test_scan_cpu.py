"""mixir.ops.scan on the CPU against the float64 oracle (mixir.reference.scan_ref).

Tolerances: relative Frobenius error <= 1e-5 for 32-bit states, <= 1e-12 for
64-bit states (issue 2). Inputs are drawn fresh per case; outputs are compared
on every element, so an unwritten element (torch.empty) fails.
"""

import itertools
import math

import numpy as np
import pytest
import torch

import mixir
from mixir.reference import scan_ref
from scan_inputs import random_scan_inputs

TOL = {torch.float32: 1e-5, torch.complex64: 1e-5, torch.float64: 1e-12, torch.complex128: 1e-12}
WINDOWS = {"global": None, "jagged1": mixir.ops.jagged(k=1), "jagged2": mixir.ops.jagged(k=2)}


def rel_err(x: torch.Tensor, ref: np.ndarray) -> float:
    ref = torch.from_numpy(np.ascontiguousarray(ref))
    x = x.to(ref.dtype)
    assert torch.isfinite(torch.view_as_real(x) if x.is_complex() else x).all(), "non-finite output"
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref))


def make_inputs(B, T, D, dtype, log_space, gen):
    return random_scan_inputs(B, T, D, dtype, log_space, int(gen.initial_seed()))


def window_ref(w):
    return None if w is None else ("jagged", w.block, w.k)


def check(a, b, h0, w, reverse, log_space, tol):
    h, hT = mixir.ops.scan(a, b, initial_state=h0, reverse=reverse, log_space=log_space,
                           window=w, output_final_state=True)
    ref, ref_final = scan_ref(a, b, h0, reverse=reverse, log_space=log_space, window=window_ref(w))
    assert h.shape == a.shape and hT.shape == (a.shape[0], a.shape[2])
    assert rel_err(h, ref) <= tol
    assert rel_err(hT, ref_final) <= tol


# k = 1 has no carry, so it takes no initial state (test_errors covers the rejection).
CASES = [c for c in itertools.product(
    [1, 15, 16, 17, 4099], [torch.float32, torch.float64, torch.complex64, torch.complex128],
    WINDOWS, [False, True], [False, True], [False, True]) if not (c[2] == "jagged1" and c[5])]


@pytest.mark.parametrize("T,dtype,window,reverse,log_space,with_init", CASES,
                         ids=lambda v: str(v).replace("torch.", ""))
def test_matches_oracle(T, dtype, window, reverse, log_space, with_init):
    w = WINDOWS[window]
    gen = torch.Generator().manual_seed(hash((T, str(dtype), window, reverse, log_space)) % 2**31)
    a, b, h0 = make_inputs(2, T, 3, dtype, log_space, gen)
    check(a, b, h0 if with_init else None, w, reverse, log_space, TOL[dtype])


@pytest.mark.parametrize("dtype,window,reverse,log_space", [
    (torch.float32, "global", False, False), (torch.float32, "jagged2", True, True),
    (torch.float64, "jagged2", False, False), (torch.float64, "global", True, True),
    (torch.complex64, "jagged1", False, True), (torch.complex128, "global", False, False),
    (torch.complex128, "jagged2", True, False)])
def test_long_sequence_65536(dtype, window, reverse, log_space):
    gen = torch.Generator().manual_seed(65536)
    w = WINDOWS[window]
    a, b, h0 = make_inputs(1, 65536, 4, dtype, log_space, gen)
    check(a, b, None if (w is not None and w.k == 1) else h0, w, reverse, log_space, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("window", ["global", "jagged2"])
def test_half_inputs_accumulate_in_fp32(dtype, window):
    gen = torch.Generator().manual_seed(3)
    a, b, h0 = make_inputs(2, 300, 5, torch.float32, False, gen)
    a, b = a.to(dtype), b.to(dtype)
    h, hT = mixir.ops.scan(a, b, h0, window=WINDOWS[window], output_final_state=True)
    assert h.dtype == torch.float32 and hT.dtype == torch.float32
    ref, ref_final = scan_ref(a, b, h0, window=window_ref(WINDOWS[window]))
    assert rel_err(h, ref) <= 1e-5 and rel_err(hT, ref_final) <= 1e-5


def test_non_contiguous_inputs():
    """Time-last storage ([B, D, T] transposed), strided slices and broadcast gates."""
    gen = torch.Generator().manual_seed(5)
    a, b, h0 = make_inputs(3, 100, 8, torch.float32, False, gen)
    a_tl = a.transpose(1, 2).contiguous().transpose(1, 2)        # time fastest in memory
    b_sl = torch.randn(3, 200, 16, generator=gen)[:, ::2, ::2]   # strides 2 along T and D
    for aa, bb in [(a_tl, b), (a, b_sl), (a_tl, b_sl)]:
        assert not (aa.is_contiguous() and bb.is_contiguous())
        for w in WINDOWS.values():
            init = None if (w is not None and w.k == 1) else h0[:, ::1]
            check(aa, bb, init, w, False, False, 1e-5)
    # One gate per (batch, time) shared by all channels: a stride-0 view.
    shared = torch.sigmoid(torch.randn(3, 100, 1, generator=gen)).expand(3, 100, 8)
    check(shared, b, h0, mixir.ops.jagged(), True, False, 1e-5)


def test_initial_state_transposed_view():
    gen = torch.Generator().manual_seed(6)
    a, b, _ = make_inputs(4, 40, 6, torch.float64, False, gen)
    h0 = torch.randn(6, 4, dtype=torch.float64, generator=gen).t()
    check(a, b, h0, None, False, False, 1e-12)


@pytest.mark.parametrize("block,k", [(16, 2), (16, 1), (8, 2), (32, 2)])
def test_jagged_locality(block, k):
    """Spec 2.7.3: a change at t0 reaches only [t0, block*(beta(t0)+k))."""
    gen = torch.Generator().manual_seed(7)
    # Gates near 1 so a perturbation stays far above rounding across 2 blocks.
    a = 0.9 + 0.09 * torch.rand(1, 160, 2, dtype=torch.float64, generator=gen)
    b = torch.randn(1, 160, 2, dtype=torch.float64, generator=gen)
    w = mixir.ops.jagged(block=block, k=k)
    base, _ = mixir.ops.scan(a, b, window=w)
    for t0 in (0, 5, block - 1, block, 3 * block + 7, 159):
        bp = b.clone()
        bp[:, t0] += 1.0
        moved = (mixir.ops.scan(a, bp, window=w)[0] - base).abs().amax(dim=(0, 2)) > 0
        reach = min(160, block * (t0 // block + k))
        expect = torch.zeros(160, dtype=torch.bool)
        expect[t0:reach] = True
        assert torch.equal(moved, expect), (t0, moved.nonzero().flatten().tolist())


def test_jagged_exactness_against_full_recurrence():
    """Spec 2.7.4: with a_{16b} = 0 for every even block b, SWR(k=2) equals the plain scan."""
    gen = torch.Generator().manual_seed(8)
    a, b, _ = make_inputs(2, 16 * 37 + 5, 3, torch.float64, False, gen)
    a[:, 0::32] = 0.0
    jag, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged(k=2))
    full, _ = mixir.ops.scan(a, b)
    assert torch.allclose(jag, full, rtol=0, atol=1e-13)


@pytest.mark.parametrize("window", ["global", "jagged2"])
@pytest.mark.parametrize("split", [0, 16, 48, 256, 272])
def test_streaming_continuation(window, split):
    """The final state continues the sequence: scan(x[:s]) then scan(x[s:], init) == scan(x).
    Jagged windows continue at block boundaries (where the carry is one vector)."""
    gen = torch.Generator().manual_seed(9)
    a, b, h0 = make_inputs(2, 300, 4, torch.float64, False, gen)
    w = WINDOWS[window]
    whole, whole_final = mixir.ops.scan(a, b, h0, window=w, output_final_state=True)
    first, carry = mixir.ops.scan(a[:, :split], b[:, :split], h0, window=w, output_final_state=True)
    if window == "jagged2" and split == 0:
        carry = h0  # nothing processed: the first block still takes c_init
    rest, final = mixir.ops.scan(a[:, split:], b[:, split:], carry, window=w, output_final_state=True)
    assert torch.allclose(torch.cat([first, rest], 1), whole, rtol=0, atol=1e-12)
    assert torch.allclose(final, whole_final, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tile", [16, 48, 256, 1024])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("unroll", [1, 3, 8])
@pytest.mark.parametrize("window", ["global", "jagged2"])
def test_tile_size_and_unroll_do_not_change_results(tile, reverse, unroll, window):
    """Tiles must hand the carry across every boundary (a dropped carry shows here), and
    the unrolled main loop with its remainder must cover every step exactly once. The
    shape is forced by a lowering config in the IR (overriding the strategy)."""
    from calls import scan_ir
    gen = torch.Generator().manual_seed(10)
    a, b, h0 = make_inputs(2, 1000, 3, torch.float64, False, gen)
    w = WINDOWS[window] or mixir.ops.Window()
    h, hT = torch.full_like(a, float("nan")), torch.empty(2, 3, dtype=torch.float64)
    ir = scan_ir(a, b, h, hT, init=h0, window=w, reverse=reverse,
                 config=f"#mixer.lowering_config<tile = {tile}, unroll = {unroll}>")
    mixir.runtime.Function(mixir.compile(ir, "cpu"), "scan")(a, b, h0, h, hT)
    ref, ref_final = scan_ref(a, b, h0, reverse=reverse, window=window_ref(WINDOWS[window]))
    assert rel_err(h, ref) <= 1e-12 and rel_err(hT, ref_final) <= 1e-12


def test_zero_gate_cuts_the_recurrence():
    a = torch.full((1, 40, 2), 0.9, dtype=torch.float64)
    b = torch.ones(1, 40, 2, dtype=torch.float64)
    a[:, 20] = 0.0
    h, _ = mixir.ops.scan(a, b)
    assert torch.equal(h[:, 20], torch.ones(1, 2, dtype=torch.float64))
    hl, _ = mixir.ops.scan(torch.where(a > 0, a.log(), torch.tensor(-math.inf, dtype=torch.float64)),
                           b, log_space=True)
    assert torch.allclose(hl, h, rtol=1e-14, atol=0)


def test_empty_sequence():
    a = torch.rand(2, 0, 3)
    h0 = torch.randn(2, 3)
    h, hT = mixir.ops.scan(a, a, h0, output_final_state=True)
    assert h.shape == (2, 0, 3) and torch.equal(hT, h0)


@pytest.mark.parametrize("window", ["global", "jagged1", "jagged2"])
@pytest.mark.parametrize("reverse", [False, True])
def test_varlen_equals_separate_sequences(window, reverse):
    """cu_seqlens: one packed call equals scanning every sequence on its own."""
    w = WINDOWS[window]
    jag = w is not None
    lens = [32, 0, 48, 16, 80] if jag else [5, 0, 17, 1, 33]
    cu = torch.tensor([0] + list(itertools.accumulate(lens)), dtype=torch.int32)
    gen = torch.Generator().manual_seed(11)
    a, b, _ = make_inputs(1, int(cu[-1]), 3, torch.float64, False, gen)
    h0 = None if jag else torch.randn(len(lens), 3, dtype=torch.float64, generator=gen)
    h, hT = mixir.ops.scan(a, b, h0, reverse=reverse, window=w, output_final_state=True,
                           cu_seqlens=cu)
    for i, (s, e) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        init = None if h0 is None else h0[i:i + 1]
        if e > s:
            ref, ref_final = scan_ref(a[:, s:e], b[:, s:e], init, reverse=reverse,
                                      window=window_ref(w))
            assert rel_err(h[:, s:e], ref) <= 1e-12
            expect = torch.from_numpy(ref_final)[0]
        else:  # an empty sequence keeps its initial state
            expect = h0[i] if h0 is not None else torch.zeros(3, dtype=torch.float64)
        assert torch.allclose(hT[i], expect, rtol=1e-12, atol=1e-14)


def test_varlen_errors():
    a = torch.rand(1, 40, 2)
    with pytest.raises(ValueError, match="batch must be 1"):
        mixir.ops.scan(torch.rand(2, 40, 2), torch.rand(2, 40, 2), cu_seqlens=torch.tensor([0, 40]))
    with pytest.raises(ValueError, match="end at T = 40"):
        mixir.ops.scan(a, a, cu_seqlens=torch.tensor([0, 10, 30]))
    with pytest.raises(NotImplementedError, match="start on a multiple of the block"):
        mixir.ops.scan(a, a, window=mixir.ops.jagged(), cu_seqlens=torch.tensor([0, 10, 40]))
    with pytest.raises(ValueError, match=r"one per sequence"):
        mixir.ops.scan(a, a, torch.zeros(1, 2), cu_seqlens=torch.tensor([0, 10, 40]))


def test_clearing_the_compile_cache_keeps_kernels_alive():
    """The C++ op caches function addresses; clearing the compile cache must not free
    them."""
    from mixir import cache
    a = torch.rand(2, 33, 3)
    first, _ = mixir.ops.scan(a, a, window=mixir.ops.jagged(block=8, k=2))
    cache.clear_memory()
    import gc
    gc.collect()
    again, _ = mixir.ops.scan(a, a, window=mixir.ops.jagged(block=8, k=2))
    assert torch.equal(first, again)
