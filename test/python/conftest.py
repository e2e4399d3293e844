import json
import os
import time

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped with a reason elsewhere)")
    # Under pytest-xdist every worker would start one intra-op thread per core:
    # N workers x N threads spinning on the float64 oracles' small ops.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this host")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# MIXIR_RECORD_TESTS=DIR: every worker records the calls the ops compile (the
# C++ ops' $MIXIR_RECORD) into DIR/calls-<worker>.jsonl, each test's calls after a
# {"test": nodeid} line and before a {"test_seconds": ...} line:
# scripts/sanitize_kernels.py picks from it the cheapest tests that compile every
# kernel.
_RECORD_TESTS = os.environ.get("MIXIR_RECORD_TESTS")


@pytest.fixture(autouse=True)
def _record_calls_per_test(request):
    if not _RECORD_TESTS:
        yield
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = os.path.join(_RECORD_TESTS, f"calls-{worker}.jsonl")
    os.makedirs(_RECORD_TESTS, exist_ok=True)
    os.environ["MIXIR_RECORD"] = path
    with open(path, "a") as f:
        f.write(json.dumps({"test": request.node.nodeid}) + "\n")
    start = time.perf_counter()
    yield
    # The test's time: the cover prefers cheap tests for the same kernels.
    with open(path, "a") as f:
        f.write(json.dumps({"test_seconds": time.perf_counter() - start}) + "\n")
