//===- HoistStaticAllocas.cpp - static allocas to the kernel entry --------===//
//
// LLVM's SROA and mem2reg promote only entry-block allocas; a private buffer
// allocated inside a kernel's loop or branch would otherwise live in local
// memory. See the pass description in MixerPasses.td.
//
//===----------------------------------------------------------------------===//

#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERHOISTSTATICALLOCAS
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;

namespace {
class MixerHoistStaticAllocasPass
    : public mixer::impl::MixerHoistStaticAllocasBase<MixerHoistStaticAllocasPass> {
public:
  using MixerHoistStaticAllocasBase::MixerHoistStaticAllocasBase;

  void runOnOperation() override {
    getOperation().walk([](gpu::GPUFuncOp fn) {
      if (fn.getBody().empty())
        return;
      Block &entry = fn.getBody().front();
      SmallVector<memref::AllocaOp> nested;
      fn.walk([&](memref::AllocaOp op) {
        // Dynamic sizes would need their operands hoisted too; an alloca under
        // its own allocation scope is freed (and reallocated) by that scope.
        if (op->getBlock() != &entry && op.getType().hasStaticShape() &&
            op.getSymbolOperands().empty() &&
            op->getParentWithTrait<OpTrait::AutomaticAllocationScope>() == fn.getOperation())
          nested.push_back(op);
      });
      for (memref::AllocaOp op : nested)
        op->moveBefore(&entry, entry.begin());
    });
  }
};
} // namespace
