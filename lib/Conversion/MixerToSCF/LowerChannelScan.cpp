//===- LowerChannelScan.cpp - mixer.channel_scan -> scf.for ---------------===//
//
// One channel's recurrence over its time range becomes a sequential scf.for.
// This is the code a GPU thread (or a CPU core) runs; the parallelism around
// it comes from mixer-tile-scan's scf.parallel.
//
//===----------------------------------------------------------------------===//

#include "mixir/Conversion/Capabilities.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Complex/IR/Complex.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
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

/// base + k as an index (base itself for k = 0): the steps of an unrolled body.
Value offsetIndex(OpBuilder &b, Location loc, Value base, int64_t k) {
  if (k == 0)
    return base;
  return arith::AddIOp::create(b, loc, base, arith::ConstantIndexOp::create(b, loc, k));
}

/// Whether the config moves operand `index` (ODS order) of a channel scan as
/// whole-block vectors; a config that asks for it on an operand that cannot
/// move so (see blockVectorizable) is reported once, and the lowering fails.
struct VectorMoves {
  LoweringConfigAttr config;
  int64_t block;
  bool failed = false;

  bool operator()(Operation *op, unsigned index, Value series) {
    if (!series || !block || !config.vectorizes(index))
      return false;
    if (blockVectorizable(series, block, config.getVectorAlignment()))
      return true;
    if (!failed)
      op->emitOpError() << "mixer-lower-channel-scan: the config moves operand " << index
                        << " as aligned " << config.getVectorAlignment()
                        << "-byte vectors, but it has no static unit time stride or its "
                           "block is not a whole number of vectors";
    failed = true;
    return false;
  }
};

/// The `block` elements of `series` from `start`, as one aligned vector load
/// (valid where blockVectorizable holds).
Value loadBlockVector(OpBuilder &b, Location loc, Value series, Value start, int64_t block,
                      int64_t alignment) {
  auto element = cast<MemRefType>(series.getType()).getElementType();
  return vector::LoadOp::create(b, loc, VectorType::get({block}, element), series,
                                ValueRange{start}, /*nontemporal=*/false,
                                llvm::MaybeAlign(alignment));
}

/// Stores `values` (in memory order, already of the element type of `dest`) to
/// dest[start : start + values.size()] as one aligned vector store.
void storeBlockVector(OpBuilder &b, Location loc, ArrayRef<Value> values, Value dest,
                      Value start, int64_t alignment) {
  Type element = cast<MemRefType>(dest.getType()).getElementType();
  Value packed = vector::FromElementsOp::create(
      b, loc, VectorType::get({static_cast<int64_t>(values.size())}, element), values);
  vector::StoreOp::create(b, loc, packed, dest, ValueRange{start}, /*nontemporal=*/false,
                          llvm::MaybeAlign(alignment));
}

