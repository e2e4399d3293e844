//===- MixerToNVVM.cpp - the mixer-to-nvvm pipeline -----------------------===//
//
// mixer IR -> tiled scf loops -> gpu.launch (tiles' scf.parallel mapped to
// blocks and threads: channels on threadIdx.x for coalescing; with few channels,
// batch rows (block-y) or time tiles (block-z) fill the rest of the block;
// `time-fastest` swaps tiles and channels for channels-by-time layouts, and
// `exchange-output` adds a warp-level exchange of output chunks before stores) -> outlined
// gpu.module -> NVVM -> gpu.binary (PTX or cubin).
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
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdlib>

using namespace mlir;

std::string mlir::mixer::defaultCudaToolkitPath() {
  for (const char *var : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"})
    if (const char *v = std::getenv(var); v && *v)
      return v;
  return "/usr/local/cuda";
}

void mlir::mixer::buildMixerToNVVMPipeline(OpPassManager &pm,
                                           const MixerToNVVMOptions &options) {
  std::string toolkit =
      options.toolkit.getValue().empty() ? defaultCudaToolkitPath() : options.toolkit.getValue();
  // The output exchange shuffles across whole warps: every thread of a warp
  // must exist and reach it.
  int64_t blockSize = options.blockSize.getValue();
  if (options.exchangeOutput)
    blockSize = (blockSize + 31) / 32 * 32;
  // Constants left outside the launch become kernel arguments: divisions by
  // them run at run time and indices into private buffers are dynamic (local
  // memory), which the exchange cannot afford. The other kernels were tuned
  // (and measured: bench/results) without sinking, which changes LLVM's
  // unrolling of their known-length loops (the [B, T, D] jagged forward at S7
  // drops from 85% to 69% of copy with it), so it is opt-in.
  bool sink = options.sinkConstants || options.exchangeOutput;
  std::string text = llvm::formatv(
      "{9}one-shot-bufferize{{bufferize-function-boundaries=1},"
      "func.func(mixer-tile-scan{{tile-size={0} time-fastest={12} exchange-output={13} "
      "vector-alignment={11}},"
      "mixer-lower-channel-scan{{unroll={8} vector-alignment={11}},"
      "mixer-lower-linear-attention-mma{{block-v={15}},mixer-lower-linear-attention,"
      "mixer-lower-linear-attention-adjoint,"
      "scf-parallel-loop-tiling{{parallel-loop-tile-sizes={1},{6},{7} no-min-max-bounds=1},"
      "gpu-map-parallel-loops,convert-parallel-loops-to-gpu,canonicalize,cse),"
      "{14}gpu-kernel-outlining,"
      "nvvm-attach-target{{chip={2} features={3} O=3},"
      "gpu.module(mixer-hoist-static-allocas,arith-expand,expand-strided-metadata,lower-affine,convert-scf-to-cf,"
      "convert-gpu-to-nvvm{{index-bitwidth={10}},canonicalize,cse,reconcile-unrealized-casts),"
      "gpu-module-to-binary{{format={4} toolkit={5}}",
      options.tileSize.getValue(), blockSize, options.chip.getValue(),
      options.features.getValue(), options.format.getValue(), toolkit,
      options.blockY.getValue(), options.blockZ.getValue(), options.unroll.getValue(),
      options.adjoint ? "mixer-scan-adjoint," : "", options.indexBitwidth.getValue(),
      options.vectorAlignment.getValue(), options.timeFastest.getValue() ? "1" : "0",
      options.exchangeOutput.getValue() ? "1" : "0",
      sink ? "gpu-launch-sink-index-computations," : "", options.blockV.getValue());
  if (options.host)
    text += "," + hostToLLVMPipeline(/*gpuLaunches=*/true);
  if (failed(parsePassPipeline(text, pm, llvm::errs())))
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
