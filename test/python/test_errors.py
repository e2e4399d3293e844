"""Bad input gets a clear error naming the argument, never a crash or a wrong answer."""

import pytest
import torch

import mixir


def rand(*shape, dtype=torch.float32):
    return torch.rand(*shape, dtype=dtype)


@pytest.mark.parametrize("a,b,match", [
    (rand(4, 8), rand(4, 8), r"a must have shape \[batch, time, channels\], got \(4, 8\)"),
    (rand(2, 4, 8), rand(2, 5, 8), r"a and b must have the same shape, got \(2, 4, 8\) and \(2, 5, 8\)"),
    (rand(2, 4, 8), rand(1, 2, 4, 8), r"b must have shape \[batch, time, channels\]"),
])
def test_shapes(a, b, match):
    with pytest.raises(ValueError, match=match):
        mixir.ops.scan(a, b)


def test_dtype():
    with pytest.raises(TypeError, match=r"a has dtype torch.int32"):
        mixir.ops.scan(torch.ones(1, 4, 2, dtype=torch.int32), rand(1, 4, 2))
    with pytest.raises(TypeError, match=r"b must be a torch.Tensor"):
        mixir.ops.scan(rand(1, 4, 2), [[1.0]])


def test_initial_state():
    a = rand(2, 4, 3)
    with pytest.raises(ValueError, match=r"initial_state must have shape \(2, 3\), got \(3, 2\)"):
        mixir.ops.scan(a, a, initial_state=rand(3, 2))
    with pytest.raises(TypeError, match=r"initial_state is complex but a and b are real"):
        mixir.ops.scan(a, a, initial_state=torch.zeros(2, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"k=1 has no carry"):
        mixir.ops.scan(a, a, initial_state=rand(2, 3), window=mixir.ops.jagged(k=1))


def test_window():
    a = rand(1, 4, 2)
    with pytest.raises(ValueError, match=r"window must be None, 'global', 'jagged'"):
        mixir.ops.scan(a, a, window="sliding")
    with pytest.raises(ValueError, match=r"k must be 1 or 2, got 3"):
        mixir.ops.jagged(k=3)
    with pytest.raises(ValueError, match=r"block must be a positive int"):
        mixir.ops.jagged(block=0)


def test_devices():
    a = rand(1, 4, 2)
    with pytest.raises(ValueError, match=r"a is on cpu but b is on meta"):
        mixir.ops.scan(a, torch.empty(1, 4, 2, device="meta"))
    # meta tensors go through the fake kernel: shapes and dtypes only.
    m = torch.empty(3, 5, 2, device="meta", dtype=torch.bfloat16)
    h, hT = mixir.ops.scan(m, m, output_final_state=True)
    assert h.device.type == "meta" and h.shape == (3, 5, 2) and h.dtype == torch.float32
    assert hT.shape == (3, 2)


def test_ops_are_the_cpp_ops():
    """The ops are libmixir_torch.so's (C++ kernels, C++ autograd): no Python path."""
    import mixir.ops._torch as loaded
    assert loaded.LIBRARY.endswith("libmixir_torch.so")
    for op in ("scan", "scan_backward", "linear_attention", "linear_attention_adjoint", "mlstm"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"mixir::{op}", "CPU"), op
    assert torch._C._dispatch_has_kernel_for_dispatch_key("mixir::scan", "Autograd")