LogicalResult lowerChannelScan(ChannelScanOp op, LoweringConfigAttr config) {
  int64_t unroll = config.getUnroll(), vectorAlignment = config.getVectorAlignment();
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
    return success();
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
  // Time-contiguous operands of a jagged scan move one block per vector access
  // (a thread's block is contiguous in memory; scalar accesses by neighbouring
  // threads would touch a different line each): vector loads and stores at the
  // block's first position, aligned as the caller promised.
  int64_t block = window.isJagged() ? window.getBlock() : 0;
  VectorMoves moves{config, block};
  // ODS operand indices: gates 0, inputs 1, output 3.
  bool vecGates = moves(op, 0, op.getGates());
  bool vecInputs = moves(op, 1, op.getInputs());
  bool vecOutput = moves(op, 3, op.getOutput());
  if (moves.failed)
    return failure();
  auto loadBlock = [&](OpBuilder &lb, Value series, Value start) {
    return loadBlockVector(lb, loc, series, start, block, vectorAlignment);
  };
  auto main = scf::ForOp::create(
      b, loc, mainBegin, mainEnd, uV, state,
      [&](OpBuilder &lb, Location, Value i0, ValueRange iter) {
        // The block's first position in memory (reverse: the last processed).
        Value start = i0;
        if (reverse)
          start = arith::SubIOp::create(lb, loc, last,
                                        offsetIndex(lb, loc, i0, u - 1));
        // Step k reads element k of the block (reverse: u - 1 - k).
        auto lane = [&](int64_t k) { return reverse ? u - 1 - k : k; };
        Value gateBlock = vecGates ? loadBlock(lb, op.getGates(), start) : Value();
        Value inputBlock = vecInputs ? loadBlock(lb, op.getInputs(), start) : Value();
        SmallVector<Value> is;
        SmallVector<Loaded> xs;
        for (int64_t k = 0; k < u; ++k) {
          is.push_back(offsetIndex(lb, loc, i0, k));
          if (!vecGates && !vecInputs) {
            xs.push_back(loadStep(lb, is.back()));
            continue;
          }
          Value t = reverse ? arith::SubIOp::create(lb, loc, last, is.back()).getResult()
                            : is.back();
          StateMath m{lb, loc, stateTy};
          Value g = vecGates ? vector::ExtractOp::create(lb, loc, gateBlock, lane(k)).getResult()
                             : memref::LoadOp::create(lb, loc, op.getGates(), ValueRange{t})
                                   .getResult();
          Value v = vecInputs
                        ? vector::ExtractOp::create(lb, loc, inputBlock, lane(k)).getResult()
                        : memref::LoadOp::create(lb, loc, op.getInputs(), ValueRange{t})
                              .getResult();
          xs.push_back(Loaded{t, m.gate(g, logSpace), m.toState(v)});
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
        if (vecOutput) {
          SmallVector<Value> inMemoryOrder(u);
          for (int64_t k = 0; k < u; ++k)
            inMemoryOrder[lane(k)] = ys[k];
          storeBlockVector(lb, loc, inMemoryOrder, op.getOutput(), start, vectorAlignment);
        } else {
          for (int64_t k = 0; k < u; ++k)
            storeState(lb, ys[k], xs[k].t);
        }
        scf::YieldOp::create(lb, loc, cur);
      });
  Value result = main.getResult(0);
  if (!remainderFirst)
    result = stepLoop(mainEnd, len, main.getResults()).getResult(0);
  op.getFinalState().replaceAllUsesWith(result);
  op.erase();
  return success();
}

/// Converts a state value to the element type of a gradient destination.
Value toElement(OpBuilder &b, Location loc, Value v, Type element) {
  unsigned from = v.getType().getIntOrFloatBitWidth(), to = element.getIntOrFloatBitWidth();
  if (v.getType() == element)
    return v;
  if (to < from || (to == from && element != v.getType()))
    return arith::TruncFOp::create(b, loc, element, v);
  return arith::ExtFOp::create(b, loc, element, v);
}

/// The adjoint of one channel's range (real states). Global: one pass against
/// time, unrolled with the loads first. Jagged: one block per iteration, last
/// block first; each block loads its gates, inputs and output gradient into
/// registers (static indices), recomputes its forward local states, then runs
/// the two adjoints (rho: the block's exact recurrence; sigma: the local state
/// handed to the next block) backwards and stores both gradients. Full blocks
/// of time-contiguous operands move as aligned vectors, under the same
/// `vectorAlignment` promise as the forward.
LogicalResult lowerChannelScanAdjoint(ChannelScanAdjointOp op, LoweringConfigAttr config) {
  int64_t unroll = config.getUnroll(), vectorAlignment = config.getVectorAlignment();
  OpBuilder b(op);
  Location loc = op.getLoc();
  Type st = op.getResult().getType();
  StateMath sm{b, loc, st};
  WindowAttr window = op.getWindow();
  bool logSpace = op.getLogSpace();
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value len = memref::DimOp::create(b, loc, op.getGates(), 0);
  Value zero = sm.constant(0.0), one = sm.constant(1.0);
  Value carry = op.getCarry() ? op.getCarry() : zero;
  Value gradIn = op.getGradCarry() ? op.getGradCarry() : zero;
  bool writes = static_cast<bool>(op.getGatesGrad());
  auto load = [&](OpBuilder &lb, Value series, Value t) {
    return memref::LoadOp::create(lb, loc, series, ValueRange{t}).getResult();
  };
  auto gateAt = [&](OpBuilder &lb, Value t) {
    return StateMath{lb, loc, st}.gate(load(lb, op.getGates(), t), logSpace);
  };
  auto toState = [&](OpBuilder &lb, Value v) { return StateMath{lb, loc, st}.toState(v); };
  auto storeGrads = [&](OpBuilder &lb, Value t, Value da, Value db) {
    if (!writes)
      return;
    Type ea = cast<MemRefType>(op.getGatesGrad().getType()).getElementType();
    Type eb = cast<MemRefType>(op.getInputsGrad().getType()).getElementType();
    memref::StoreOp::create(lb, loc, toElement(lb, loc, da, ea), op.getGatesGrad(), ValueRange{t});
    memref::StoreOp::create(lb, loc, toElement(lb, loc, db, eb), op.getInputsGrad(),
                            ValueRange{t});
  };

  if (window.isGlobal()) {
    // Step p (processing order) is position t = len - 1 - p (t = p for the
    // adjoint of a reverse scan, whose "previous" state is h_{t+1}):
    //   lam = dh_t + g;  da = lam h_{t-1} (x a in log space);  db = lam;  g = a_t lam.
    bool reverse = op.getReverse();
    Value last = arith::SubIOp::create(b, loc, len, c1);
    struct Loaded {
      Value t, a, dh, hPrev;
    };
    auto loadAt = [&](OpBuilder &lb, Value p) {
      Value t = reverse ? p : arith::SubIOp::create(lb, loc, last, p).getResult();
      Value hasPrev =
          reverse ? arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ult, t, last).getResult()
                  : arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ugt, t, c0).getResult();
      Value neighbour = reverse ? arith::AddIOp::create(lb, loc, t, c1).getResult()
                                : arith::SubIOp::create(lb, loc, t, c1).getResult();
      Value prevIdx = arith::SelectOp::create(lb, loc, hasPrev, neighbour, c0);
      Value hPrev = arith::SelectOp::create(lb, loc, hasPrev,
                                            toState(lb, load(lb, op.getStates(), prevIdx)), carry);
      return Loaded{t, gateAt(lb, t), toState(lb, load(lb, op.getOutputGrad(), t)), hPrev};
    };
    auto compute = [&](OpBuilder &lb, const Loaded &x, Value g, Value &da, Value &db) {
      StateMath m{lb, loc, st};
      Value lam = m.add(x.dh, g);
      da = m.mul(lam, x.hPrev);
      if (logSpace)
        da = m.mul(da, x.a);
      db = lam;
      return m.mul(x.a, lam);
    };
    int64_t u = std::max<int64_t>(unroll, 1);
    Value uV = arith::ConstantIndexOp::create(b, loc, u);
    Value mainEnd = arith::SubIOp::create(b, loc, len, arith::RemUIOp::create(b, loc, len, uV));
    auto main = scf::ForOp::create(
        b, loc, c0, mainEnd, uV, ValueRange{gradIn},
        [&](OpBuilder &lb, Location, Value p0, ValueRange iter) {
          SmallVector<Loaded> xs;
          for (int64_t k = 0; k < u; ++k)
            xs.push_back(loadAt(lb, offsetIndex(lb, loc, p0, k)));
          Value g = iter[0];
          SmallVector<Value> das(u), dbs(u);
          for (int64_t k = 0; k < u; ++k)
            g = compute(lb, xs[k], g, das[k], dbs[k]);
          for (int64_t k = 0; k < u; ++k)
            storeGrads(lb, xs[k].t, das[k], dbs[k]);
          scf::YieldOp::create(lb, loc, g);
        });
    auto rest = scf::ForOp::create(
        b, loc, mainEnd, len, c1, main.getResults(),
        [&](OpBuilder &lb, Location, Value p, ValueRange iter) {
          Loaded x = loadAt(lb, p);
          Value da, db;
          Value g = compute(lb, x, iter[0], da, db);
          storeGrads(lb, x.t, da, db);
          scf::YieldOp::create(lb, loc, g);
        });
    op.getResult().replaceAllUsesWith(rest.getResult(0));
    op.erase();
    return success();
  }

  // Jagged.
  int64_t bl = window.getBlock();
  bool hasCarry = window.hasCarry();
  Value blV = arith::ConstantIndexOp::create(b, loc, bl);
  Value numBlocks = arith::CeilDivUIOp::create(b, loc, len, blV);
  Value lastIdx = arith::SubIOp::create(b, loc, len, c1);
  auto idx = [&](OpBuilder &lb, Value base, int64_t k) { return offsetIndex(lb, loc, base, k); };
  // The bl elements of the full block at `s` of `series`: one aligned vector
  // load when the layout allows it (as in the forward), else bl scalar loads.
  // ODS operand indices: gates 0, inputs 1, output_grad 3, gates_grad 6,
  // inputs_grad 7.
  VectorMoves moves{config, bl};
  bool vecGatesIn = moves(op, 0, op.getGates()), vecInputsIn = moves(op, 1, op.getInputs());
  bool vecGradIn = moves(op, 3, op.getOutputGrad());
  bool vecGradsOut = moves(op, 6, op.getGatesGrad()) && moves(op, 7, op.getInputsGrad());
  if (moves.failed)
    return failure();
  auto loadFullBlock = [&](OpBuilder &lb, Value series, bool vectorized, Value s) {
    SmallVector<Value> elements;
    if (vectorized) {
      Value v = loadBlockVector(lb, loc, series, s, bl, vectorAlignment);
      for (int64_t k = 0; k < bl; ++k)
        elements.push_back(vector::ExtractOp::create(lb, loc, v, k));
      return elements;
    }
    for (int64_t k = 0; k < bl; ++k)
      elements.push_back(load(lb, series, idx(lb, s, k)));
    return elements;
  };
  // The local (zero-initialised) state at the end of the full block at `s`.
  auto localEnd = [&](OpBuilder &lb, Value s) {
    StateMath m{lb, loc, st};
    SmallVector<Value> as, xs;
    SmallVector<Value> gateRaw = loadFullBlock(lb, op.getGates(), vecGatesIn, s);
    SmallVector<Value> inputRaw = loadFullBlock(lb, op.getInputs(), vecInputsIn, s);
    for (int64_t k = 0; k < bl; ++k) {
      as.push_back(m.gate(gateRaw[k], logSpace));
      xs.push_back(toState(lb, inputRaw[k]));
    }
    Value l = zero;
    for (int64_t k = 0; k < bl; ++k)
      l = m.step(as[k], l, xs[k]);
    return l;
  };
  // One block starting at s; `masked`: it may extend past the end (the last,
  // partial block), whose missing steps act as a = 1, b = 0, dh = 0.
  auto block = [&](OpBuilder &lb, Value s, Value c, Value sigmaIn, bool masked) {
    StateMath m{lb, loc, st};
    SmallVector<Value> ts, valid, as, xs, gs;
    SmallVector<Value> gateRaw, inputRaw, gradRaw;
    if (!masked) {
      gateRaw = loadFullBlock(lb, op.getGates(), vecGatesIn, s);
      inputRaw = loadFullBlock(lb, op.getInputs(), vecInputsIn, s);
      gradRaw = loadFullBlock(lb, op.getOutputGrad(), vecGradIn, s);
    }
    for (int64_t k = 0; k < bl; ++k) {
      Value t = idx(lb, s, k);
      Value v;
      if (masked) {
        v = arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ult, t, len);
        t = arith::MinUIOp::create(lb, loc, t, lastIdx);
      }
      Value a = masked ? gateAt(lb, t) : m.gate(gateRaw[k], logSpace);
      Value x = toState(lb, masked ? load(lb, op.getInputs(), t) : inputRaw[k]);
      Value g = toState(lb, masked ? load(lb, op.getOutputGrad(), t) : gradRaw[k]);
      if (masked) {
        a = arith::SelectOp::create(lb, loc, v, a, one);
        x = arith::SelectOp::create(lb, loc, v, x, zero);
        g = arith::SelectOp::create(lb, loc, v, g, zero);
      }
      ts.push_back(t);
      valid.push_back(v);
      as.push_back(a);
      xs.push_back(x);
      gs.push_back(g);
    }
    // Reverse pass first: the adjoints rho (the block's exact recurrence, from
    // dh) and sigma (the local state handed to the next block, from sigmaIn).
    SmallVector<Value> rhos(bl), sigmas(bl);
    Value rho = gs[bl - 1], sigma = sigmaIn;
    rhos[bl - 1] = rho;
    sigmas[bl - 1] = sigma;
    for (int64_t k = bl - 2; k >= 0; --k) {
      rho = m.step(as[k + 1], rho, gs[k]);
      sigma = m.mul(as[k + 1], sigma);
      rhos[k] = rho;
      sigmas[k] = sigma;
    }
    // Then forward: the local states l and the exact states y are recomputed
    // step by step and each step's gradients stored at once, so only the
    // adjoints stay live across the block (fewer registers than keeping l and
    // y for a backward sweep).
    // A full block whose gradient destinations allow it stores each as one
    // aligned vector after the sweep (the forward's layout rule).
    bool vecGrads = writes && !masked && vecGradsOut;
    SmallVector<Value> das, dbs;
    Value l = zero, r = one, yPrev = hasCarry ? c : zero, lPrev = zero;
    for (int64_t k = 0; k < bl; ++k) {
      Value da = m.add(m.mul(rhos[k], yPrev), m.mul(sigmas[k], lPrev));
      if (logSpace)
        da = m.mul(da, as[k]);
      Value db = m.add(rhos[k], sigmas[k]);
      if (vecGrads) {
        das.push_back(da);
        dbs.push_back(db);
      } else if (writes) {
        if (masked) {
          scf::IfOp::create(lb, loc, valid[k], [&](OpBuilder &ib, Location) {
            storeGrads(ib, ts[k], da, db);
            scf::YieldOp::create(ib, loc);
          });
        } else {
          storeGrads(lb, ts[k], da, db);
        }
      }
      l = m.step(as[k], l, xs[k]);
      if (hasCarry) {
        r = m.mul(as[k], r);
        yPrev = m.step(r, c, l);
      } else {
        yPrev = l;
      }
      lPrev = l;
    }
    if (vecGrads) {
      auto storeBlock = [&](ArrayRef<Value> values, Value dest) {
        Type element = cast<MemRefType>(dest.getType()).getElementType();
        SmallVector<Value> converted;
        for (Value v : values)
          converted.push_back(toElement(lb, loc, v, element));
        storeBlockVector(lb, loc, converted, dest, s, vectorAlignment);
      };
      storeBlock(das, op.getGatesGrad());
      storeBlock(dbs, op.getInputsGrad());
    }
    rho = rhos[0];
    return m.mul(as[0], rho); // gradient of the carry this block received
  };

  auto loop = scf::ForOp::create(
      b, loc, c0, numBlocks, c1, ValueRange{gradIn, zero},
      [&](OpBuilder &lb, Location, Value jj, ValueRange iter) {
        Value j = arith::SubIOp::create(lb, loc, arith::SubIOp::create(lb, loc, numBlocks, c1),
                                        jj);
        Value s = arith::MulIOp::create(lb, loc, j, blV);
        Value c = zero;
        if (hasCarry) {
          auto prev = scf::IfOp::create(
              lb, loc, arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ugt, j, c0),
              [&](OpBuilder &ib, Location) {
                scf::YieldOp::create(ib, loc,
                                     localEnd(ib, arith::SubIOp::create(ib, loc, s, blV)));
              },
              [&](OpBuilder &eb, Location) { scf::YieldOp::create(eb, loc, carry); });
          c = prev.getResult(0);
        }
        Value full = arith::CmpIOp::create(lb, loc, arith::CmpIPredicate::ule,
                                           arith::AddIOp::create(lb, loc, s, blV), len);
        auto gamma = scf::IfOp::create(
            lb, loc, full,
            [&](OpBuilder &ib, Location) {
              scf::YieldOp::create(ib, loc, block(ib, s, c, iter[0], /*masked=*/false));
            },
            [&](OpBuilder &eb, Location) {
              scf::YieldOp::create(eb, loc, block(eb, s, c, iter[0], /*masked=*/true));
            });
        Value g = gamma.getResult(0);
        // k = 2: the block before receives this block's carry gradient as its
        // sigma; k = 1: blocks do not talk to each other.
        scf::YieldOp::create(lb, loc, ValueRange{hasCarry ? g : zero, g});
      });
  op.getResult().replaceAllUsesWith(loop.getResult(1));
  op.erase();
  return success();
}

