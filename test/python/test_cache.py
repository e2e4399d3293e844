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
