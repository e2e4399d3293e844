//===- FuzzTarget.cpp - one fuzz input through the compiler ---------------===//

#include "FuzzTarget.h"

#include "mixir/InitAll.h"
#include "mixir/Pipelines/Pipelines.h"
#include "mixir/Support/NestingDepth.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace mlir;

namespace mixir::fuzz {

void initialize() {
  mixer::registerAllPasses();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
}

Stage runOne(llvm::StringRef text, bool serialize) {
  if (!mixer::nestingProblem(text).empty())
    return Stage::Refused;
  DialectRegistry registry;
  mixer::registerAllDialects(registry);
  MLIRContext ctx(registry, MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();
  // Diagnostics are the answer we want to bad input: swallow them.
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  ParserConfig config(&ctx, /*verifyAfterParse=*/false);
  // A null-terminated copy, as the C ABI parses it: MLIR's lexer reads up to a
  // terminating NUL, which libFuzzer's inputs do not have (ASan: a heap
  // overflow in the lexer on every input ending inside a token).
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, "fuzz-input"),
                               llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, config);
  if (!module)
    return Stage::Refused;
  if (failed(verify(*module)))
    return Stage::Parsed;
  // The pipelines the frontends run (the C ABI's compile), with the adjoint
  // derivation so that the scan adjoint is exercised too. Without `serialize`
  // the GPU pipeline stops before the NVPTX backend (the part of it that is
  // LLVM's own and slow); every mixer pass still runs.
  std::string toolkit = mixer::defaultCudaToolkitPath();
  std::string nvvm = serialize ? "mixer-to-nvvm{adjoint=1 host=1 toolkit=" + toolkit + "}"
                               : mixer::mixerToLoopsPipeline(/*adjoint=*/true, "sm_90a", true) +
                                     ",func.func(mixer-parallel-loops-to-gpu),gpu-kernel-outlining,"
                                     "mixer-set-kernel-index-width";
  bool lowered = false;
  for (const std::string &pipeline : {std::string("mixer-to-cpu{adjoint=1}"), nvvm}) {
    OwningOpRef<ModuleOp> copy = module->clone();
    PassManager pm(&ctx);
    std::string errors;
    llvm::raw_string_ostream err(errors);
    if (failed(parsePassPipeline(pipeline, pm, err)))
      llvm::report_fatal_error(llvm::Twine("mixer-fuzz: bad pipeline: ") + errors);
    lowered |= succeeded(pm.run(*copy));
  }
  return lowered ? Stage::Lowered : Stage::Verified;
}

} // namespace mixir::fuzz

/// The libFuzzer entry point (built with -fsanitize=fuzzer by
/// scripts/sanitizers.sh where clang is available).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool once = (mixir::fuzz::initialize(), true);
  (void)once;
  mixir::fuzz::runOne(llvm::StringRef(reinterpret_cast<const char *>(data), size),
                      /*serialize=*/false);
  return 0;
}