/// The config a channel scan is lowered with (tile-scan gives every channel
/// scan it makes its own; a hand-written one needs the strategy's).
LoweringConfigAttr channelConfig(Operation *op) {
  LoweringConfigAttr config = LoweringConfigAttr::of(op);
  if (!config || config.getKernel() != KernelKind::Tiled) {
    op->emitOpError("mixer-lower-channel-scan needs a mixer.lowering_config with kernel = "
                    "tiled; run mixer-select-lowering-config (or mixer-tile-scan) first");
    return {};
  }
  return config;
}

class MixerLowerChannelScanPass
    : public mixer::impl::MixerLowerChannelScanBase<MixerLowerChannelScanPass> {
public:
  void runOnOperation() override {
    SmallVector<ChannelScanOp> ops;
    getOperation().walk([&](ChannelScanOp op) { ops.push_back(op); });
    for (ChannelScanOp op : ops) {
      LoweringConfigAttr config = channelConfig(op);
      if (!config || failed(lowerChannelScan(op, config)))
        return signalPassFailure();
    }
    SmallVector<ChannelScanAdjointOp> adjoints;
    getOperation().walk([&](ChannelScanAdjointOp op) { adjoints.push_back(op); });
    for (ChannelScanAdjointOp op : adjoints) {
      LoweringConfigAttr config = channelConfig(op);
      if (!config || failed(lowerChannelScanAdjoint(op, config)))
        return signalPassFailure();
    }
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

bool mlir::mixer::blockVectorizable(Value series, int64_t block, int64_t alignment) {
  if (!series || alignment <= 0 || block <= 0)
    return false;
  auto type = dyn_cast<MemRefType>(series.getType());
  if (!type || (type.getRank() != 1 && type.getRank() != 3))
    return false;
  Type element = type.getElementType();
  if (!element.isIntOrFloat())
    return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  unsigned time = type.getRank() == 1 ? 0 : 1;
  if (failed(type.getStridesAndOffset(strides, offset)) || strides[time] != 1)
    return false;
  int64_t bytes = block * element.getIntOrFloatBitWidth() / 8;
  return bytes % alignment == 0;
}
