//===- Scratch.h - scratch memory of a lowering ------------------*- C++ -*-===//
//
// A lowering that needs scratch (per-chunk factors, checkpoints, piece states)
// allocates it here: a memref.alloc marked `mixer.workspace` at the top level
// of the op's function, which mixer-assign-workspace then places in the
// caller's workspace buffer (and sizes in @<f>_workspace_bytes).
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_CONVERSION_SCRATCH_H
#define MIXIR_CONVERSION_SCRATCH_H

#include "mixir/Strategy/Facts.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::mixer {

/// Scratch of `type` for lowering `op`, allocated just before op's ancestor at
/// the top level of its function, with the dynamic sizes `sizes` builds there
/// (from values that dominate that point, such as dims of op's operands).
inline Value allocateScratch(Operation *op, MemRefType type,
                             function_ref<SmallVector<Value>(ImplicitLocOpBuilder &)> sizes) {
  Operation *anchor = op;
  while (anchor->getParentOp() && !isa<FunctionOpInterface>(anchor->getParentOp()))
    anchor = anchor->getParentOp();
  ImplicitLocOpBuilder b(op->getLoc(), anchor);
  auto alloc = memref::AllocOp::create(b, type, sizes(b));
  alloc->setAttr(kWorkspaceAttr, b.getUnitAttr());
  return alloc;
}

} // namespace mlir::mixer

#endif // MIXIR_CONVERSION_SCRATCH_H
