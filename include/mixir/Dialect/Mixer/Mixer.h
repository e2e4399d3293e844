//===- Mixer.h - the mixer dialect ------------------------------*- C++ -*-===//

#ifndef MIXIR_DIALECT_MIXER_MIXER_H
#define MIXIR_DIALECT_MIXER_MIXER_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "Mixer/MixerDialect.h.inc"
#include "Mixer/MixerEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Mixer/MixerAttrs.h.inc"

#define GET_OP_CLASSES
#include "Mixer/MixerOps.h.inc"

namespace mlir::mixer {
/// Limits of the IR the lowerings take in bounded time and memory (the
/// verifiers refuse larger): a jagged block is unrolled into registers, and so
/// is a linear attention's state column over its key dimension.
constexpr int64_t kMaxJaggedBlock = 256;
constexpr int64_t kMaxKeyDim = 1024;
/// A lowering config's bounds: steps unrolled per loop iteration, and the
/// tile, chunk and value-tile lengths.
constexpr int64_t kMaxUnroll = 64;
constexpr int64_t kMaxTile = 1 << 20;

/// Registers the bufferization model of mixer.scan (tensor -> memref form).
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);
} // namespace mlir::mixer

#endif // MIXIR_DIALECT_MIXER_MIXER_H
