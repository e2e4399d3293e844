//===- InitAll.h - everything mixer-opt and libmixir_c register -*- C++ -*-===//

#ifndef MIXIR_INITALL_H
#define MIXIR_INITALL_H

#include "mlir/IR/DialectRegistry.h"

namespace mlir::mixer {
/// Dialects, interfaces, extensions and LLVM translations the mixer pipelines
/// need (including the NVVM target attribute and ConvertToLLVM interfaces that
/// gpu-module-to-binary silently depends on).
void registerAllDialects(DialectRegistry &registry);
/// Mixer passes, the upstream passes our pipelines use, and the pipelines.
void registerAllPasses();
} // namespace mlir::mixer

#endif // MIXIR_INITALL_H
