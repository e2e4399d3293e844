//===- MixerToCPU.cpp - the mixer-to-cpu pipeline -------------------------===//
//
// mixer IR -> tiled scf loops -> LLVM dialect, ready for the ExecutionEngine.
// The tiles' scf.parallel runs serially on the host (the CPU path is for tests
// and fallback); the code per channel is the same as on the GPU.
//
//===----------------------------------------------------------------------===//

#include "mixir/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

std::string mlir::mixer::hostToLLVMPipeline(bool gpuLaunches) {
  // bf16 conversions become integer arithmetic: the JIT has no compiler-rt
  // (__truncsfbf2 and friends).
  return std::string("arith-expand{include-bf16=1},convert-scf-to-cf,expand-strided-metadata,lower-affine,") +
         (gpuLaunches ? "gpu-to-llvm," : "") +
         "finalize-memref-to-llvm,convert-math-to-llvm,convert-complex-to-llvm,"
         "convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,"
         "convert-cf-to-llvm,reconcile-unrealized-casts,canonicalize,cse";
}

void mlir::mixer::buildMixerToCPUPipeline(OpPassManager &pm,
                                          const MixerToCPUOptions &options) {
  std::string text = llvm::formatv(
      "{3}one-shot-bufferize{{bufferize-function-boundaries=1},"
      "func.func(mixer-tile-scan{{tile-size={0}},mixer-lower-channel-scan{{unroll={2}},"
      "mixer-lower-linear-attention,mixer-lower-linear-attention-adjoint),{1}",
      options.tileSize.getValue(), hostToLLVMPipeline(/*gpuLaunches=*/false),
      options.unroll.getValue(), options.adjoint ? "mixer-scan-adjoint," : "");
  if (failed(parsePassPipeline(text, pm, llvm::errs())))
    llvm::report_fatal_error("mixer-to-cpu: malformed built-in pipeline");
}
