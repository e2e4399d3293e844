"""mixir.ops.scan on a CUDA GPU: the compiled PTX against the float64 oracle.

Skipped with a reason on a host without a GPU (conftest.py). Tolerances as on the
CPU: 1e-5 relative for 32-bit states, 1e-12 for 64-bit; outputs are allocated
uninitialised, so an unwritten element fails.
"""

import itertools

import numpy as np
import pytest
import torch

import mixir
from mixir import runtime
from mixir.reference import scan_ref, scan_ref_torch
from scan_inputs import random_scan_inputs

pytestmark = pytest.mark.gpu

TOL = {torch.float32: 1e-5, torch.complex64: 1e-5, torch.float64: 1e-12, torch.complex128: 1e-12}
WINDOWS = {"global": None, "jagged1": mixir.ops.jagged(k=1), "jagged2": mixir.ops.jagged(k=2)}


def wref(w):
    return None if w is None else ("jagged", w.block, w.k)


def rel_err(x, ref):
    ref = torch.from_numpy(np.ascontiguousarray(ref))
    x = x.cpu().to(ref.dtype)
    assert torch.isfinite(torch.view_as_real(x) if x.is_complex() else x).all(), "non-finite"
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref))


def make(B, T, D, dtype, log_space, seed):
    return random_scan_inputs(B, T, D, dtype, log_space, seed, device="cuda")


def check(a, b, h0, w, reverse, log_space, tol):
    h, hT = mixir.ops.scan(a, b, h0, reverse=reverse, log_space=log_space, window=w,
                           output_final_state=True)
    assert h.is_cuda and hT.is_cuda
    ref, ref_final = scan_ref(a.cpu(), b.cpu(), None if h0 is None else h0.cpu(),
                              reverse=reverse, log_space=log_space, window=wref(w))
    assert rel_err(h, ref) <= tol, rel_err(h, ref)
    assert rel_err(hT, ref_final) <= tol


CASES = [c for c in itertools.product(
    [1, 15, 16, 17, 4099], [torch.float32, torch.float64, torch.complex64],
    WINDOWS, [False, True], [False, True], [False, True]) if not (c[2] == "jagged1" and c[5])]


@pytest.mark.parametrize("T,dtype,window,reverse,log_space,with_init", CASES)
def test_matches_oracle(T, dtype, window, reverse, log_space, with_init):
    w = WINDOWS[window]
    a, b, h0 = make(2, T, 3, dtype, log_space, T + 7 * reverse)
    check(a, b, h0 if with_init else None, w, reverse, log_space, TOL[dtype])


