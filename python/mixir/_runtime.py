"""ctypes binding of libmixir_runtime (runtime/include/mixir/runtime/Runtime.h).

Generated host code launches kernels through the runtime's mgpu* functions on
the stream set here: the caller's current torch stream.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["library_path", "set_stream", "take_error", "launch_count"]


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
        _lib = lib
    return _lib


def set_stream(stream: int) -> None:
    _library().mixir_runtime_set_stream(stream)


def take_error() -> str | None:
    e = _library().mixir_runtime_take_error()
    return e.decode() if e else None


def launch_count() -> int:
    return int(_library().mixir_runtime_launch_count())
