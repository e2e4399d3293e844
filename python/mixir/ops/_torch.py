"""Loads libmixir_torch.so: the C++ torch ops (torch.ops.mixir.*).

Every op's checks of what it is given, output allocation, kernel lookup and launch
happen there, without Python; on a cache miss it builds and compiles the call
through libmixir_c's C ABI. This module only loads it and tells it where the
compiler and the runtime are; the ops' Python modules register fake kernels and
the composite backwards on its schemas.
"""

from __future__ import annotations

import ctypes
import os

import torch

from .. import _compiler, runtime

__all__ = ["LIBRARY", "dtype_name", "torch_dtype", "state_dtype", "as_flag"]

LIBRARY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_lib", "libmixir_torch.so")


def _load() -> None:
    if not os.path.exists(LIBRARY):
        raise ImportError(f"mixir: the torch ops library {LIBRARY} is missing; build it with "
                          "`bash scripts/setup.sh`")
    torch.ops.load_library(LIBRARY)
    lib = ctypes.CDLL(LIBRARY)
    lib.mixir_torch_install.restype = ctypes.c_char_p
    lib.mixir_torch_install.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    _compiler._library()  # one copy of the compiler in the process, loaded by path
    err = lib.mixir_torch_install(str(_compiler.library_path()).encode(),
                                  runtime.library_path().encode())
    if err:
        raise ImportError(f"mixir: {err.decode()}")


_load()

_NAMES = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32",
          torch.float64: "f64", torch.complex64: "c64", torch.complex128: "c128",
          torch.int32: "i32", torch.int64: "i64"}
_DTYPES = {v: k for k, v in _NAMES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    return _NAMES[dtype]


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def state_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype the compiler carries a recurrence over these inputs in (its rule;
    what the fake kernels allocate)."""
    return _DTYPES[_compiler.state_dtype(*[_NAMES[d] for d in dtypes])]


def as_flag(where: str, name: str, x) -> bool:
    """A bool argument of the function `where` (e.g. "mixir.ops.scan"): True/False (or 0/1,
    numpy's bool); anything else is a TypeError naming it, never read by its truth value
    (reverse="no" would reverse)."""
    if type(x) is bool:
        return x
    if (isinstance(x, int) and x in (0, 1)) or type(x).__name__ == "bool_":
        return bool(x)
    raise TypeError(f"{where}: {name} must be a bool, got {x!r}")
