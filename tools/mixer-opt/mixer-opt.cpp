//===- mixer-opt.cpp - the mixer optimizer driver -------------------------===//
//
// mlir-opt with the mixer dialect, passes and pipelines. The input is read
// here first so that text nested deeper than the parser's recursion can take
// is refused with a diagnostic (NestingDepth.h) instead of overflowing the
// stack.
//
//===----------------------------------------------------------------------===//

#include "mixir/InitAll.h"
#include "mixir/Support/NestingDepth.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::mixer::registerAllPasses();
  mlir::DialectRegistry registry;
  mlir::mixer::registerAllDialects(registry);
  auto [inputFilename, outputFilename] =
      mlir::registerAndParseCLIOptions(argc, argv, "mixer optimizer driver\n", registry);
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = mlir::openInputFile(inputFilename, &error);
  if (!input) {
    llvm::errs() << error << "\n";
    return 1;
  }
  if (std::string why = mlir::mixer::nestingProblem(input->getBuffer()); !why.empty()) {
    llvm::errs() << inputFilename << ": error: " << why << "\n";
    return 1;
  }
  if (inputFilename != "-") // upstream's driver, which reads the file again
    return mlir::asMainReturnCode(
        mlir::MlirOptMain(argc, argv, inputFilename, outputFilename, registry));
  // Standard input cannot be read twice: the driver's core on what was read.
  std::unique_ptr<llvm::ToolOutputFile> output = mlir::openOutputFile(outputFilename, &error);
  if (!output) {
    llvm::errs() << error << "\n";
    return 1;
  }
  if (mlir::failed(mlir::MlirOptMain(output->os(), std::move(input), registry,
                                     mlir::MlirOptMainConfig::createFromCLOptions())))
    return 1;
  output->keep();
  return 0;
}
