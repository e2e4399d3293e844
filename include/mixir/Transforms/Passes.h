//===- Passes.h - mixer transformation passes -------------------*- C++ -*-===//

#ifndef MIXIR_TRANSFORMS_PASSES_H
#define MIXIR_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::mixer {
#define GEN_PASS_DECL
#include "Mixer/MixerPasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

#endif // MIXIR_TRANSFORMS_PASSES_H
