//===- LowerChannelScan.cpp - mixer.channel_scan -> scf.for ---------------===//
//
// One channel's recurrence over its time range becomes a sequential scf.for.
// This is the code a GPU thread (or a CPU core) runs; the parallelism around
// it comes from mixer-tile-scan's scf.parallel.
//
//===----------------------------------------------------------------------===//

#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Complex/IR/Complex.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

#include <optional>

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERLOWERCHANNELSCAN
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

/// Scalar arithmetic in the state type, real or complex.
struct StateMath {
  OpBuilder &b;
  Location loc;
  Type state;

  bool isComplex() const { return isa<ComplexType>(state); }
  FloatType component() const {
    if (auto c = dyn_cast<ComplexType>(state))
      return cast<FloatType>(c.getElementType());
    return cast<FloatType>(state);
  }

  Value constant(double re) {
    if (auto c = dyn_cast<ComplexType>(state)) {
      return complex::ConstantOp::create(
          b, loc, c,
          b.getArrayAttr({b.getFloatAttr(component(), re), b.getFloatAttr(component(), 0.0)}));
    }
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(state, re));
  }

  Value extendFloat(Value v) {
    if (v.getType() == component())
      return v;
    return arith::ExtFOp::create(b, loc, component(), v);
  }

  /// Extends a loaded gate or input into the state type (never truncates:
  /// the verifier guarantees the state is at least as wide).
  Value toState(Value v) {
    if (v.getType() == state)
      return v;
    if (auto c = dyn_cast<ComplexType>(v.getType())) {
      Value re = extendFloat(complex::ReOp::create(b, loc, v));
      Value im = extendFloat(complex::ImOp::create(b, loc, v));
      return complex::CreateOp::create(b, loc, state, re, im);
    }
    Value re = extendFloat(v);
    if (!isComplex())
      return re;
    Value zero = arith::ConstantOp::create(b, loc, b.getFloatAttr(component(), 0.0));
    return complex::CreateOp::create(b, loc, state, re, zero);
  }

  /// Gate from its stored form: a_t, or exp(g_t) in log space. A real log gate
  /// is exponentiated before it becomes complex, so exp(-inf) is an exact 0.
  Value gate(Value g, bool logSpace) {
    if (!logSpace)
      return toState(g);
    if (isa<ComplexType>(g.getType())) {
      // exp(x + iy) = e^x (cos y + i sin y), spelled out so that both targets
      // need only real math (no complex-to-standard expansion of every op).
      Value z = toState(g);
      Value mag = math::ExpOp::create(b, loc, complex::ReOp::create(b, loc, z));
      Value im = complex::ImOp::create(b, loc, z);
      Value re = arith::MulFOp::create(b, loc, mag, math::CosOp::create(b, loc, im));
      Value imOut = arith::MulFOp::create(b, loc, mag, math::SinOp::create(b, loc, im));
      return complex::CreateOp::create(b, loc, state, re, imOut);
    }
    Value e = math::ExpOp::create(b, loc, extendFloat(g));
    return toState(e);
  }

  Value mul(Value x, Value y) {
    return isComplex() ? complex::MulOp::create(b, loc, x, y).getResult()
                       : arith::MulFOp::create(b, loc, x, y).getResult();
  }
  Value add(Value x, Value y) {
    return isComplex() ? complex::AddOp::create(b, loc, x, y).getResult()
                       : arith::AddFOp::create(b, loc, x, y).getResult();
  }
  /// x * h + u, the step of every recurrence here.
  Value step(Value a, Value h, Value u) { return add(mul(a, h), u); }
};

