"""The compile cache: keys, disk entries, reloads and concurrent writers."""

import json
import multiprocessing as mp
import os

import pytest
import torch

import mixir
from mixir import cache, runtime
from calls import scan_ir

_A, _S = torch.empty(2, 70, 3, device="meta"), torch.empty(2, 3, device="meta")
IR = scan_ir(_A, _A, _A, _S, init=_S, window=mixir.ops.jagged(k=2))
IR_GPU = scan_ir(_A, _A, _A, _S, init=_S, window=mixir.ops.jagged(k=2), target="sm_90a")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXIR_CACHE_DIR", str(tmp_path))
    cache.clear_memory()
    yield tmp_path
    cache.clear_memory()


def test_key_depends_on_everything_that_changes_code():
    k = cache.cache_key(IR, "cpu", None)
    assert k == cache.cache_key(IR, "cpu", None)
    assert len({k, cache.cache_key(IR, "sm_90a", None), cache.cache_key(IR, "cpu", "adjoint=1"),
                cache.cache_key(IR.replace("k = 2", "k = 1"), "cpu", None)}) == 4


def test_disk_entry_is_written_and_reloaded(cache_dir):
    before = cache.stats()
    m1 = cache.compile_cached(IR, "cpu")
    key = cache.cache_key(IR, "cpu", None)
    entry = cache_dir / key
    assert (entry / "lowered.mlir").exists() and (entry / "source.mlir").read_text() == IR
    assert json.loads((entry / "metadata.json").read_text())["key"] == key
    assert cache.compile_cached(IR, "cpu")._handle == m1._handle      # memory hit
    cache.clear_memory()
    m2 = cache.compile_cached(IR, "cpu")                              # disk hit
    after = cache.stats()
    assert after["compiles"] == before["compiles"] + 1
    assert after["disk_hits"] == before["disk_hits"] + 1
    # The reloaded module computes the same numbers.
    a, b, h0 = torch.rand(2, 70, 3), torch.randn(2, 70, 3), torch.randn(2, 3)
    outs = []
    for m in (m1, m2):
        h, f = torch.empty(2, 70, 3), torch.empty(2, 3)
        runtime.Function(m, "scan")(a, b, h0, h, f)
        outs.append(h)
    assert torch.equal(outs[0], outs[1])


def test_corrupt_entry_is_recompiled(cache_dir):
    key = cache.cache_key(IR, "cpu", None)
    (cache_dir / key).mkdir(parents=True)
    (cache_dir / key / "lowered.mlir").write_text("this is not MLIR")
    before = cache.stats()["compiles"]
    m = cache.compile_cached(IR, "cpu")
    assert cache.stats()["compiles"] == before + 1 and m.lookup("_mlir_ciface_scan")


IR_OTHER = scan_ir(_A, _A, _A, _S, init=_S, window=mixir.ops.jagged(k=2), reverse=True)


def _entry(cache_dir, ir=IR):
    return cache_dir / cache.cache_key(ir, "cpu", None)


