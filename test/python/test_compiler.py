"""mixir.compile: the in-process compiler library through its C ABI."""

import os
import shutil

import pytest

import torch

import mixir
from calls import scan_ir

CUDA = os.environ.get("CUDA_HOME", "/usr/local/cuda")
needs_toolkit = pytest.mark.skipif(not os.path.isdir(os.path.join(CUDA, "nvvm", "libdevice")),
                                   reason="no CUDA toolkit (libdevice) on this host")

A = torch.empty(2, 64, 300, dtype=torch.bfloat16, device="meta")
H, S = torch.empty(2, 64, 300, device="meta"), torch.empty(2, 300, device="meta")


def ir(config=None, target="sm_90a"):
    """A log-space jagged bf16 scan with an initial state, as the scan op builds it."""
    return scan_ir(A, A, H, S, init=S, window=mixir.ops.jagged(k=2), log_space=True,
                   config=config, target=target)


IR = ir()


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
def test_a_config_in_the_ir_overrides_the_strategy():
    m = mixir.compile(ir("#mixer.lowering_config<tile = 64, block = [256, 1, 1]>"),
                      target="sm_90a")
    assert m.metadata["kernels"][0]["block"] == [256, 1, 1]


@pytest.mark.skipif(not (shutil.which("ptxas") or os.path.exists("/usr/local/cuda/bin/ptxas")),
                    reason="ptxas not installed")
def test_cubin_through_ptxas():
    m = mixir.compile(IR, target="sm_90a", options="format=bin")
    assert m.binary[:4] == b"\x7fELF" and m.metadata["format"] == "bin"


def test_cpu_module_lookup():
    m = mixir.compile(ir(target="cpu"), target="cpu")
    assert m.lookup("_mlir_ciface_scan") != 0
    with pytest.raises(KeyError):
        m.lookup("_mlir_ciface_missing")


def test_diagnostics_are_returned_not_aborted():
    with pytest.raises(mixir.CompileError, match=r"expected window 'global' or 'jagged"):
        mixir.compile("func.func @f() { mixer.scan sliding }")
    bad_k = IR.replace("k = 2", "k = 1")
    with pytest.raises(mixir.CompileError, match=r"k = 1 has no carry"):
        mixir.compile(bad_k)
    with pytest.raises(mixir.CompileError, match=r"tile 24 must be a positive multiple"):
        mixir.compile(ir("#mixer.lowering_config<tile = 24>", target="cpu"))
    with pytest.raises(mixir.CompileError, match=r"failed to add `mixer-to-nvvm` with options `chip=sm_90a tile-size=64`"):
        mixir.compile(IR, target="sm_90a", options="tile-size=64")


def test_build_call_errors_name_what_is_wrong():
    with pytest.raises(mixir.CompileError, match=r"unknown op 'scann'"):
        mixir.build_call("scann", [])
    with pytest.raises(mixir.CompileError, match=r"scan needs its .gates. operand"):
        mixir.build_call("scan", [mixir.Operand("gate", "f32", [1, 2, 3], [6, 3, 1]),
                                  mixir.Operand("inputs", "f32", [1, 2, 3], [6, 3, 1]),
                                  mixir.Operand("output", "f32", [1, 2, 3], [6, 3, 1])],
                         "{window = #mixer.window<global>}")
    with pytest.raises(mixir.CompileError, match=r"needs its .inputs. operand"):
        mixir.build_call("scan", [mixir.Operand("gates", "f32", [1, 2, 3], [6, 3, 1])])
    with pytest.raises(mixir.CompileError, match=r"takes no attribute 'colour'"):
        mixir.build_call("scan", [mixir.Operand("gates", "f32", [1, 2, 3], [6, 3, 1]),
                                  mixir.Operand("inputs", "f32", [1, 2, 3], [6, 3, 1]),
                                  mixir.Operand("output", "f32", [1, 2, 3], [6, 3, 1])],
                         "{window = #mixer.window<global>, colour}")
    with pytest.raises(mixir.CompileError, match=r"does not make a valid op"):
        mixir.build_call("scan", [mixir.Operand("gates", "f32", [1, 2, 3], [6, 3, 1]),
                                  mixir.Operand("inputs", "f32", [1, 2, 4], [8, 4, 1]),
                                  mixir.Operand("output", "f32", [1, 2, 3], [6, 3, 1])],
                         "{window = #mixer.window<global>}")


def test_built_ir_states_the_facts():
    """Static channels, unit strides where the tensor has them, alignment, target."""
    text = ir()
    assert "memref<?x?x300xbf16, strided<[?, ?, 1], offset: ?>>" in text
    assert "mixer.alignment = 16 : i64" in text and "mixer.offsets_fit_i32" in text
    assert '#mixer.target<chip = "sm_90a">' in text


def test_bad_target():
    with pytest.raises(ValueError, match=r"target must be"):
        mixir.compile(IR, target="gfx90a")


def test_version_matches_the_package():
    """The compiler library reports the version the package was built as (cache keys use it)."""
    import importlib.metadata
    assert mixir.version() == importlib.metadata.version("mixir")
