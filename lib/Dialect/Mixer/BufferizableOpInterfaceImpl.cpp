//===- BufferizableOpInterfaceImpl.cpp - tensor -> memref mixer.scan ------===//
//
// mixer.scan is in destination-passing style, so one-shot bufferization only
// has to swap every tensor for its buffer: the destinations (output,
// final_state) become the memrefs the op writes, and the tensor results are
// replaced by those buffers.
//
//===----------------------------------------------------------------------===//

#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"

using namespace mlir;
using namespace mlir::bufferization;
using namespace mlir::mixer;

namespace {
struct ScanOpInterface
    : public DstBufferizableOpInterfaceExternalModel<ScanOpInterface, ScanOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto scan = cast<ScanOp>(op);
    if (scan.hasPureBufferSemantics())
      return success();
    auto bufferOf = [&](Value v) -> FailureOr<Value> {
      if (!v)
        return Value();
      return getBuffer(rewriter, v, options, state);
    };
    FailureOr<Value> gates = bufferOf(scan.getGates()), inputs = bufferOf(scan.getInputs()),
                     init = bufferOf(scan.getInitialState()),
                     output = bufferOf(scan.getOutput()),
                     finalState = bufferOf(scan.getFinalState());
    if (failed(gates) || failed(inputs) || failed(init) || failed(output) ||
        failed(finalState))
      return failure();

    rewriter.setInsertionPoint(op);
    ScanOp::create(rewriter, op->getLoc(), TypeRange{}, *gates, *inputs, *init, *output,
                   *finalState, scan.getWindowAttr(), scan.getLogSpaceAttr(),
                   scan.getReverseAttr());
    SmallVector<Value> replacements;
    if (*output)
      replacements.push_back(*output);
    if (*finalState)
      replacements.push_back(*finalState);
    replaceOpWithBufferizedValues(rewriter, op, replacements);
    return success();
  }
};
} // namespace

void mlir::mixer::registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, MixerDialect *) {
    ScanOp::attachInterface<ScanOpInterface>(*ctx);
  });
}