def _corrupt(entry, how):
    """Damages a written entry as a crash, a full disk or a copy mistake would."""
    lowered, meta = entry / "lowered.mlir", entry / "metadata.json"
    if how == "empty":
        lowered.write_bytes(b"")
    elif how == "truncated":
        lowered.write_bytes(lowered.read_bytes()[: lowered.stat().st_size // 2])
    elif how == "random_bytes":
        lowered.write_bytes(os.urandom(4096))
    elif how == "no_metadata":
        meta.unlink()
    elif how == "bad_metadata":
        meta.write_text("{not json")


@pytest.mark.parametrize("how", ["empty", "truncated", "random_bytes", "no_metadata",
                                 "bad_metadata", "foreign"])
def test_damaged_entry_is_detected_recompiled_and_replaced(cache_dir, how):
    """A damaged or foreign entry is never loaded: it is recompiled, and the entry
    written afresh loads from disk in the next process (here: after clear_memory)."""
    cache.compile_cached(IR, "cpu")
    entry = _entry(cache_dir)
    good = (entry / "lowered.mlir").read_bytes()
    if how == "foreign":
        # Another specialisation's entry (module and metadata) under this key.
        cache.compile_cached(IR_OTHER, "cpu")
        other = _entry(cache_dir, IR_OTHER)
        for name in ("lowered.mlir", "metadata.json"):
            (entry / name).write_bytes((other / name).read_bytes())
    else:
        _corrupt(entry, how)
    cache.clear_memory()
    before = cache.stats()
    m = cache.compile_cached(IR, "cpu")
    after = cache.stats()
    assert after["compiles"] == before["compiles"] + 1, "the damaged entry was loaded"
    assert after["disk_hits"] == before["disk_hits"]
    # The right module: the forward scan, with its numbers.
    a, b, h0 = torch.rand(2, 70, 3), torch.randn(2, 70, 3), torch.randn(2, 3)
    h, f = torch.empty(2, 70, 3), torch.empty(2, 3)
    runtime.Function(m, "scan")(a, b, h0, h, f)
    want, _ = mixir.reference.scan_ref(a, b, h0, window=("jagged", 16, 2))
    assert torch.allclose(h.double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5)
    # Replaced: the same bytes as a clean compile, and the next lookup is a disk hit.
    assert (entry / "lowered.mlir").read_bytes() == good
    meta = json.loads((entry / "metadata.json").read_text())
    assert meta["key"] == entry.name and len(meta["lowered_sha256"]) == 64
    cache.clear_memory()
    hits = cache.stats()["disk_hits"]
    cache.compile_cached(IR, "cpu")
    assert cache.stats()["disk_hits"] == hits + 1
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")], "debris left"


def test_corrupt_entry_does_not_crash_a_later_process(cache_dir):
    """The reported crash: a 0-byte lowered.mlir for the op's specialisation, then the
    op in a fresh process (it segfaulted there)."""
    import subprocess
    import sys
    code = ("import torch, mixir; a = torch.rand(2, 9, 3, dtype=torch.float64); "
            "h = mixir.ops.scan(a, a, reverse=True)[0]; "
            "ref = mixir.ops.scan(a.flip(1), a.flip(1))[0].flip(1); "
            "print(float((h - ref).abs().max()))")
    env = dict(os.environ, MIXIR_CACHE_DIR=str(cache_dir))
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    entries = [p for p in cache_dir.iterdir() if (p / "lowered.mlir").exists()]
    assert entries
    for e in entries:
        (e / "lowered.mlir").write_bytes(b"")
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert float(again.stdout.split()[-1]) < 1e-12
    assert all((e / "lowered.mlir").stat().st_size > 0 for e in entries)


def test_gpu_module_with_host_code_round_trips(cache_dir):
    """PTX, metadata and launch code survive the disk (no GPU needed to compile or load)."""
    if not os.path.isdir(os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "nvvm")):
        pytest.skip("no CUDA toolkit (libdevice) on this host")
    rt = runtime.library_path()
    m1 = cache.compile_cached(IR_GPU, "sm_90a", "host=1", runtime=rt)
    cache.clear_memory()
    m2 = cache.compile_cached(IR_GPU, "sm_90a", "host=1", runtime=rt)
    assert m2.binary == m1.binary and m2.metadata == m1.metadata
    assert m2.lookup("_mlir_ciface_scan")


def _compile_in_child(path, queue):
    os.environ["MIXIR_CACHE_DIR"] = path
    try:
        m = cache.compile_cached(IR, "cpu")
        queue.put(bool(m.lookup("_mlir_ciface_scan")))
    except Exception as e:  # reported to the parent
        queue.put(repr(e))


def test_concurrent_writers_leave_one_valid_entry(cache_dir):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_compile_in_child, args=(str(cache_dir), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == [True] * 6
    entries = [p.name for p in cache_dir.iterdir()]
    assert entries == [cache.cache_key(IR, "cpu", None)]           # no temporary dirs left
    cache.clear_memory()
    assert cache.compile_cached(IR, "cpu").lookup("_mlir_ciface_scan")
