"""mixir.compile: the in-process compiler library through its C ABI."""

import os
import shutil

import pytest

import mixir
from mixir.ops.scan import scan_ir

CUDA = os.environ.get("CUDA_HOME", "/usr/local/cuda")
needs_toolkit = pytest.mark.skipif(not os.path.isdir(os.path.join(CUDA, "nvvm", "libdevice")),
                                   reason="no CUDA toolkit (libdevice) on this host")

IR = scan_ir("bf16", "bf16", "f32", mixir.ops.jagged(k=2), False, True, True, True)


@needs_toolkit
def test_ptx_for_sm90a_has_no_unresolved_externs():
    m = mixir.compile(IR, target="sm_90a")
    ptx = m.ptx
    assert ".target sm_90a" in ptx and ".visible .entry scan_kernel(" in ptx
    assert ".extern .func __nv_" not in ptx          # libdevice linked (log-space exp)
    assert "ex2.approx" in ptx
    (kernel,) = m.metadata["kernels"]
    assert kernel["name"] == "scan_kernel" and kernel["block"] == [128, 1, 1]
    assert m.metadata["target"] == "sm_90a" and m.metadata["format"] == "assembly"


@needs_toolkit
def test_block_and_tile_options():
    m = mixir.compile(IR, target="sm_90a", options="block-size=256 tile-size=64")
    assert m.metadata["kernels"][0]["block"] == [256, 1, 1]


@pytest.mark.skipif(not (shutil.which("ptxas") or os.path.exists("/usr/local/cuda/bin/ptxas")),
                    reason="ptxas not installed")
def test_cubin_through_ptxas():
    m = mixir.compile(IR, target="sm_90a", options="format=bin")
    assert m.binary[:4] == b"\x7fELF" and m.metadata["format"] == "bin"


def test_cpu_module_lookup():
    m = mixir.compile(IR, target="cpu")
    assert m.lookup("_mlir_ciface_scan") != 0
    with pytest.raises(KeyError):
        m.lookup("_mlir_ciface_missing")


def test_diagnostics_are_returned_not_aborted():
    with pytest.raises(mixir.CompileError, match=r"expected window 'global' or 'jagged"):
        mixir.compile("func.func @f() { mixer.scan sliding }")
    bad_k = IR.replace("k = 2", "k = 1").replace(" init(%h0", " init(%h0")
    with pytest.raises(mixir.CompileError, match=r"k = 1 has no carry"):
        mixir.compile(bad_k)
    with pytest.raises(mixir.CompileError, match=r"tile-size 24 must be a positive multiple"):
        mixir.compile(IR, options="tile-size=24")


def test_bad_target():
    with pytest.raises(ValueError, match=r"target must be"):
        mixir.compile(IR, target="gfx90a")


def test_version_matches_the_package():
    """The compiler library reports the version the package was built as (cache keys use it)."""
    import importlib.metadata
    assert mixir.version() == importlib.metadata.version("mixir")
