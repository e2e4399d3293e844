"""The GPU runtime seen from a host without a GPU: generated launch code compiles, loads
and runs, and a missing driver surfaces as a clear error, never a crash."""

import ctypes
import os

import pytest
import torch

import mixir
from mixir import _runtime
from mixir.ops.scan import _descriptor, scan_ir


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
    ir = scan_ir("f32", "f32", "f32", mixir.ops.jagged(k=2), False, False, False, True)
    m = mixir.compile(ir, "sm_90a", "host=1", runtime=_runtime.library_path())
    fn = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 4)(m.lookup("_mlir_ciface_scan"))
    a, h, f = torch.rand(1, 32, 4), torch.empty(1, 32, 4), torch.empty(1, 4)
    descs = [_descriptor(t) for t in (a, a, h, f)]
    before = _runtime.launch_count()
    fn(*[ctypes.addressof(d) for d in descs])
    err = _runtime.take_error()
    assert err and "libcuda.so.1" in err
    assert _runtime.take_error() is None          # taken once
    assert _runtime.launch_count() == before


def test_host_code_needs_the_runtime_library():
    ir = scan_ir("f32", "f32", "f32", mixir.ops.Window(), False, False, False, True)
    with pytest.raises(mixir.CompileError, match="needs the runtime library"):
        mixir.compile(ir, "sm_90a", "host=1")
