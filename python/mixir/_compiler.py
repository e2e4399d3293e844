"""ctypes binding of libmixir_c (include/mixir-c/Compiler.h and Calls.h).

The library carries its own statically linked MLIR/LLVM with every symbol
hidden except the C ABI, so it can share a process with Triton's LLVM. This
module is the only Python code that talks to it: compiling IR text (mixir.compile),
the compile cache (mixir.cache), calls built from facts (mixir.build_call), and
the state dtype rule the ops' fake kernels need.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["compile", "compile_cached", "load_lowered", "CompiledModule", "CompileError",
           "version", "library_path", "Operand", "build_call", "compile_call", "state_dtype"]


class CompileError(RuntimeError):
    """The compiler rejected the IR; the message holds MLIR's diagnostics."""


def library_path() -> Path:
    """Where libmixir_c.so is: $MIXIR_LIBRARY, else the package's _lib folder."""
    env = os.environ.get("MIXIR_LIBRARY")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "_lib" / "libmixir_c.so"


MAX_RANK = 6


class _Operand(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("sizes", ctypes.c_int64 * MAX_RANK), ("strides", ctypes.c_int64 * MAX_RANK),
                ("alignment", ctypes.c_uint32)]


class _Call(ctypes.Structure):
    _fields_ = [("op", ctypes.c_char_p), ("operands", ctypes.POINTER(_Operand)),
                ("num_operands", ctypes.c_size_t), ("attributes", ctypes.c_char_p),
                ("target", ctypes.c_char_p), ("sm_count", ctypes.c_int64),
                ("shared_memory", ctypes.c_int64), ("offsets_fit_i32", ctypes.c_int32)]


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
    err = ctypes.POINTER(ctypes.c_void_p)
    sig = {
        "mixir_compile_with_runtime": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t,
                                                         ctypes.c_char_p, ctypes.c_char_p,
                                                         ctypes.c_char_p, err]),
        "mixir_compile_cached": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t,
                                                   ctypes.c_char_p, ctypes.c_char_p,
                                                   ctypes.c_char_p, err]),
        "mixir_load_lowered": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t,
                                                 ctypes.c_char_p, ctypes.c_char_p, err]),
        "mixir_cache_key": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                              ctypes.c_char_p]),
        "mixir_cache_stats": (None, [ctypes.POINTER(ctypes.c_uint64)]),
        "mixir_cache_clear_memory": (None, []),
        "mixir_module_destroy": (None, [ctypes.c_void_p]),
        "mixir_module_lookup": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
        "mixir_module_lookup_packed": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
        "mixir_module_binary": (ctypes.c_size_t, [ctypes.c_void_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]),
        "mixir_module_metadata": (ctypes.c_char_p, [ctypes.c_void_p]),
        "mixir_module_ir": (ctypes.c_char_p, [ctypes.c_void_p]),
        "mixir_module_static_dims": (ctypes.c_size_t, [ctypes.c_void_p,
                                                       ctypes.POINTER(ctypes.c_void_p)]),
        "mixir_version": (ctypes.c_char_p, []),
        "mixir_free_string": (None, [ctypes.c_void_p]),
        "mixir_build_call": (ctypes.c_void_p, [ctypes.POINTER(_Call), err]),
        "mixir_compile_call": (ctypes.c_void_p, [ctypes.POINTER(_Call), ctypes.c_char_p, err]),
        "mixir_state_dtype": (ctypes.c_int32, [ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    _lib = lib
    return lib


def version() -> str:
    """The compiler's version string (part of every kernel cache key)."""
    return _library().mixir_version().decode()


def _take_string(lib, ptr) -> str:
    text = ctypes.string_at(ptr).decode(errors="replace")
    lib.mixir_free_string(ptr)
    return text


class CompiledModule:
    """A compiled mixer module: host functions (target "cpu", or GPU launch code with
    host=1) and/or a GPU binary. `cached` modules belong to the compile cache."""

    def __init__(self, handle: int, target: str, cached: bool = False):
        self._handle = handle
        self._cached = cached
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

    def lookup_packed(self, name: str) -> Optional[int]:
        """The packed form void f(void **args) of host function `name`, or None."""
        return _library().mixir_module_lookup_packed(self._handle, name.encode()) or None

    @property
    def static_dims(self):
        """(operand, dimension) pairs a module built from a call specialised on."""
        pairs = ctypes.c_void_p()
        n = _library().mixir_module_static_dims(self._handle, ctypes.byref(pairs))
        flat = ctypes.cast(pairs, ctypes.POINTER(ctypes.c_int32))
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]

    @property
    def ptx(self) -> str:
        if self.metadata.get("format") not in ("isa", "assembly"):
            raise ValueError(f"the module holds {self.metadata.get('format')}, not PTX")
        return self.binary.decode()

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle and _lib is not None and not self._cached:
            _lib.mixir_module_destroy(handle)


def _module_or_raise(lib, handle, err, target, cached=False) -> CompiledModule:
    if not handle:
        message = _take_string(lib, err) if err else "unknown error"
        raise CompileError(message)
    return CompiledModule(handle, target, cached)


def _check_target(fn: str, target: str):
    if not isinstance(target, str) or (target != "cpu" and not target.startswith("sm_")):
        raise ValueError(f'mixir.{fn}: target must be "cpu" or a chip like "sm_90a", got '
                         f"{target!r}")


def compile(ir: str, target: str = "cpu", options: Optional[str] = None,
            runtime: Optional[str] = None) -> CompiledModule:
    """Compiles `mixer` IR text for `target` ("cpu" or a CUDA chip such as "sm_90a").

    `options` are the pipeline's (`mixer-to-cpu` / `mixer-to-nvvm`): "format=bin",
    "host=1" (the module then also holds host code that launches its kernels through
    `runtime`, the path of libmixir_runtime.so), "adjoint=1". How kernels are shaped is
    the compiler's strategy; to force a shape, give the op a `mixer.lowering_config`
    in the IR. Raises CompileError with MLIR's diagnostics.
    """
    if not isinstance(ir, str):
        raise TypeError(f"mixir.compile: ir must be a str, got {type(ir).__name__}")
    _check_target("compile", target)
    lib = _library()
    err = ctypes.c_void_p()
    data = ir.encode()
    handle = lib.mixir_compile_with_runtime(
        data, len(data), target.encode(), options.encode() if options else None,
        runtime.encode() if runtime else None, ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target)


def compile_cached(ir: str, target: str = "cpu", options: Optional[str] = None,
                   runtime: Optional[str] = None) -> CompiledModule:
    """compile through the compile cache (memory, then $MIXIR_CACHE_DIR, then the
    compiler). The module belongs to the cache."""
    _check_target("compile_cached", target)
    lib = _library()
    err = ctypes.c_void_p()
    data = ir.encode()
    handle = lib.mixir_compile_cached(
        data, len(data), target.encode(), options.encode() if options else None,
        runtime.encode() if runtime else None, ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target, cached=True)


def load_lowered(ir: str, target: str, runtime: Optional[str] = None) -> CompiledModule:
    """Reloads a module that a pipeline already lowered (CompiledModule.ir): no pass runs."""
    lib = _library()
    err = ctypes.c_void_p()
    data = ir.encode()
    handle = lib.mixir_load_lowered(data, len(data), target.encode(),
                                    runtime.encode() if runtime else None, ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target)


def cache_key(ir: str, target: str, options: Optional[str] = None) -> str:
    lib = _library()
    data = ir.encode()
    return _take_string(lib, lib.mixir_cache_key(data, len(data), target.encode(),
                                                 options.encode() if options else None))


def cache_stats() -> dict:
    out = (ctypes.c_uint64 * 3)()
    _library().mixir_cache_stats(out)
    return {"memory_hits": out[0], "disk_hits": out[1], "compiles": out[2]}


def cache_clear_memory() -> None:
    _library().mixir_cache_clear_memory()


# --- Calls from facts (mixir-c/Calls.h) -----------------------------------------

DTYPES = {"f16": 0, "bf16": 1, "f32": 2, "f64": 3, "c64": 4, "c128": 5, "i32": 6, "i64": 7}


class Operand:
    """One operand of a call as the caller's tensor is (see mixir-c/Calls.h)."""

    __slots__ = ("role", "dtype", "sizes", "strides", "alignment")

    def __init__(self, role: str, dtype: str, sizes: Sequence[int] = (),
                 strides: Sequence[int] = (), alignment: int = 16):
        if dtype not in DTYPES:
            raise ValueError(f"mixir: unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
        self.role, self.dtype = role, dtype
        self.sizes, self.strides, self.alignment = list(sizes), list(strides), alignment


def _call_struct(op, operands, attributes, target, sm_count, shared_memory, offsets_fit_i32):
    array = (_Operand * max(len(operands), 1))()
    keep = []
    for slot, o in zip(array, operands):
        role = o.role.encode()
        keep.append(role)
        slot.role, slot.dtype, slot.rank = role, DTYPES[o.dtype], len(o.sizes)
        slot.sizes[:len(o.sizes)] = list(o.sizes)
        slot.strides[:len(o.strides)] = list(o.strides)
        slot.alignment = o.alignment
    call = _Call(op.encode(), array, len(operands),
                 attributes.encode() if attributes else None, target.encode(), sm_count,
                 shared_memory, int(bool(offsets_fit_i32)))
    return call, (array, keep)


def build_call(op: str, operands: Sequence[Operand], attributes: Optional[str] = None,
               target: str = "cpu", sm_count: int = 0, shared_memory: int = 0,
               offsets_fit_i32: bool = True) -> str:
    """The `mixer` IR the compiler builds for a call (what the torch ops compile)."""
    lib = _library()
    call, _keep = _call_struct(op, operands, attributes, target, sm_count, shared_memory,
                               offsets_fit_i32)
    err = ctypes.c_void_p()
    text = lib.mixir_build_call(ctypes.byref(call), ctypes.byref(err))
    if not text:
        raise CompileError(_take_string(lib, err) if err else "unknown error")
    return _take_string(lib, text)


def compile_call(op: str, operands: Sequence[Operand], attributes: Optional[str] = None,
                 target: str = "cpu", sm_count: int = 0, shared_memory: int = 0,
                 offsets_fit_i32: bool = True, runtime: Optional[str] = None) -> CompiledModule:
    """A call built and compiled through the cache, as the torch ops do on a miss."""
    lib = _library()
    call, _keep = _call_struct(op, operands, attributes, target, sm_count, shared_memory,
                               offsets_fit_i32)
    err = ctypes.c_void_p()
    handle = lib.mixir_compile_call(ctypes.byref(call), runtime.encode() if runtime else None,
                                    ctypes.byref(err))
    return _module_or_raise(lib, handle, err, target, cached=True)


@functools.lru_cache(maxsize=None)
def state_dtype(*dtypes: str) -> str:
    """The dtype a recurrence over inputs of these dtypes is carried in (the compiler's
    rule): "f32" for 16/32-bit inputs, "f64" if any is 64-bit, complex if any is."""
    codes = (ctypes.c_int32 * len(dtypes))(*[DTYPES[d] for d in dtypes])
    code = _library().mixir_state_dtype(codes, len(dtypes))
    return next(name for name, c in DTYPES.items() if c == code)
