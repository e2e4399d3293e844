"""The runtime: running compiled mixer functions on torch tensors.

libmixir_runtime.so is what generated GPU host code launches through (the `mgpu*`
ABI over a libcuda opened at run time); this module binds it (the caller's stream,
launch errors, device facts) and calls compiled functions with torch tensors: each
memref argument as a strided descriptor, scalars by value, through the function's
packed form (one calling convention for every signature), on the current stream.

    module = mixir.compile(ir, target="sm_90a", options="host=1",
                           runtime=mixir.runtime.library_path())
    mixir.runtime.Function(module, "scan")(a, b, h, final)

The mixir ops do the same in C++ (runtime/torch/Kernels.cpp) without Python.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Optional

import torch

__all__ = ["library_path", "set_stream", "take_error", "launch_count", "device_facts",
           "Function"]


def library_path() -> str:
    env = os.environ.get("MIXIR_RUNTIME_LIBRARY")
    if env:
        return env
    return str(Path(__file__).resolve().parent / "_lib" / "libmixir_runtime.so")


_lib = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        path = library_path()
        if not os.path.exists(path):
            raise ImportError(f"mixir: the runtime library {path} is missing; run "
                              "`bash scripts/setup.sh`")
        lib = ctypes.CDLL(path)
        lib.mixir_runtime_set_stream.argtypes = [ctypes.c_void_p]
        lib.mixir_runtime_take_error.restype = ctypes.c_char_p
        lib.mixir_runtime_launch_count.restype = ctypes.c_uint64
        lib.mixir_runtime_device_facts.restype = ctypes.c_int
        lib.mixir_runtime_device_facts.argtypes = [
            ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)]
        _lib = lib
    return _lib


def set_stream(stream: int) -> None:
    _library().mixir_runtime_set_stream(stream)


def take_error() -> Optional[str]:
    e = _library().mixir_runtime_take_error()
    return e.decode() if e else None


def launch_count() -> int:
    return int(_library().mixir_runtime_launch_count())


def device_facts(index: int) -> dict:
    """What the compiler's strategy is told about CUDA device `index`."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    sms, smem = ctypes.c_int64(), ctypes.c_int64()
    if not _library().mixir_runtime_device_facts(index, ctypes.byref(major), ctypes.byref(minor),
                                                 ctypes.byref(sms), ctypes.byref(smem)):
        raise RuntimeError(f"mixir: cannot read CUDA device {index}: {take_error()}")
    chip = f"sm_{major.value}{minor.value}" + ("a" if major.value == 9 else "")
    return {"chip": chip, "sm_count": sms.value, "shared_memory": smem.value}


def _descriptor_type(rank: int):
    return type(f"MemRef{rank}", (ctypes.Structure,), {"_fields_": [
        ("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
        ("offset", ctypes.c_int64), ("sizes", ctypes.c_int64 * rank),
        ("strides", ctypes.c_int64 * rank)]})


_DESCRIPTORS = {r: _descriptor_type(r) for r in range(1, 7)}


class Function:
    """A host function of a compiled module, called with torch tensors (memrefs) and
    Python floats (scalars: `scalars` maps an argument position to its ctypes type,
    c_float by default for floats); `result`: the ctypes type of its result, if any
    (e.g. c_int64 for an <op>_workspace_bytes function)."""

    def __init__(self, module, name: str, scalars: Optional[dict] = None, result=None):
        fn = module.lookup_packed(f"_mlir_ciface_{name}")
        if not fn:
            raise KeyError(f"mixir: the module has no function {name!r} with a C interface")
        self.module = module  # keeps the code alive
        self.name = name
        self._fn = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p))(fn)
        self._scalars = scalars or {}
        self._result = result
        self._lock = threading.Lock()

    def __call__(self, *args):
        keep = []
        slots = (ctypes.c_void_p * (len(args) + 1))()
        out = self._result() if self._result else None
        if out is not None:
            slots[len(args)] = ctypes.cast(ctypes.pointer(out), ctypes.c_void_p)
        device = None
        for i, x in enumerate(args):
            if isinstance(x, torch.Tensor):
                d = _DESCRIPTORS[x.dim()]()
                d.allocated = d.aligned = x.data_ptr()
                d.offset = 0
                d.sizes[:] = list(x.shape)
                d.strides[:] = list(x.stride())
                ptr = ctypes.pointer(d)
                keep += [d, ptr]
                slots[i] = ctypes.cast(ctypes.pointer(ptr), ctypes.c_void_p)
                if x.is_cuda:
                    device = x.device
            else:
                value = self._scalars.get(i, ctypes.c_float)(x)
                keep.append(value)
                slots[i] = ctypes.cast(ctypes.pointer(value), ctypes.c_void_p)
        with self._lock:
            if device is None:
                self._fn(slots)
                return None if out is None else out.value
            with torch.cuda.device(device):
                set_stream(torch.cuda.current_stream(device).cuda_stream)
                self._fn(slots)
                err = take_error()
        if err:
            raise RuntimeError(f"mixir: {err}")
        return None if out is None else out.value
