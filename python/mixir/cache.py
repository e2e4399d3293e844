"""Compile cache: in memory, then on disk, then the compiler.

Key = sha256(compiler version and library hash, IR, target, options). A disk entry is the module as
the pipeline left it (LLVM dialect host code with the GPU binary embedded) plus a
JSON of metadata, in $MIXIR_CACHE_DIR/<key>/ (default ~/.cache/mixir). Loading an
entry runs no pass: only the host code is JIT-compiled. Entries are written into a
private temporary directory and renamed into place, so processes compiling the same
kernel at once never see (or leave) a partial entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from . import _compiler

__all__ = ["cache_dir", "cache_key", "compile_cached", "stats"]

_memory: dict = {}
_lock = threading.Lock()
stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0}


def cache_dir() -> Path:
    return Path(os.environ.get("MIXIR_CACHE_DIR") or Path.home() / ".cache" / "mixir")


_compiler_hash = None


def _compiler_identity() -> str:
    """Version plus a hash of the compiler library's bytes: a rebuilt compiler never
    reuses entries made by an older build (computed once per process)."""
    global _compiler_hash
    if _compiler_hash is None:
        h = hashlib.sha256()
        with open(_compiler.library_path(), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _compiler_hash = f"{_compiler.version()}-{h.hexdigest()[:16]}"
    return _compiler_hash


def cache_key(ir: str, target: str, options: str | None) -> str:
    h = hashlib.sha256()
    for part in (_compiler_identity(), target, options or "", ir):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _write_entry(root: Path, key: str, module: "_compiler.CompiledModule", ir: str,
                 target: str, options: str | None) -> None:
    final = root / key
    if final.exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp.{os.getpid()}.{uuid.uuid4().hex}.", dir=root))
    try:
        (tmp / "lowered.mlir").write_text(module.ir)
        (tmp / "source.mlir").write_text(ir)
        meta = dict(module.metadata, key=key, options=options or "", compiler=_compiler_identity(),
                    compile_target=target)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)  # atomic; fails if another process got there first
        except OSError:
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def compile_cached(ir: str, target: str = "cpu", options: str | None = None,
                   runtime: str | None = None) -> "_compiler.CompiledModule":
    """mixir.compile with the memory and disk caches in front of it."""
    key = cache_key(ir, target, options)
    with _lock:
        module = _memory.get(key)
        if module is not None:
            stats["memory_hits"] += 1
            return module
    root = cache_dir()
    entry = root / key / "lowered.mlir"
    module = None
    if entry.exists() and os.environ.get("MIXIR_CACHE_DISABLE") != "1":
        try:
            module = _compiler.load_lowered(entry.read_text(), target, runtime)
            stats["disk_hits"] += 1
        except (OSError, _compiler.CompileError):
            module = None  # unreadable or stale entry: compile afresh below
    if module is None:
        module = _compiler.compile(ir, target, options, runtime)
        stats["compiles"] += 1
        if os.environ.get("MIXIR_CACHE_DISABLE") != "1":
            try:
                _write_entry(root, key, module, ir, target, options)
            except OSError:
                pass  # a read-only or full cache directory must not fail the op
    with _lock:
        return _memory.setdefault(key, module)