@pytest.mark.parametrize("D", [1, 16, 17, 64, 128, 300])
@pytest.mark.parametrize("window", list(WINDOWS))
def test_block_shapes_for_every_width(D, window):
    """The thread-block shape changes with the channel count; every width is covered."""
    w = WINDOWS[window]
    a, b, h0 = make(3, 1000, D, torch.float32, False, D)
    check(a, b, None if (w is not None and w.k == 1) else h0, w, False, False, 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("window", ["global", "jagged2"])
def test_half_inputs_fp32_state(dtype, window):
    a, b, h0 = make(2, 3000, 64, torch.float32, False, 3)
    a, b = a.to(dtype), b.to(dtype)
    h, hT = mixir.ops.scan(a, b, h0, window=WINDOWS[window], output_final_state=True)
    assert h.dtype == torch.float32
    ref, rf = scan_ref(a.cpu(), b.cpu(), h0.cpu(), window=wref(WINDOWS[window]))
    assert rel_err(h, ref) <= 1e-5 and rel_err(hT, rf) <= 1e-5


def test_non_contiguous():
    a, b, h0 = make(3, 500, 32, torch.float32, False, 5)
    a_tl = a.transpose(1, 2).contiguous().transpose(1, 2)
    b_sl = torch.randn(3, 1000, 64, device="cuda")[:, ::2, ::2]
    shared = torch.sigmoid(torch.randn(3, 500, 1, device="cuda")).expand(3, 500, 32)
    for aa, bb in [(a_tl, b), (a, b_sl), (shared, b_sl)]:
        for w in WINDOWS.values():
            check(aa, bb, None if (w is not None and w.k == 1) else h0, w, False, False, 1e-5)


@pytest.mark.parametrize("window", ["global", "jagged2"])
def test_million_steps(window):
    T = 1 << 20
    a, b, h0 = make(1, T, 8, torch.float32, False, 20)
    check(a, b, h0, WINDOWS[window], False, False, 1e-5)


def test_many_sequences_and_long_channels():
    """A grid with many time tiles (z) and batch rows (y): 64 x 4096 x 2048 channels."""
    a, b, _ = make(64, 512, 2048, torch.float32, False, 21)
    check(a, b, None, WINDOWS["jagged2"], True, False, 1e-5)


@pytest.mark.parametrize("window", list(WINDOWS))
def test_varlen(window):
    w = WINDOWS[window]
    lens = [32, 0, 48, 16, 4096] if w is not None else [5, 0, 17, 1, 3000]
    cu = torch.tensor([0] + list(itertools.accumulate(lens)), dtype=torch.int32, device="cuda")
    a, b, _ = make(1, int(cu[-1]), 8, torch.float32, False, 22)
    h0 = None if w is not None else torch.randn(len(lens), 8, device="cuda")
    h, hT = mixir.ops.scan(a, b, h0, window=w, output_final_state=True, cu_seqlens=cu)
    for i, (s, e) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        if e == s:
            continue
        ref, rf = scan_ref(a[:, s:e].cpu(), b[:, s:e].cpu(),
                           None if h0 is None else h0[i:i + 1].cpu(), window=wref(w))
        assert rel_err(h[:, s:e], ref) <= 1e-5 and rel_err(hT[i:i + 1], rf) <= 1e-5


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_against_float64_reference(window, reverse):
    w = WINDOWS[window] if window == "global" else mixir.ops.jagged(block=8, k=WINDOWS[window].k)
    a, b, h0 = make(2, 37, 3, torch.float64, True, 30)
    with_init = not (w is not None and w.k == 1)
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()] + \
        ([h0.clone().requires_grad_()] if with_init else [])
    h, hT = mixir.ops.scan(*leaves[:2], leaves[2] if with_init else None, reverse=reverse,
                           log_space=True, window=w, output_final_state=True)
    wh, wf = torch.randn_like(h), torch.randn_like(hT)
    got = torch.autograd.grad((h * wh).sum() + (hT * wf).sum(), leaves)
    ref_leaves = [x.detach().cpu().requires_grad_() for x in leaves]
    rh, rf = scan_ref_torch(*ref_leaves[:2], ref_leaves[2] if with_init else None,
                            reverse=reverse, log_space=True, window=wref(w))
    want = torch.autograd.grad((rh * wh.cpu()).sum() + (rf * wf.cpu()).sum(), ref_leaves)
    for g, r in zip(got, want):
        assert float(torch.linalg.vector_norm(g.cpu() - r) / torch.linalg.vector_norm(r)) <= 1e-10


def test_runs_on_current_stream_and_in_cuda_graphs():
    a, b, h0 = make(4, 2048, 64, torch.float32, False, 40)
    ref, _ = mixir.ops.scan(a, b, h0, window=WINDOWS["jagged2"])
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        before = runtime.launch_count()
        h, _ = mixir.ops.scan(a, b, h0, window=WINDOWS["jagged2"])
    s.synchronize()
    assert runtime.launch_count() == before + 1 and torch.equal(h, ref)
    g = torch.cuda.CUDAGraph()
    static_a = a.clone()
    with torch.cuda.graph(g):
        out, _ = mixir.ops.scan(static_a, b, h0, window=WINDOWS["jagged2"])
    static_a.copy_(torch.sigmoid(torch.randn_like(a)))
    g.replay()
    torch.cuda.synchronize()
    want, _ = mixir.ops.scan(static_a, b, h0, window=WINDOWS["jagged2"])
    assert torch.equal(out, want)


