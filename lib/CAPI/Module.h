//===- Module.h - what a MixirModule holds (private to libmixir_c) --------===//

#ifndef MIXIR_CAPI_MODULE_H
#define MIXIR_CAPI_MODULE_H

#include "mixir-c/Compiler.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct MixirModule {
  std::unique_ptr<mlir::ExecutionEngine> engine; // host code (CPU, or GPU launches)
  std::string binary;                            // GPU
  std::string metadata;                          // JSON
  std::string ir;                                // as the pipeline left it
  // Owned by the compile cache: mixir_module_destroy leaves it alone.
  bool cached = false;
  // Modules built from a call: the (operand, dimension) pairs made static.
  std::vector<int32_t> staticDims;
};

namespace mixir {

/// Compiles (runPipeline) or reloads lowered IR; NULL and *error on failure.
MixirModule *compileOrLoad(const char *ir, size_t irLen, const char *target, const char *options,
                           const char *runtimeLibrary, bool runPipeline, char **error);

/// A malloc'd copy of `s` (what the C ABI hands out).
char *copyString(const std::string &s);

/// The compile cache (Cache.cpp); `prepare` runs on a freshly compiled module
/// before it is published and written to disk.
MixirModule *compileCached(llvm::StringRef ir, const char *target, const char *options,
                           const char *runtime, char **error,
                           llvm::function_ref<void(MixirModule &)> prepare);

} // namespace mixir

#endif // MIXIR_CAPI_MODULE_H
