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
  PassOptions::Option<bool> adjoint{
      *this, "adjoint", llvm::cl::desc("Also derive @f_adjoint for every @f (mixer-scan-adjoint)"),
      llvm::cl::init(false)};
};

/// Kernels' shapes are the strategy's (mixer-select-lowering-config): the
/// pipeline takes the target and the output format only.
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
  PassOptions::Option<bool> adjoint{
      *this, "adjoint", llvm::cl::desc("Also derive @f_adjoint for every @f (mixer-scan-adjoint)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> host{
      *this, "host",
      llvm::cl::desc("Also lower the host side to LLVM: the launches become calls of the "
                     "mgpu* runtime ABI (libmixir_runtime) and the binary is embedded"),
      llvm::cl::init(false)};
};

/// Why mixer-to-nvvm cannot take `options` (an unknown chip, format or PTX
/// version, or a value that would break the textual pipeline), or "".
std::string nvvmOptionsProblem(const MixerToNVVMOptions &options);

void buildMixerToCPUPipeline(OpPassManager &pm, const MixerToCPUOptions &options);
void buildMixerToNVVMPipeline(OpPassManager &pm, const MixerToNVVMOptions &options);
void registerMixerPipelines();

/// mixer IR to loops and kernels, shared by both pipelines: (the adjoint,)
/// bufferization, the strategy for `chip`, the lowerings the configs ask
/// for, and scratch into the workspace argument.
std::string mixerToLoopsPipeline(bool adjoint, StringRef chip, bool gpu);

/// The passes that take host code (func/scf/memref/arith/math/complex, and
/// with `gpuLaunches` the gpu.launch_func ops) to the LLVM dialect.
std::string hostToLLVMPipeline(bool gpuLaunches);

/// The CUDA toolkit root used when no `toolkit` option is given.
std::string defaultCudaToolkitPath();

} // namespace mlir::mixer

#endif // MIXIR_PIPELINES_PIPELINES_H
