//===- ParallelLoopsToGpu.cpp - configured parallel loops -> gpu.launch ---===//
//
// The lowerings leave their parallelism as scf.parallel loops that carry the
// op's #mixer.lowering_config; this pass gives each the thread block its
// config names and converts it with the upstream passes, then applies the
// launch-level choices of the config (sunk constants, 32-bit indices) to the
// launch it became. Upstream's passes do the work unchanged; what this pass
// adds is that each loop gets its own shape instead of one pipeline option
// for all of them.
//
// The config cannot ride on the loop through the conversion (the launch is a
// new op), so each tiled loop is preceded by an anchor constant, which the
// conversion leaves alone: the first gpu.launch after an anchor is the loop's.
//
//===----------------------------------------------------------------------===//

#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Utils/GPUUtils.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERPARALLELLOOPSTOGPU
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

constexpr StringLiteral kAnchor = "mixer.launch_anchor";

/// What gpu-launch-sink-index-computations sinks (upstream's rule).
bool isLikelyAnIndexComputation(Operation *op) {
  return matchPattern(op, m_Constant()) ||
         isa<memref::DimOp, arith::SelectOp, arith::CmpIOp>(op);
}

struct MixerParallelLoopsToGpu
    : public mixer::impl::MixerParallelLoopsToGpuBase<MixerParallelLoopsToGpu> {
  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    MLIRContext *ctx = &getContext();
    StringAttr configName = StringAttr::get(ctx, LoweringConfigAttr::getAttrName());

    // 1. Tile every configured outermost loop by its thread block; anchor it.
    SmallVector<scf::ParallelOp> loops;
    fn.walk([&](scf::ParallelOp loop) {
      if (loop->hasAttr(configName) && !loop->getParentOfType<scf::ParallelOp>())
        loops.push_back(loop);
    });
    SmallVector<LoweringConfigAttr> anchored;
    for (scf::ParallelOp loop : loops) {
      LoweringConfigAttr config = LoweringConfigAttr::of(loop);
      loop->removeAttr(configName);
      if (!config.getBlock()) {
        loop.emitOpError("mixer-parallel-loops-to-gpu: the loop's config has no thread block");
        return signalPassFailure();
      }
      auto [outer, inner] =
          scf::tileParallelLoop(loop, config.getBlock().asArrayRef(), /*noMinMaxBounds=*/true);
      (void)inner;
      OpBuilder b(outer);
      auto anchor = arith::ConstantIndexOp::create(b, outer.getLoc(), anchored.size());
      anchor->setAttr(kAnchor, b.getUnitAttr());
      anchored.push_back(config);
    }

    // 2. Map and convert every parallel loop (upstream, as before).
    OpPassManager convert(func::FuncOp::getOperationName());
    if (failed(parsePassPipeline("gpu-map-parallel-loops,convert-parallel-loops-to-gpu", convert)) ||
        failed(runPipeline(convert, fn)))
      return signalPassFailure();

    // 3. Each anchor's launch takes its loop's config.
    SmallVector<arith::ConstantIndexOp> anchors;
    fn.walk([&](arith::ConstantIndexOp c) {
      if (c->hasAttr(kAnchor))
        anchors.push_back(c);
    });
    for (arith::ConstantIndexOp anchor : anchors) {
      Operation *next = anchor->getNextNode();
      while (next && !isa<gpu::LaunchOp>(next))
        next = next->getNextNode();
      if (!next) {
        anchor.emitError("mixer-parallel-loops-to-gpu: a configured loop did not become a "
                         "gpu.launch");
        return signalPassFailure();
      }
      next->setAttr(configName, anchored[anchor.value()]);
      anchor->erase();
    }

    // 4. Clean up as the pipeline always did, then the launch-level choices.
    OpPassManager cleanup(func::FuncOp::getOperationName());
    if (failed(parsePassPipeline("canonicalize,cse", cleanup)) ||
        failed(runPipeline(cleanup, fn)))
      return signalPassFailure();
    SmallVector<gpu::LaunchOp> launches;
    fn.walk([&](gpu::LaunchOp launch) {
      if (launch->hasAttr(configName))
        launches.push_back(launch);
    });
    SmallVector<NamedAttribute> widths;
    for (gpu::LaunchOp launch : launches) {
      LoweringConfigAttr config = LoweringConfigAttr::of(launch);
      launch->removeAttr(configName);
      // Constants inside the kernel rather than kernel arguments: divisions
      // by them and indices into private buffers are then static.
      if (config.getSinkConstants() &&
          failed(sinkOperationsIntoLaunchOp(launch, isLikelyAnIndexComputation)))
        return signalPassFailure();
      if (config.getIndexBitwidth() == 64)
        continue;
      // The kernel gets a name of its own, which mixer-set-kernel-index-width
      // finds after outlining.
      std::string name = launch.getFunction()
                             ? launch.getFunction()->str()
                             : (fn.getName() + "_kernel_i" + Twine(config.getIndexBitwidth()))
                                   .str();
      std::string unique = name;
      for (int k = 1; llvm::any_of(widths, [&](NamedAttribute a) { return a.getName() == unique; });
           ++k)
        unique = name + "_" + std::to_string(k);
      launch.setFunctionAttr(FlatSymbolRefAttr::get(ctx, unique));
      launch.setModuleAttr(FlatSymbolRefAttr::get(ctx, unique));
      widths.emplace_back(StringAttr::get(ctx, unique),
                          IntegerAttr::get(IntegerType::get(ctx, 64), config.getIndexBitwidth()));
    }
    if (!widths.empty())
      fn->setAttr("mixer.kernel_index_bitwidth", DictionaryAttr::get(ctx, widths));
  }
};
} // namespace
