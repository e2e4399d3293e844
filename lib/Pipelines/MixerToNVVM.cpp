//===- MixerToNVVM.cpp - the mixer-to-nvvm pipeline -----------------------===//
//
// mixer IR -> the strategy's configs (mixer-select-lowering-config) -> tiled
// scf loops and tensor-core kernels -> scratch in the caller's workspace ->
// gpu.launch per configured loop -> outlined gpu.modules -> NVVM -> gpu.binary
// (PTX or cubin). Every shape (tiles, thread blocks, unrolling, vector moves,
// index width) comes from the configs; the pipeline has no say in it.
//
// The host side keeps gpu.launch_func, or with `host` is lowered to LLVM:
// the launch geometry and the kernel arguments are then computed by generated
// host code, which calls the mgpu* functions of libmixir_runtime.
// libdevice is always linked through `toolkit`, otherwise exp/log would stay
// unresolved `__nv_*` externs that fail only when the module is loaded.
//
//===----------------------------------------------------------------------===//

#include "mixir/Pipelines/Pipelines.h"

#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdlib>

using namespace mlir;

std::string mlir::mixer::defaultCudaToolkitPath() {
  for (const char *var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char *v = std::getenv(var); v && *v)
      return v;
  return "/usr/local/cuda";
}

std::string mlir::mixer::mixerToLoopsPipeline(bool adjoint, StringRef chip, bool gpu) {
  std::vector<std::string> passes;
  if (adjoint)
    passes.push_back("mixer-scan-adjoint");
  passes.push_back("one-shot-bufferize{bufferize-function-boundaries=1}");
  // The strategy, then the splits it asked for, then the strategy again for
  // what the splits made (a scan over pieces, elementwise loops).
  std::string select = "mixer-select-lowering-config{chip=" + chip.str() + "}";
  passes.push_back(select);
  passes.push_back("func.func(mixer-split-linear-attention)");
  passes.push_back(select);
  std::string lowerings = "func.func(mixer-tile-scan,mixer-lower-channel-scan,";
  if (gpu)
    lowerings += "mixer-lower-linear-attention-mma,";
  lowerings += "mixer-lower-linear-attention,mixer-lower-linear-attention-adjoint)";
  passes.push_back(lowerings);
  passes.push_back(std::string("mixer-assign-workspace{gpu=") + (gpu ? "1" : "0") + "}");
  return llvm::join(passes, ",");
}

void mlir::mixer::buildMixerToNVVMPipeline(OpPassManager &pm,
                                           const MixerToNVVMOptions &options) {
  std::string toolkit =
      options.toolkit.getValue().empty() ? defaultCudaToolkitPath() : options.toolkit.getValue();
  std::vector<std::string> passes = {
      mixerToLoopsPipeline(options.adjoint, options.chip.getValue(), /*gpu=*/true),
      "func.func(mixer-parallel-loops-to-gpu)",
      "gpu-kernel-outlining",
      "mixer-set-kernel-index-width",
      "nvvm-attach-target{chip=" + options.chip.getValue() +
          " features=" + options.features.getValue() + " O=3}",
      "gpu.module(mixer-hoist-static-allocas,arith-expand,expand-strided-metadata,lower-affine,"
      "convert-scf-to-cf,convert-gpu-to-nvvm,canonicalize,cse,reconcile-unrealized-casts)",
      "gpu-module-to-binary{format=" + options.format.getValue() + " toolkit=" + toolkit + "}"};
  if (options.host)
    passes.push_back(hostToLLVMPipeline(/*gpuLaunches=*/true));
  if (failed(parsePassPipeline(llvm::join(passes, ","), pm, llvm::errs())))
    llvm::report_fatal_error("mixer-to-nvvm: malformed built-in pipeline");
}

void mlir::mixer::registerMixerPipelines() {
  PassPipelineRegistration<MixerToCPUOptions>(
      "mixer-to-cpu", "Lower mixer IR to the LLVM dialect for the host",
      buildMixerToCPUPipeline);
  PassPipelineRegistration<MixerToNVVMOptions>(
      "mixer-to-nvvm", "Lower mixer IR to NVVM and serialize PTX/cubin (gpu.binary)",
      buildMixerToNVVMPipeline);
}