def test_opcheck_and_compile_on_gpu():
    a, b, h0 = make(2, 64, 8, torch.float32, False, 50)
    a.requires_grad_(), b.requires_grad_()
    torch.library.opcheck(torch.ops.mixir.scan.default, (a, b, h0, False, False, 16, 2))

    def f(a, b):
        h, _ = mixir.ops.scan(a, b, window=mixir.ops.jagged())
        return torch.relu(h).sum(-1)
    out = torch.compile(f, fullgraph=True)(a, b)
    assert torch.allclose(out, f(a, b))


def test_libraries_coexist_with_triton():
    import triton  # noqa: F401  (its own LLVM in the same process)
    from calls import scan_ir
    x = torch.empty(2, 64, 8, device="meta")
    m = mixir.compile(scan_ir(x, x, x, window=mixir.ops.jagged(), target="sm_90a"),
                      target="sm_90a")
    assert ".entry scan_kernel" in m.ptx


def test_offsets_beyond_int32_take_64bit_kernels(tmp_path, monkeypatch):
    """Kernels index in 32 bits only when every offset fits; a view reaching past 2^31
    elements must take the 64-bit kernels (the op tells the compiler so: the recorded
    call's fact) and still be right."""
    import json
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("MIXIR_RECORD", str(record))
    big = torch.empty(2**31 + 64, dtype=torch.bfloat16, device="cuda")   # 4 GiB
    T, D, far = 3, 16, 2**31 - 8                                          # time stride > 2^31 / 3
    a = big.as_strided((1, T, D), (0, far // 2, 1))
    b = big.as_strided((1, T, D), (0, far // 2, 1), storage_offset=32)
    # a and b overlap in storage (b is a shifted view of a): fill once, read both.
    big[: (far // 2) * (T - 1) + D + 64].uniform_(0.1, 0.9)
    h, hT = mixir.ops.scan(a, b, window=WINDOWS["jagged2"], output_final_state=True)
    ref, rf = scan_ref(a.cpu(), b.cpu(), None, window=wref(WINDOWS["jagged2"]))
    assert rel_err(h, ref) <= 1e-5 and rel_err(hT, rf) <= 1e-5
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c["offsets_fit_i32"] for c in calls if c["op"] == "scan"] == [0]
    del big
    torch.cuda.empty_cache()


@pytest.mark.parametrize("window", ["global", "jagged1", "jagged2"])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_across_tiles(window, reverse):
    """T = 530 spans three 256-step tiles with a partial last block: the compiled adjoint's
    halos against autograd of the float64 reference (bf16 -> fp32 kernels aside, this is
    the fp64 path, 32-bit indexing for the jagged adjoint)."""
    w = WINDOWS[window]
    with_init = not (w is not None and w.k == 1)
    a, b, h0 = make(2, 530, 5, torch.float64, False, 60)
    leaves = [a.clone().requires_grad_(), b.clone().requires_grad_()] + \
        ([h0.clone().requires_grad_()] if with_init else [])
    h, hT = mixir.ops.scan(*leaves[:2], leaves[2] if with_init else None, reverse=reverse,
                           window=w, output_final_state=True)
    wh, wf = torch.randn_like(h), torch.randn_like(hT)
    got = torch.autograd.grad((h * wh).sum() + (hT * wf).sum(), leaves)
    ref_leaves = [x.detach().cpu().requires_grad_() for x in leaves]
    rh, rf = scan_ref_torch(*ref_leaves[:2], ref_leaves[2] if with_init else None,
                            reverse=reverse, window=wref(w))
    want = torch.autograd.grad((rh * wh.cpu()).sum() + (rf * wf.cpu()).sum(), ref_leaves)
    for g, r in zip(got, want):
        assert float(torch.linalg.vector_norm(g.cpu() - r) / torch.linalg.vector_norm(r)) <= 1e-10


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("T", [16, 50, 300, 528, 4099])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("offset", [0, 1])
def test_time_major_layout(dtype, T, reverse, k, offset):
    """Channels-by-time data ([B, D, T] memory, a time-contiguous [B, T, D] view): the
    jagged kernel moves whole blocks with aligned vector accesses when every block
    start is 16-byte aligned (offset 0), scalar accesses otherwise (offset 1)."""
    g = torch.Generator().manual_seed(T + k)
    B, D = 3, 20
    Tp = (T + 1 + 15) // 16 * 16  # rows padded to whole blocks: aligned row starts
    a_mem = torch.rand(B, D, Tp, generator=g, dtype=torch.float64)
    b_mem = torch.randn(B, D, Tp, generator=g, dtype=torch.float64)
    a = a_mem.to(dtype).cuda()[:, :, offset:offset + T].transpose(1, 2)
    b = b_mem.to(dtype).cuda()[:, :, offset:offset + T].transpose(1, 2)
    w = mixir.ops.jagged(16, k)
    h, final = mixir.ops.scan(a, b, reverse=reverse, window=w, output_final_state=True)
    ref_h, ref_f = scan_ref(a.cpu(), b.cpu(), reverse=reverse, window=("jagged", 16, k))
    assert rel_err(h, ref_h) <= 1e-5
    assert rel_err(final, ref_f) <= 1e-5
    assert h.stride(1) == 1  # h is channels-by-time like b


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("T", [16, 50, 531])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("log_space", [False, True])
def test_time_major_gradients(dtype, T, k, offset, log_space):
    """The compiled adjoint on channels-by-time data: whole-block vector loads and
    stores when block starts are 16-byte aligned (offset 0), scalar accesses otherwise
    (offset 1); a stride-0 gate as BTP passes it; an initial state with k = 2. Against
    autograd of the float64 reference, through the same bf16/fp32/fp64 operands. T = 531
    spans 34 one-block tiles with a partial last block (the sequential float64
    reference's autograd costs 27 s at T = 4099 on one core, 1.3 s here)."""
    g = torch.Generator().manual_seed(T + 10 * k + offset)
    B, D = 3, 20
    Tp = (T + 1 + 15) // 16 * 16  # rows padded to whole blocks: aligned row starts
    gate = torch.rand(B, 1, Tp, generator=g, dtype=torch.float64) * 0.9 + 0.05
    if log_space:
        gate = gate.log()
    a = gate.to(dtype).cuda()[:, :, offset:offset + T].expand(B, D, T).transpose(1, 2)
    b_mem = torch.randn(B, D, Tp, generator=g, dtype=torch.float64).to(dtype).cuda()
    b = b_mem[:, :, offset:offset + T].transpose(1, 2)
    state = torch.float64 if dtype == torch.float64 else torch.float32
    h0 = torch.randn(B, D, generator=g, dtype=state).cuda() if k == 2 else None
    leaves = [a.detach().requires_grad_(), b.detach().requires_grad_()] + \
        ([h0.requires_grad_()] if h0 is not None else [])
    h, hT = mixir.ops.scan(leaves[0], leaves[1], h0, log_space=log_space,
                           window=mixir.ops.jagged(16, k), output_final_state=True)
    wh = torch.randn(B, D, T, generator=g, dtype=torch.float64).transpose(1, 2)
    wf = torch.randn(B, D, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((h * wh.to(h)).sum() + (hT * wf.to(hT)).sum(), leaves)
    ref_leaves = [x.detach().cpu().double().requires_grad_() for x in leaves]
    rh, rf = scan_ref_torch(ref_leaves[0], ref_leaves[1],
                            ref_leaves[2] if h0 is not None else None, log_space=log_space,
                            window=("jagged", 16, k))
    want = torch.autograd.grad((rh * wh).sum() + (rf * wf).sum(), ref_leaves)
    # bf16 gradients are rounded once on store (2^-8 relative).
    tol = {torch.bfloat16: 8e-3, torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    for x, r in zip(got, want):
        assert float((x.cpu().double() - r).norm() / r.norm()) <= tol
    assert got[1].stride(1) == 1  # db is channels-by-time like b
