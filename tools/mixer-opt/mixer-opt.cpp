//===- mixer-opt.cpp - the mixer optimizer driver -------------------------===//

#include "mixir/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::mixer::registerAllPasses();
  mlir::DialectRegistry registry;
  mlir::mixer::registerAllDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "mixer optimizer driver\n", registry));
}
