//===- Pipelines.h - registered mixer pipelines -----------------*- C++ -*-===//
//
// `mixer-to-cpu`: mixer IR -> LLVM dialect for the host (run through the
// ExecutionEngine). `mixer-to-nvvm`: mixer IR -> gpu.module kernels -> NVVM ->
// a gpu.binary holding PTX (format=isa) or a cubin (format=bin, needs ptxas).
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_PIPELINES_PIPELINES_H
#define MIXIR_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include <string>

namespace mlir::mixer {

struct MixerToCPUOptions : public PassPipelineOptions<MixerToCPUOptions> {
  PassOptions::Option<int64_t> tileSize{*this, "tile-size",
                                        llvm::cl::desc("Jagged tile length"),
                                        llvm::cl::init(256)};
  PassOptions::Option<int64_t> unroll{*this, "unroll",
                                      llvm::cl::desc("Time steps per loop iteration"),
                                      llvm::cl::init(4)};
  PassOptions::Option<bool> adjoint{
      *this, "adjoint", llvm::cl::desc("Also derive @f_adjoint for every @f (mixer-scan-adjoint)"),
      llvm::cl::init(false)};
};

struct MixerToNVVMOptions : public PassPipelineOptions<MixerToNVVMOptions> {
  PassOptions::Option<std::string> chip{*this, "chip", llvm::cl::desc("GPU chip"),
                                        llvm::cl::init("sm_90a")};
  PassOptions::Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features"), llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format", llvm::cl::desc("isa (PTX text) or bin (cubin via ptxas)"),
      llvm::cl::init("isa")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit", llvm::cl::desc("CUDA toolkit root (libdevice, ptxas); "
                                       "default: $CUDA_HOME or /usr/local/cuda"),
      llvm::cl::init("")};
  PassOptions::Option<int64_t> tileSize{*this, "tile-size",
                                        llvm::cl::desc("Jagged tile length"),
                                        llvm::cl::init(256)};
  PassOptions::Option<int64_t> blockSize{
      *this, "block-size",
      llvm::cl::desc("Threads per block over channels (over time tiles with time-fastest)"),
      llvm::cl::init(128)};
  PassOptions::Option<int64_t> blockY{
      *this, "block-y",
      llvm::cl::desc("Threads per block over batch rows (for narrow channel counts; over "
                     "channels with time-fastest)"),
      llvm::cl::init(1)};
  PassOptions::Option<int64_t> blockZ{
      *this, "block-z",
      llvm::cl::desc("Threads per block over time tiles (jagged windows, narrow channels; "
                     "over batch rows with time-fastest)"),
      llvm::cl::init(1)};
  PassOptions::Option<bool> exchangeOutput{
      *this, "exchange-output",
      llvm::cl::desc("With time-fastest, one-block tiles and vector-alignment >= 16: "
                     "threads swap output chunks so that stores write whole sectors "
                     "(mixer-tile-scan exchange-output; block-size is rounded up to whole "
                     "warps)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> sinkConstants{
      *this, "sink-constants",
      llvm::cl::desc("Sink constants and index computations into gpu.launch before "
                     "outlining (gpu-launch-sink-index-computations) instead of passing "
                     "them as kernel arguments; always on with exchange-output"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> timeFastest{
      *this, "time-fastest",
      llvm::cl::desc("Jagged windows: time tiles on threadIdx.x, channels on y, batch rows "
                     "on z (for channels-by-time layouts; mixer-tile-scan time-fastest)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> unroll{
      *this, "unroll",
      llvm::cl::desc("Time steps per loop iteration, all loads first (memory-level parallelism)"),
      llvm::cl::init(8)};
  PassOptions::Option<bool> adjoint{
      *this, "adjoint", llvm::cl::desc("Also derive @f_adjoint for every @f (mixer-scan-adjoint)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> indexBitwidth{
      *this, "index-bitwidth",
      llvm::cl::desc("Index width inside kernels: 32 halves address registers and is valid "
                     "when every element offset of every operand is below 2^31"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> vectorAlignment{
      *this, "vector-alignment",
      llvm::cl::desc("Byte alignment the caller guarantees at every jagged block start of a "
                     "time-contiguous operand (mixer-lower-channel-scan); 0 = none"),
      llvm::cl::init(0)};
  PassOptions::Option<int64_t> blockV{
      *this, "block-v",
      llvm::cl::desc("Linear attention on tensor cores: value channels per thread block "
                     "(mixer-lower-linear-attention-mma)"),
      llvm::cl::init(64)};
  PassOptions::Option<bool> host{
      *this, "host",
      llvm::cl::desc("Also lower the host side to LLVM: the launches become calls of the "
                     "mgpu* runtime ABI (libmixir_runtime) and the binary is embedded"),
      llvm::cl::init(false)};
};

void buildMixerToCPUPipeline(OpPassManager &pm, const MixerToCPUOptions &options);
void buildMixerToNVVMPipeline(OpPassManager &pm, const MixerToNVVMOptions &options);
void registerMixerPipelines();

/// The passes that take host code (func/scf/memref/arith/math/complex, and
/// with `gpuLaunches` the gpu.launch_func ops) to the LLVM dialect.
std::string hostToLLVMPipeline(bool gpuLaunches);

/// The CUDA toolkit root used when no `toolkit` option is given.
std::string defaultCudaToolkitPath();

} // namespace mlir::mixer

#endif // MIXIR_PIPELINES_PIPELINES_H
