"""The GPU runtime seen from a host without a GPU: generated launch code compiles, loads
and runs, and a missing driver surfaces as a clear error, never a crash."""

import ctypes
import os

import pytest
import torch

import mixir
from mixir import runtime
from calls import scan_ir


def _has_libcuda():
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


@pytest.mark.skipif(_has_libcuda(), reason="this host has a CUDA driver")
@pytest.mark.skipif(not os.path.isdir(os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"),
                                                   "nvvm")), reason="no CUDA toolkit (libdevice)")
def test_launch_without_driver_reports_libcuda():
    a, h, f = torch.rand(1, 32, 4), torch.empty(1, 32, 4), torch.empty(1, 4)
    ir = scan_ir(a, a, h, f, window=mixir.ops.jagged(k=2), target="sm_90a")
    m = mixir.compile(ir, "sm_90a", "host=1", runtime=runtime.library_path())
    before = runtime.launch_count()
    runtime.Function(m, "scan")(a, a, h, f)   # host tensors: the launch itself fails
    err = runtime.take_error()
    assert err and "libcuda.so.1" in err
    assert runtime.take_error() is None          # taken once
    assert runtime.launch_count() == before


def test_host_code_needs_the_runtime_library():
    a = torch.empty(1, 8, 4)
    ir = scan_ir(a, a, a, torch.empty(1, 4), target="sm_90a")
    with pytest.raises(mixir.CompileError, match="needs the runtime library"):
        mixir.compile(ir, "sm_90a", "host=1")


def test_cpu_function_runs_compiled_code():
    a, b = torch.rand(2, 40, 3), torch.randn(2, 40, 3)
    h, f = torch.empty(2, 40, 3), torch.empty(2, 3)
    m = mixir.compile(scan_ir(a, b, h, f), "cpu")
    runtime.Function(m, "scan")(a, b, h, f)
    want, want_f = mixir.ops.scan(a, b, output_final_state=True)
    assert torch.equal(h, want) and torch.equal(f, want_f)


def test_device_facts_need_a_driver():
    if _has_libcuda():
        pytest.skip("this host has a CUDA driver")
    with pytest.raises(RuntimeError, match="cannot read CUDA device 0"):
        runtime.device_facts(0)