void lowerChannelScan(ChannelScanOp op, int64_t unroll) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Type stateTy = op.getFinalState().getType();
  StateMath sm{b, loc, stateTy};
  WindowAttr window = op.getWindow();
  bool reverse = op.getReverse(), logSpace = op.getLogSpace();

  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value len = memref::DimOp::create(b, loc, op.getGates(), 0);
  Value last = arith::SubIOp::create(b, loc, len, c1);
  Value zero = sm.constant(0.0), one = sm.constant(1.0);
  Value init = op.getInitialState() ? op.getInitialState() : zero;

  // Loads a_t and b_t in the state type, with t the position of step i.
  struct Loaded {
    Value t, a, u;
  };
  auto loadStep = [&](OpBuilder &lb, Value i) {
    Value t = reverse ? arith::SubIOp::create(lb, loc, last, i).getResult() : i;
    StateMath m{lb, loc, stateTy};
    Value g = memref::LoadOp::create(lb, loc, op.getGates(), ValueRange{t});
    Value u = memref::LoadOp::create(lb, loc, op.getInputs(), ValueRange{t});
    return Loaded{t, m.gate(g, logSpace), m.toState(u)};
  };
  auto storeState = [&](OpBuilder &lb, Value y, Value t) {
    if (Value out = op.getOutput())
      memref::StoreOp::create(lb, loc, y, out, ValueRange{t});
  };

  // One step of the recurrence: new iteration arguments and the output y.
  // Global: (h). Jagged: the local state l (zero at every block start), and
  // with a carry the in-block gate product r and the carry c applied to the
  // current block. Views start on a block boundary, so t mod BL is the
  // absolute offset inside the block.
  bool carry = window.hasCarry();
  Value blockLen, blockLast;
  SmallVector<Value> inits = {window.isGlobal() ? init : zero};
  if (window.isJagged()) {
    blockLen = arith::ConstantIndexOp::create(b, loc, window.getBlock());
    blockLast = arith::ConstantIndexOp::create(b, loc, window.getBlock() - 1);
    if (carry)
      inits.append({one, init});
  }
  // `staticFirst`: whether the step starts a block, when the caller knows it
  // (block-aligned unrolled loops); otherwise it is computed from t.
  auto step = [&](OpBuilder &lb, Value i, const Loaded &x, ValueRange iter,
                  std::optional<bool> staticFirst) -> std::pair<SmallVector<Value>, Value> {
    StateMath m{lb, loc, stateTy};
    if (window.isGlobal()) {
      Value h = m.step(x.a, iter[0], x.u);
      return {{h}, h};
    }
    if (staticFirst && !*staticFirst) {
      Value lNext = m.step(x.a, iter[0], x.u);
      if (!carry)
        return {{lNext}, lNext};
      Value rNext = m.mul(x.a, iter[1]);
      return {{lNext, rNext, iter[2]}, m.step(rNext, iter[2], lNext)};
    }
    Value first;
    if (staticFirst) {
      first = arith::ConstantIntOp::create(lb, loc, lb.getI1Type(), 1);
    } else {
      Value offset = arith::RemUIOp::create(lb, loc, x.t, blockLen);
      // First step of a block in processing order (reverse: its last
      // position, or the sequence end for a partial final block).
      first = arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::eq, offset,
                                    reverse ? blockLast : c0);
      if (reverse)
        first = arith::OrIOp::create(
            lb, loc, first, arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::eq, i, c0));
    }
    Value l = arith::SelectOp::create(lb, loc, first, zero, iter[0]);
    Value lNext = m.step(x.a, l, x.u);
    if (!carry)
      return {{lNext}, lNext};
    // Entering a new block (not the first one processed): the finished
    // block's local state becomes the carry.
    Value notStart = arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ne, i, c0);
    Value handOver = arith::AndIOp::create(lb, loc, first, notStart);
    Value c = arith::SelectOp::create(lb, loc, handOver, iter[0], iter[2]);
    Value r = arith::SelectOp::create(lb, loc, first, one, iter[1]);
    Value rNext = m.mul(x.a, r);
    return {{lNext, rNext, c}, m.step(rNext, c, lNext)};
  };

  // One step per iteration over [lo, hi).
  auto stepLoop = [&](Value lo, Value hi, ValueRange from) {
    return scf::ForOp::create(
        b, loc, lo, hi, c1, from, [&](OpBuilder &lb, Location, Value i, ValueRange iter) {
          Loaded x = loadStep(lb, i);
          auto [next, y] = step(lb, i, x, iter, std::nullopt);
          storeState(lb, y, x.t);
          scf::YieldOp::create(lb, loc, next);
        });
  };
  if (unroll <= 1) {
    op.getFinalState().replaceAllUsesWith(stepLoop(c0, len, inits).getResult(0));
    op.erase();
    return;
  }
  // Main loop, `unroll` steps per iteration with every load issued before the
  // first store: stores to the output may alias the inputs as far as the
  // compiler knows, so without this a thread has one step of loads in flight
  // and a memory-bound scan waits on latency. Jagged windows unroll by exactly
  // one block, aligned to the blocks, so that which step starts a block is
  // known statically; a reverse scan first runs the partial block at the end
  // of the sequence (the first it processes) step by step.
  int64_t u = window.isJagged() ? window.getBlock() : unroll;
  Value uV = arith::ConstantIndexOp::create(b, loc, u);
  Value rem = arith::RemUIOp::create(b, loc, len, uV);
  bool remainderFirst = window.isJagged() && reverse;
  Value mainBegin = remainderFirst ? rem : c0;
  Value mainEnd = remainderFirst ? len : arith::SubIOp::create(b, loc, len, rem).getResult();
  ValueRange state = inits;
  scf::ForOp head;
  if (remainderFirst) {
    head = stepLoop(c0, rem, inits);
    state = head.getResults();
  }
  auto main = scf::ForOp::create(
      b, loc, mainBegin, mainEnd, uV, state,
      [&](OpBuilder &lb, Location, Value i0, ValueRange iter) {
        SmallVector<Value> is;
        SmallVector<Loaded> xs;
        for (int64_t k = 0; k < u; ++k) {
          Value i = k == 0 ? i0
                           : arith::AddIOp::create(lb, loc, i0,
                                                   arith::ConstantIndexOp::create(lb, loc, k))
                                 .getResult();
          is.push_back(i);
          xs.push_back(loadStep(lb, i));
        }
        SmallVector<Value> cur(iter.begin(), iter.end()), ys;
        for (int64_t k = 0; k < u; ++k) {
          std::optional<bool> first;
          if (window.isJagged())
            first = k == 0;
          auto [next, y] = step(lb, is[k], xs[k], cur, first);
          cur = next;
          ys.push_back(y);
        }
        for (int64_t k = 0; k < u; ++k)
          storeState(lb, ys[k], xs[k].t);
        scf::YieldOp::create(lb, loc, cur);
      });
  Value result = main.getResult(0);
  if (!remainderFirst)
    result = stepLoop(mainEnd, len, main.getResults()).getResult(0);
  op.getFinalState().replaceAllUsesWith(result);
  op.erase();
}

class MixerLowerChannelScanPass
    : public mixer::impl::MixerLowerChannelScanBase<MixerLowerChannelScanPass> {
public:
  using MixerLowerChannelScanBase::MixerLowerChannelScanBase;

  void runOnOperation() override {
    SmallVector<ChannelScanOp> ops;
    getOperation().walk([&](ChannelScanOp op) { ops.push_back(op); });
    for (ChannelScanOp op : ops)
      lowerChannelScan(op, unroll);
    // A mixer.scan left here was not tiled: say so instead of emitting
    // code that silently skips it.
    WalkResult res = getOperation().walk([&](ScanOp op) {
      op.emitOpError("mixer-lower-channel-scan found an untiled mixer.scan; run "
                     "mixer-tile-scan first");
      return WalkResult::interrupt();
    });
    if (res.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
