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
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Triple.h"
#include <cstdlib>
#include <mutex>

extern "C" void LLVMInitializeNVPTXTargetInfo();
extern "C" void LLVMInitializeNVPTXTarget();
extern "C" void LLVMInitializeNVPTXTargetMC();

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

std::string mlir::mixer::nvvmOptionsProblem(const MixerToNVVMOptions &options) {
  // The options are spliced into a textual pipeline: nothing in them may end
  // an option or a pass.
  auto plain = [](StringRef s) { return s.find_first_of(" \t\n{},\"'") == StringRef::npos; };
  for (const std::string *value : {&options.chip.getValue(), &options.features.getValue(),
                                   &options.format.getValue(), &options.toolkit.getValue()})
    if (!plain(*value))
      return "option value '" + *value + "' holds a space, quote, brace or comma";
  StringRef format = options.format.getValue();
  if (format != "isa" && format != "bin" && format != "fatbin")
    return "format must be isa (PTX), bin (cubin) or fatbin, got '" + format.str() + "'";
  // PTX ISA versions: +ptx<major><minor>, e.g. +ptx80.
  StringRef features = options.features.getValue(), digits = features;
  if (!digits.consume_front("+ptx") || digits.size() < 2 || digits.size() > 3 ||
      !llvm::all_of(digits, llvm::isDigit))
    return "features must be a PTX ISA version like +ptx80, got '" + features.str() + "'";
  // The chip must be one the NVPTX backend knows (otherwise it would emit
  // `.target` of any string and no GPU would load it).
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
  });
  llvm::Triple triple("nvptx64-nvidia-cuda");
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return "the NVPTX backend is not available: " + error;
  StringRef chip = options.chip.getValue();
  std::unique_ptr<llvm::MCSubtargetInfo> info(target->createMCSubtargetInfo(triple, "", ""));
  if (!chip.starts_with("sm_") || !info || !info->isCPUStringValid(chip))
    return "chip '" + chip.str() + "' is not a CUDA architecture the NVPTX backend knows";
  return "";
}

void mlir::mixer::registerMixerPipelines() {
  PassPipelineRegistration<MixerToCPUOptions>(
      "mixer-to-cpu", "Lower mixer IR to the LLVM dialect for the host",
      buildMixerToCPUPipeline);
  // As PassPipelineRegistration does, with the options checked before the
  // pipeline is built (the builder cannot fail).
  registerPassPipeline(
      "mixer-to-nvvm", "Lower mixer IR to NVVM and serialize PTX/cubin (gpu.binary)",
      [](OpPassManager &pm, StringRef text,
         function_ref<LogicalResult(const Twine &)> errorHandler) {
        MixerToNVVMOptions options;
        if (failed(options.parseFromString(text)))
          return failure();
        if (std::string why = nvvmOptionsProblem(options); !why.empty())
          return errorHandler("mixer-to-nvvm: " + why);
        buildMixerToNVVMPipeline(pm, options);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> handler) {
        handler(MixerToNVVMOptions());
      });
}
