"""The compile cache of libmixir_c, seen from Python.

Memory, then disk, then the compiler: one cache for every frontend (the C++ torch
ops compile through it on a miss without Python). The key is a SHA-256 of the
compiler build (its build id), the target, the pipeline options and the IR. A disk
entry, $MIXIR_CACHE_DIR/<key>/ (default ~/.cache/mixir), holds the module as the
pipeline left it (lowered.mlir: LLVM-dialect host code with the GPU binary
embedded), the source IR and metadata.json; loading it runs no pass, only the host
code's JIT. Entries are written into a private temporary directory and renamed into
place, so processes compiling the same kernel at once never see (or leave) a partial
entry. MIXIR_CACHE_DISABLE=1 keeps the cache in memory only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import _compiler

__all__ = ["cache_dir", "cache_key", "compile_cached", "stats", "clear_memory"]


def cache_dir() -> Path:
    return Path(os.environ.get("MIXIR_CACHE_DIR") or Path.home() / ".cache" / "mixir")


def cache_key(ir: str, target: str, options: Optional[str] = None) -> str:
    return _compiler.cache_key(ir, target, options)


def compile_cached(ir: str, target: str = "cpu", options: Optional[str] = None,
                   runtime: Optional[str] = None) -> "_compiler.CompiledModule":
    """mixir.compile with the memory and disk caches in front of it."""
    return _compiler.compile_cached(ir, target, options, runtime)


def stats() -> dict:
    """Memory hits, disk hits and compiles since the compiler library was loaded."""
    return _compiler.cache_stats()


def clear_memory() -> None:
    """Forgets the in-memory entries (the next lookups go to the disk)."""
    _compiler.cache_clear_memory()
