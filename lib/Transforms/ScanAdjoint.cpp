//===- ScanAdjoint.cpp - derive the backward function of a mixer.scan -----===//
//
// Reverse-mode differentiation at the level of the op: the adjoint of a
// linear recurrence is a linear recurrence run against time with shifted
// gates (mixer.scan_adjoint), so the backward of a function that runs one
// mixer.scan is another function that runs one mixer.scan_adjoint with the
// same window, gate space and direction. No second kernel is written by hand:
// both come out of the same tiling and lowering passes.
//
//===----------------------------------------------------------------------===//

#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERSCANADJOINT
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

LogicalResult deriveAdjoint(func::FuncOp fwd, ScanOp scan, OpBuilder &b) {
  if (!scan.hasPureBufferSemantics())
    return scan.emitOpError("mixer-scan-adjoint needs the buffer form");
  if (!scan.getOutput())
    return scan.emitOpError("mixer-scan-adjoint needs the output h (the adjoint reads it)");
  Location loc = scan.getLoc();
  Type gatesTy = scan.getGates().getType(), inputsTy = scan.getInputs().getType();
  Type outTy = scan.getOutput().getType();
  Value init = scan.getInitialState(), fin = scan.getFinalState();

  SmallVector<Type> args = {gatesTy, inputsTy};
  if (init)
    args.push_back(init.getType());
  args.append({outTy, outTy});            // h, dh
  if (fin)
    args.push_back(fin.getType());        // d final_state
  args.push_back(gatesTy);                // d gates
  args.push_back(inputsTy);               // d inputs
  if (init)
    args.push_back(init.getType());       // d initial_state

  b.setInsertionPointAfter(fwd);
  auto adj = func::FuncOp::create(b, loc, (fwd.getSymName() + "_adjoint").str(),
                                  b.getFunctionType(args, {}));
  if (fwd->hasAttr("llvm.emit_c_interface"))
    adj->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *body = adj.addEntryBlock();
  OpBuilder ab = OpBuilder::atBlockBegin(body);
  auto arg = [&, i = 0u]() mutable { return body->getArgument(i++); };
  Value a = arg(), x = arg();
  Value h0 = init ? arg() : Value();
  Value h = arg(), dh = arg();
  Value dF = fin ? arg() : Value();
  Value da = arg(), dx = arg();
  Value dh0 = init ? arg() : Value();
  ScanAdjointOp::create(ab, loc, a, x, h0, h, dh, dF, da, dx, dh0, scan.getWindowAttr(),
                        scan.getLogSpaceAttr(), scan.getReverseAttr());
  func::ReturnOp::create(ab, loc);
  return success();
}

class MixerScanAdjointPass
    : public mixer::impl::MixerScanAdjointBase<MixerScanAdjointPass> {
public:
  using MixerScanAdjointBase::MixerScanAdjointBase;

  void runOnOperation() override {
    SmallVector<std::pair<func::FuncOp, ScanOp>> work;
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      SmallVector<ScanOp> scans;
      fn.walk([&](ScanOp op) { scans.push_back(op); });
      if (scans.size() == 1)
        work.push_back({fn, scans.front()});
      else if (scans.size() > 1) {
        fn.emitError("mixer-scan-adjoint differentiates functions with one mixer.scan");
        return signalPassFailure();
      }
    }
    OpBuilder b(&getContext());
    for (auto [fn, scan] : work)
      if (failed(deriveAdjoint(fn, scan, b)))
        return signalPassFailure();
  }
};
} // namespace
