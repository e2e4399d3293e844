"""ctypes binding of libmixir_c (include/mixir-c/Compiler.h).

The library carries its own statically linked MLIR/LLVM with every symbol
hidden except the C ABI, so it can share a process with Triton's LLVM.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

__all__ = ["compile", "CompiledModule", "CompileError", "version", "library_path"]


class CompileError(RuntimeError):
    """The compiler rejected the IR; the message holds MLIR's diagnostics."""


def library_path() -> Path:
    """Where libmixir_c.so is: $MIXIR_LIBRARY, else the package's _lib folder."""
    env = os.environ.get("MIXIR_LIBRARY")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "_lib" / "libmixir_c.so"


_lib = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    if not path.exists():
        raise ImportError(
            f"mixir: the compiler library {path} is missing; build it with "
            "`bash scripts/setup.sh` (or set MIXIR_LIBRARY)")
    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
    lib.mixir_compile_with_runtime.restype = ctypes.c_void_p
    lib.mixir_compile_with_runtime.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p)]
    lib.mixir_load_lowered.restype = ctypes.c_void_p
    lib.mixir_load_lowered.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                       ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.mixir_module_destroy.argtypes = [ctypes.c_void_p]
    lib.mixir_module_lookup.restype = ctypes.c_void_p
    lib.mixir_module_lookup.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.mixir_module_binary.restype = ctypes.c_size_t
    lib.mixir_module_binary.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    for name in ("mixir_module_metadata", "mixir_module_ir"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.mixir_version.restype = ctypes.c_char_p
    lib.mixir_free_string.argtypes = [ctypes.c_void_p]
    _lib = lib
    return lib


def version() -> str:
    """The compiler's version string (part of every kernel cache key)."""
    return _library().mixir_version().decode()


class CompiledModule:
    """A compiled mixer module: host functions (target "cpu") or a GPU binary."""

    def __init__(self, handle: int, target: str):
        self._handle = handle
        self.target = target
        lib = _library()
        self.metadata = json.loads(lib.mixir_module_metadata(handle).decode())
        self.ir = lib.mixir_module_ir(handle).decode()
        data = ctypes.c_void_p()
        size = lib.mixir_module_binary(handle, ctypes.byref(data))
        self.binary = ctypes.string_at(data, size) if size else b""

    def lookup(self, name: str) -> int:
        """Address of a host symbol, e.g. "_mlir_ciface_scan" (modules with host code)."""
        addr = _library().mixir_module_lookup(self._handle, name.encode())
        if not addr:
            raise KeyError(f"symbol {name!r} is not in the compiled module")
        return addr

    @property
    def ptx(self) -> str:
        if self.metadata.get("format") not in ("isa", "assembly"):
            raise ValueError(f"the module holds {self.metadata.get('format')}, not PTX")
        return self.binary.decode()

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle and _lib is not None:
            _lib.mixir_module_destroy(handle)


def compile(ir: str, target: str = "cpu", options: str | None = None,
            runtime: str | None = None) -> CompiledModule:
    """Compiles `mixer` IR text for `target` ("cpu" or a CUDA chip such as "sm_90a").

    `options` are pipeline options (`mixer-to-cpu` / `mixer-to-nvvm`), e.g.
    "tile-size=128" or "format=bin". With "host=1" on a CUDA target the module
    also holds host code that launches its kernels through `runtime` (the path of
    libmixir_runtime.so). Raises CompileError with MLIR's diagnostics.
    """
    if not isinstance(ir, str):
        raise TypeError(f"mixir.compile: ir must be a str, got {type(ir).__name__}")
    if target != "cpu" and not target.startswith("sm_"):
        raise ValueError(f'mixir.compile: target must be "cpu" or a chip like "sm_90a", got {target!r}')
    lib = _library()
    err = ctypes.c_void_p()
    data = ir.encode()
    handle = lib.mixir_compile_with_runtime(
        data, len(data), target.encode(), options.encode() if options else None,
        runtime.encode() if runtime else None, ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target)


def load_lowered(ir: str, target: str, runtime: str | None = None) -> CompiledModule:
    """Reloads a module that a pipeline already lowered (CompiledModule.ir): no pass runs."""
    lib = _library()
    err = ctypes.c_void_p()
    data = ir.encode()
    handle = lib.mixir_load_lowered(data, len(data), target.encode(),
                                    runtime.encode() if runtime else None, ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target)


def _module_or_raise(lib, handle, err, target) -> CompiledModule:
    if not handle:
        message = ctypes.string_at(err).decode(errors="replace") if err else "unknown error"
        if err:
            lib.mixir_free_string(err)
        raise CompileError(message)
    return CompiledModule(handle, target)
