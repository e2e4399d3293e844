//===- MixerDialect.td - the mixer dialect -----------------*- tablegen -*-===//
//
// The `mixer` dialect describes the sequence mixers of hybrid language models:
// linear recurrences along a time axis, their chunked and jagged-window forms,
// and (later) matrix-state linear attention, recurrent cells and sparse gathers.
// Normative math: shared/spec/mixers.md.
//
//===----------------------------------------------------------------------===//

#ifndef MIXER_DIALECT_TD
#define MIXER_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Mixer_Dialect : Dialect {
  let name = "mixer";
  let cppNamespace = "::mlir::mixer";
  let summary = "Recurrent sequence mixers: scans, linear attention, sparse gathers";
  let description = [{
    Ops of this dialect state *what* a mixer computes on whole sequences; the
    `mixer-tile-*` passes decide how time is split into tiles and how the carry
    between tiles travels, and the conversions lower the tiled form to `scf`
    loops that run on the CPU (LLVM) or on NVIDIA GPUs (gpu/NVVM/PTX).

    Shaped operands use the layout `[batch, time, channels]`. Any physical
    layout is reached through memref strides (time-last layouts such as
    `[B, D, L]` are a transposed view), so ops carry no layout attributes.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect"];
}

class Mixer_Op<string mnemonic, list<Trait> traits = []>
    : Op<Mixer_Dialect, mnemonic, traits>;

#endif // MIXER_DIALECT_TD
