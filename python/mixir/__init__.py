"""mixir: sequence mixers stated once in the `mixer` MLIR dialect, compiled for CPU and GPU.

    import mixir
    h, h_T = mixir.ops.scan(a, b, window=mixir.ops.jagged(k=2), output_final_state=True)
    module = mixir.compile(ir_text, target="sm_90a")   # PTX + kernel metadata
"""

from ._compiler import CompiledModule, CompileError, compile, version
from . import nn, ops, reference

__all__ = ["compile", "CompiledModule", "CompileError", "version", "ops", "nn", "reference"]
