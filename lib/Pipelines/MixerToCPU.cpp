//===- MixerToCPU.cpp - the mixer-to-cpu pipeline -------------------------===//
//
// mixer IR -> the strategy's configs -> tiled scf loops -> LLVM dialect, ready
// for the ExecutionEngine. The tiles' scf.parallel runs serially on the host
// (the CPU path is for tests and fallback); the code per channel is the same
// as on the GPU.
//
//===----------------------------------------------------------------------===//

#include "mixir/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
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
  std::string text = mixerToLoopsPipeline(options.adjoint, "cpu", /*gpu=*/false) + "," +
                     hostToLLVMPipeline(/*gpuLaunches=*/false);
  if (failed(parsePassPipeline(text, pm, llvm::errs())))
    llvm::report_fatal_error("mixer-to-cpu: malformed built-in pipeline");
}
