# lit configuration of the mixir compiler tests (test/python runs under pytest).
import os
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "MIXIR"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes_ext = [".c"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.mixir_obj_root, "test")
# Fuzz/corpus holds inputs (the findings replayed by Fuzz/replay.test), not tests.
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "python", "corpus"]

config.environment["FILECHECK_OPTS"] = "--enable-var-scope --dump-input=fail"

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tool_dirs = [config.mixir_tools_dir, config.llvm_tools_dir]
llvm_config.add_tool_substitutions(["mixer-opt", "mixer-fuzz", "mixir-capi-test"], tool_dirs)

# The CUDA toolkit provides libdevice (always needed for PTX with exp) and
# ptxas (needed only by the cubin tests).
cuda = next((p for p in (os.environ.get("CUDA_HOME"), "/usr/local/cuda") if p and
             os.path.exists(os.path.join(p, "nvvm", "libdevice"))), None)
if cuda:
    config.available_features.add("cuda-toolkit")
    config.substitutions.append(("%cuda_toolkit", cuda))
    if os.path.exists(os.path.join(cuda, "bin", "ptxas")) or shutil.which("ptxas"):
        config.available_features.add("ptxas")
