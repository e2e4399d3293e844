//===- SetKernelIndexWidth.cpp - index width per outlined kernel ----------===//
//
// convert-gpu-to-nvvm takes the index width of a kernel from its gpu.module's
// data layout. mixer-parallel-loops-to-gpu named the kernels whose configs
// chose 32-bit indices and recorded the width on their host function; once
// the kernels are outlined, their modules get the data layout.
//
//===----------------------------------------------------------------------===//

#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/DLTI/DLTI.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERSETKERNELINDEXWIDTH
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;

namespace {
struct MixerSetKernelIndexWidth
    : public mixer::impl::MixerSetKernelIndexWidthBase<MixerSetKernelIndexWidth> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SymbolTable symbols(module);
    for (auto fn : module.getOps<func::FuncOp>()) {
      auto widths = fn->getAttrOfType<DictionaryAttr>("mixer.kernel_index_bitwidth");
      if (!widths)
        continue;
      fn->removeAttr("mixer.kernel_index_bitwidth");
      for (NamedAttribute entry : widths) {
        auto kernels = symbols.lookup<gpu::GPUModuleOp>(entry.getName());
        if (!kernels) {
          fn.emitError() << "mixer-set-kernel-index-width: no gpu.module @" << entry.getName()
                         << " (run gpu-kernel-outlining first)";
          return signalPassFailure();
        }
        auto spec = DataLayoutSpecAttr::get(
            ctx, {DataLayoutEntryAttr::get(IndexType::get(ctx), entry.getValue())});
        kernels->setAttr(DLTIDialect::kDataLayoutAttrName, spec);
      }
    }
  }
};
} // namespace
