//===- Compiler.cpp - the C ABI of libmixir_c -----------------------------===//

#include "mixir-c/Compiler.h"

#include "Module.h"

#include "mixir/InitAll.h"
#include "mixir/Pipelines/Pipelines.h"
#include "mixir/Support/NestingDepth.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#ifndef MIXIR_VERSION
#define MIXIR_VERSION "dev"
#endif

using namespace mlir;

namespace {

/// Passes and pipelines are registered once per process.
void ensureRegistered() {
  static std::once_flag once;
  std::call_once(once, [] {
    mixer::registerAllPasses();
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}


std::string jsonEscape(StringRef s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

/// Collects gpu.binary objects and launch geometry into the module result.
LogicalResult extractGpuBinary(ModuleOp module, StringRef chip, MixirModule &result,
                               llvm::raw_ostream &err) {
  std::string kernels;
  module.walk([&](gpu::LaunchFuncOp launch) {
    auto blockDim = [&](Value v) -> int64_t {
      return getConstantIntValue(v).value_or(-1); // -1: computed at run time
    };
    gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
    if (!kernels.empty())
      kernels += ", ";
    kernels += llvm::formatv(R"({{"module": "{0}", "name": "{1}", "block": [{2}, {3}, {4}]})",
                             jsonEscape(launch.getKernelModuleName().getValue()),
                             jsonEscape(launch.getKernelName().getValue()),
                             blockDim(block.x), blockDim(block.y), blockDim(block.z))
                   .str();
  });
  // One gpu.binary per kernel module (a forward and its adjoint give two);
  // `binary` holds the first, the metadata counts them all.
  int numBinaries = 0;
  std::string format;
  module.walk([&](gpu::BinaryOp bin) {
    for (Attribute attr : bin.getObjects()) {
      auto object = cast<gpu::ObjectAttr>(attr);
      if (numBinaries == 0)
        result.binary = object.getObject().getValue().str();
      format = stringifyCompilationTarget(object.getFormat()).str();
      ++numBinaries;
    }
  });
  if (numBinaries == 0) {
    err << "the pipeline produced no GPU binary (no mixer op in the input?)";
    return failure();
  }
  result.metadata =
      llvm::formatv(R"({{"target": "{0}", "format": "{1}", "binaries": {2}, "kernels": [{3}]})",
                    jsonEscape(chip), format, numBinaries, kernels)
          .str();
  return success();
}

} // namespace

extern "C" {

MixirModule *mixir_compile(const char *ir, size_t ir_len, const char *target,
                           const char *options, char **error) {
  return mixir_compile_with_runtime(ir, ir_len, target, options, nullptr, error);
}

MixirModule *mixir_compile_with_runtime(const char *ir, size_t ir_len, const char *target,
                                        const char *options, const char *runtime_library,
                                        char **error) {
  return mixir::compileOrLoad(ir, ir_len, target, options, runtime_library,
                              /*runPipeline=*/true, error);
}

MixirModule *mixir_load_lowered(const char *ir, size_t ir_len, const char *target,
                                const char *runtime_library, char **error) {
  return mixir::compileOrLoad(ir, ir_len, target, nullptr, runtime_library,
                              /*runPipeline=*/false, error);
}

} // extern "C"

char *mixir::copyString(const std::string &s) {
  char *out = static_cast<char *>(std::malloc(s.size() + 1));
  if (out)
    std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

MixirModule *mixir::compileOrLoad(const char *ir, size_t ir_len, const char *target,
                                  const char *options, const char *runtime_library,
                                  bool runPipeline, char **error) {
  ensureRegistered();
  std::string messages;
  llvm::raw_string_ostream err(messages);
  auto fail = [&]() -> MixirModule * {
    if (error)
      *error = copyString(messages.empty() ? "mixir: compilation failed" : messages);
    return nullptr;
  };
  if (!ir || !target) {
    err << "mixir_compile: ir and target must not be NULL";
    return fail();
  }

  if (std::string why = mixer::nestingProblem(StringRef(ir, ir_len)); !why.empty()) {
    err << "mixir_compile: " << why;
    return fail();
  }

  DialectRegistry registry;
  mixer::registerAllDialects(registry);
  MLIRContext ctx(registry, MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();

  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(StringRef(ir, ir_len), "<mixer-ir>"), SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &ctx, err);

  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (!module)
    return fail();

  std::string targetName = target;
  bool cpu = targetName == "cpu";
  if (!cpu && !StringRef(targetName).starts_with("sm_")) {
    err << "mixir_compile: target must be \"cpu\" or a CUDA chip like \"sm_90a\", got \""
        << targetName << "\"";
    return fail();
  }
  std::string pipeline = cpu ? "mixer-to-cpu" : "mixer-to-nvvm";
  std::string opts = options ? options : "";
  if (!cpu)
    opts = "chip=" + targetName + (opts.empty() ? "" : " " + opts);
  if (!opts.empty())
    pipeline += "{" + opts + "}";

  if (runPipeline) {
    PassManager pm(&ctx);
    if (failed(parsePassPipeline(pipeline, pm, err)))
      return fail();
    if (failed(pm.run(*module)))
      return fail();
  }

  auto result = std::make_unique<MixirModule>();
  {
    llvm::raw_string_ostream os(result->ir);
    module->print(os);
  }
  if (!cpu && failed(extractGpuBinary(*module, targetName, *result, err)))
    return fail();
  // Host code left as LLVM dialect functions (always for "cpu"; for a GPU
  // target with host=1, the code that computes launch geometry and arguments
  // and calls the runtime) is JIT-compiled now.
  bool hasHostCode = !module->getOps<LLVM::LLVMFuncOp>().empty();
  if (hasHostCode) {
    ExecutionEngineOptions engineOptions;
    // `transformer` is a function_ref: the function it refers to must outlive
    // create() (ASan found the temporary it once pointed to: stack-use-after-scope).
    std::function<llvm::Error(llvm::Module *)> optimize =
        makeOptimizingTransformer(/*optLevel=*/3, /*sizeLevel=*/0, /*targetMachine=*/nullptr);
    engineOptions.transformer = optimize;
    SmallVector<StringRef, 1> libs;
    if (runtime_library && *runtime_library)
      libs.push_back(runtime_library);
    else if (!cpu) {
      err << "mixir: GPU host code needs the runtime library (libmixir_runtime.so)";
      return fail();
    }
    engineOptions.sharedLibPaths = libs;
    auto engine = ExecutionEngine::create(*module, engineOptions);
    if (!engine) {
      err << "mixir: JIT failed: " << llvm::toString(engine.takeError());
      return fail();
    }
    result->engine = std::move(*engine);
    // Runs the global constructors (the GPU binary's registration).
    result->engine->initialize();
  }
  if (cpu)
    result->metadata = R"({"target": "cpu", "format": "jit", "kernels": []})";
  return result.release();
}

extern "C" {

void mixir_module_destroy(MixirModule *module) {
  if (module && !module->cached)
    delete module;
}

void *mixir_module_lookup(MixirModule *module, const char *name) {
  if (!module || !module->engine || !name)
    return nullptr;
  auto sym = module->engine->lookup(name);
  if (!sym) {
    llvm::consumeError(sym.takeError());
    return nullptr;
  }
  return *sym;
}

void *mixir_module_lookup_packed(MixirModule *module, const char *name) {
  if (!module || !module->engine || !name)
    return nullptr;
  auto fn = module->engine->lookupPacked(name);
  if (!fn) {
    llvm::consumeError(fn.takeError());
    return nullptr;
  }
  return reinterpret_cast<void *>(*fn);
}

size_t mixir_module_binary(MixirModule *module, const char **data) {
  if (!module) {
    if (data)
      *data = nullptr;
    return 0;
  }
  if (data)
    *data = module->binary.data();
  return module->binary.size();
}

const char *mixir_module_metadata(MixirModule *module) {
  return module ? module->metadata.c_str() : nullptr;
}

const char *mixir_module_ir(MixirModule *module) {
  return module ? module->ir.c_str() : nullptr;
}

const char *mixir_version(void) { return MIXIR_VERSION; }

void mixir_free_string(char *s) { std::free(s); }

} // extern "C"
