//===- Facts.h - what the caller of a compile says about a call -*- C++ -*-===//
//
// The strategy (mixer-select-lowering-config) decides from facts about a call
// that the IR carries, never from side channels:
//
// * the target: the module attribute `mixer.target` (#mixer.target<chip, SMs,
//   shared memory>);
// * shapes and layouts: the memref types (static dimensions and static unit
//   strides where the caller's tensors have them);
// * alignment: the function-argument attribute `mixer.alignment = A : i64`:
//   the argument's aligned pointer and every stride (in bytes) of a dimension
//   longer than 1 that is not a unit stride are multiples of A;
// * index range: the function unit attribute `mixer.offsets_fit_i32`: every
//   element offset of every memref argument is below 2^31.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_STRATEGY_FACTS_H
#define MIXIR_STRATEGY_FACTS_H

#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::mixer {

inline constexpr llvm::StringLiteral kAlignmentAttr = "mixer.alignment";
inline constexpr llvm::StringLiteral kOffsetsFitI32Attr = "mixer.offsets_fit_i32";
inline constexpr llvm::StringLiteral kWorkspaceAttr = "mixer.workspace";

/// The alignment the caller promises for `memref` (see above), or 0 when the
/// value is not a function argument that carries the promise.
inline int64_t alignmentOf(Value memref) {
  auto arg = dyn_cast_or_null<BlockArgument>(memref);
  if (!arg)
    return 0;
  auto fn = dyn_cast<FunctionOpInterface>(arg.getOwner()->getParentOp());
  if (!fn || arg.getOwner() != &fn.getFunctionBody().front())
    return 0;
  auto attr = fn.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(), kAlignmentAttr);
  return attr ? attr.getInt() : 0;
}

/// Whether the function around `op` promises 32-bit element offsets.
inline bool offsetsFitI32(Operation *op) {
  auto fn = op->getParentOfType<FunctionOpInterface>();
  return fn && fn->hasAttr(kOffsetsFitI32Attr);
}

/// The module's #mixer.target, or null.
inline TargetAttr targetOf(Operation *op) {
  auto module = isa<ModuleOp>(op) ? cast<ModuleOp>(op) : op->getParentOfType<ModuleOp>();
  return module ? module->getAttrOfType<TargetAttr>(TargetAttr::getAttrName()) : TargetAttr();
}

/// The static stride of dimension `dim` of a memref type, or nullopt.
inline std::optional<int64_t> staticStride(Value memref, unsigned dim) {
  auto type = dyn_cast<MemRefType>(memref.getType());
  if (!type)
    return std::nullopt;
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)) || dim >= strides.size() ||
      ShapedType::isDynamic(strides[dim]))
    return std::nullopt;
  return strides[dim];
}

} // namespace mlir::mixer

#endif // MIXIR_STRATEGY_FACTS_H
