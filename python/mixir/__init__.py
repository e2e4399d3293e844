"""mixir: sequence mixers stated once in the `mixer` MLIR dialect, compiled for CPU and GPU.

    import mixir
    h, h_T = mixir.ops.scan(a, b, window=mixir.ops.jagged(k=2), output_final_state=True)
    module = mixir.compile(ir_text, target="sm_90a")   # PTX + kernel metadata
    ir = mixir.build_call("scan", [...])               # the IR the ops compile, from facts
"""

from ._compiler import CompiledModule, CompileError, Operand, build_call, compile, version
from . import runtime
from . import nn, ops, reference

__all__ = ["compile", "build_call", "Operand", "CompiledModule", "CompileError", "version",
           "runtime", "ops", "nn", "reference"]
