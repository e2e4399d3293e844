//===- LowerLinearAttention.cpp - mixer.linear_attention, recurrent form ---===//
//
// The sequential (recurrent) form of linear attention: one column of the
// state S (a value channel v, all K key dimensions) per parallel iteration,
// carried through time as K scalar SSA values. Every quantity the recurrence
// needs is per column: the decay, the delta rule's S^T k (a dot product over
// the column) and the readout S^T q. So the columns of all heads and
// sequences run independently: an scf.parallel over (v, head, sequence) that
// the GPU pipeline maps to threads (neighbouring v on neighbouring threads,
// for coalesced state and value accesses) and the CPU runs in a loop.
//
// The mLSTM cell's normaliser n (K scalars) and stabiliser m are the same for
// every column of a head: each column carries its own copy (2K + 1 scalars in
// all), which costs K more multiply-adds per step and no communication; the
// column v = 0 writes the final n and m.
//
// This is the decode kernel (one or a few tokens) and the exact fallback of
// the chunked tensor-core lowering; it is also the CPU path that tests check
// against the float64 oracles.
//
//===----------------------------------------------------------------------===//

#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERLOWERLINEARATTENTION
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

Value extendTo(ImplicitLocOpBuilder &b, Type state, Value v) {
  return v.getType() == state ? v : arith::ExtFOp::create(b, state, v).getResult();
}

Value truncTo(ImplicitLocOpBuilder &b, Type to, Value v) {
  return v.getType() == to ? v : arith::TruncFOp::create(b, to, v).getResult();
}

Value loadAs(ImplicitLocOpBuilder &b, Type state, Value memref, ValueRange indices) {
  return extendTo(b, state, memref::LoadOp::create(b, memref, indices));
}

/// One step of the linear recurrence (decay, additive or delta-rule update,
/// readout) on the carried column `s` (K values), updated in place; stores o_t[v].
void lowerLinearStep(ImplicitLocOpBuilder &b, LinearAttentionOp op, Type state,
                     SmallVector<Value> &s, ArrayRef<Value> keys, Value row, Value t, Value h,
                     Value hq, Value v, Value scale) {
  int64_t K = op.getKeyDim();
  auto idx = [&](int64_t i) { return arith::ConstantIndexOp::create(b, i).getResult(); };
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));
  bool vectorDecay = op.hasVectorDecay(), valueDecay = op.hasValueDecay();
  // Decay: S <- D_t S, on this column (a value decay is one factor per column).
  if (Value g = op.getLogDecay()) {
    Value shared;
    if (valueDecay)
      shared = math::ExpOp::create(b, loadAs(b, state, g, ValueRange{row, t, h, v}));
    else if (!vectorDecay)
      shared = math::ExpOp::create(b, loadAs(b, state, g, ValueRange{row, t, h}));
    for (int64_t d = 0; d < K; ++d) {
      Value decay = shared ? shared
                           : math::ExpOp::create(b, loadAs(b, state, g,
                                                          ValueRange{row, t, h, idx(d)}))
                                 .getResult();
      s[d] = arith::MulFOp::create(b, s[d], decay);
    }
  }
  // The update's value: v_t, or beta_t (v_t - S^T k_t) for the delta rule.
  Value u = loadAs(b, state, op.getValue(), ValueRange{row, t, h, v});
  if (Value beta = op.getBeta()) {
    Value dot = zeroF;
    for (int64_t d = 0; d < K; ++d)
      dot = math::FmaOp::create(b, s[d], keys[d], dot);
    Value betaT = loadAs(b, state, beta, ValueRange{row, t, h});
    u = arith::MulFOp::create(b, betaT, arith::SubFOp::create(b, u, dot));
  }
  for (int64_t d = 0; d < K; ++d)
    s[d] = math::FmaOp::create(b, keys[d], u, s[d]);
  if (Value output = op.getOutput()) {
    Value out = zeroF;
    for (int64_t d = 0; d < K; ++d) {
      Value q = loadAs(b, state, op.getQuery(), ValueRange{row, t, hq, idx(d)});
      out = math::FmaOp::create(b, s[d], q, out);
    }
    out = arith::MulFOp::create(b, out, scale);
    Type outTy = cast<MemRefType>(output.getType()).getElementType();
    memref::StoreOp::create(b, truncTo(b, outTy, out), output, ValueRange{row, t, h, v});
  }
}

/// One step of the stabilised mLSTM cell (the op's description) on the
/// carried values [S column (K), n (K), m], updated in place; stores o_t[v].
void lowerMlstmStep(ImplicitLocOpBuilder &b, LinearAttentionOp op, Type state,
                    SmallVector<Value> &carried, ArrayRef<Value> keys, Value row, Value t,
                    Value h, Value hq, Value v, Value scale) {
  int64_t K = op.getKeyDim();
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));
  Value m = carried[2 * K];
  Value logForget = op.getLogDecay() ? loadAs(b, state, op.getLogDecay(), ValueRange{row, t, h})
                                     : zeroF;
  Value input = loadAs(b, state, op.getInputGate(), ValueRange{row, t, h});
  Value decayed = arith::AddFOp::create(b, logForget, m);
  Value mNew = arith::MaximumFOp::create(b, decayed, input);
  Value forget = math::ExpOp::create(b, arith::SubFOp::create(b, decayed, mNew));
  Value in = math::ExpOp::create(b, arith::SubFOp::create(b, input, mNew));
  Value u = arith::MulFOp::create(b, in, loadAs(b, state, op.getValue(), ValueRange{row, t, h, v}));
  for (int64_t d = 0; d < K; ++d) {
    carried[d] = math::FmaOp::create(b, keys[d], u, arith::MulFOp::create(b, forget, carried[d]));
    carried[K + d] = math::FmaOp::create(b, keys[d], in,
                                         arith::MulFOp::create(b, forget, carried[K + d]));
  }
  carried[2 * K] = mNew;
  Value output = op.getOutput();
  if (!output)
    return;
  Value num = zeroF, den = zeroF;
  for (int64_t d = 0; d < K; ++d) {
    Value q = loadAs(b, state, op.getQuery(), ValueRange{row, t, hq, arith::ConstantIndexOp::create(b, d)});
    num = math::FmaOp::create(b, carried[d], q, num);
    den = math::FmaOp::create(b, carried[K + d], q, den);
  }
  num = arith::MulFOp::create(b, num, scale);
  den = math::AbsFOp::create(b, arith::MulFOp::create(b, den, scale));
  Value floor = math::ExpOp::create(b, arith::NegFOp::create(b, mNew));
  Value eps = arith::ConstantOp::create(b, b.getFloatAttr(state, op.getEpsilonOrDefault()));
  Value denom = arith::AddFOp::create(b, arith::MaximumFOp::create(b, den, floor), eps);
  Value out = arith::DivFOp::create(b, num, denom);
  Type outTy = cast<MemRefType>(output.getType()).getElementType();
  memref::StoreOp::create(b, truncTo(b, outTy, out), output, ValueRange{row, t, h, v});
}

void lowerRecurrent(LinearAttentionOp op) {
  ImplicitLocOpBuilder b(op.getLoc(), op);
  Type state = op.getStateElementType();
  int64_t K = op.getKeyDim();
  auto idx = [&](int64_t i) { return arith::ConstantIndexOp::create(b, i).getResult(); };
  Value zero = idx(0), one = idx(1);
  Value T = memref::DimOp::create(b, op.getQuery(), 1);
  Value H = memref::DimOp::create(b, op.getValue(), 2);
  // Grouped value heads: query/key head h / (H / Hq) serves value head h.
  Value group = arith::DivUIOp::create(b, H, memref::DimOp::create(b, op.getQuery(), 2));
  Value V = memref::DimOp::create(b, op.getValue(), 3);
  Value offsets = op.getOffsets();
  Value N = offsets ? arith::SubIOp::create(b, memref::DimOp::create(b, offsets, 0), one)
                          .getResult()
                    : memref::DimOp::create(b, op.getQuery(), 0).getResult();
  Value scale = extendTo(b, state, op.getScale());
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));

  auto par = scf::ParallelOp::create(b, ValueRange{zero, zero, zero}, ValueRange{V, H, N},
                                     ValueRange{one, one, one});
  b.setInsertionPointToStart(par.getBody());
  Value v = par.getInductionVars()[0], h = par.getInductionVars()[1],
        n = par.getInductionVars()[2];
  Value hq = arith::DivUIOp::create(b, h, group);
  // The sequence's time range in its row.
  Value row = n, start = zero, length = T;
  if (offsets) {
    auto offset = [&](Value i) {
      Value o = memref::LoadOp::create(b, offsets, ValueRange{i});
      return arith::IndexCastOp::create(b, b.getIndexType(), o).getResult();
    };
    row = zero;
    start = offset(n);
    length = arith::SubIOp::create(b, offset(arith::AddIOp::create(b, n, one)), start);
  }

  // Carried through time: the column (K), and for the mLSTM cell its copy of
  // the normaliser (K) and the stabiliser (1).
  bool mlstm = op.isMlstm();
  SmallVector<Value> column;
  for (int64_t d = 0; d < K; ++d)
    column.push_back(op.getInitialState()
                         ? loadAs(b, state, op.getInitialState(), ValueRange{n, h, idx(d), v})
                         : zeroF);
  if (mlstm) {
    for (int64_t d = 0; d < K; ++d)
      column.push_back(op.getInitialNormalizer()
                           ? loadAs(b, state, op.getInitialNormalizer(), ValueRange{n, h, idx(d)})
                           : zeroF);
    column.push_back(op.getInitialStabilizer()
                         ? loadAs(b, state, op.getInitialStabilizer(), ValueRange{n, h})
                         : zeroF);
  }

  auto loop = scf::ForOp::create(b, zero, length, one, column);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t = arith::AddIOp::create(b, start, loop.getInductionVar());
    SmallVector<Value> carried(loop.getRegionIterArgs());
    SmallVector<Value> keys;
    for (int64_t d = 0; d < K; ++d)
      keys.push_back(loadAs(b, state, op.getKey(), ValueRange{row, t, hq, idx(d)}));
    if (mlstm)
      lowerMlstmStep(b, op, state, carried, keys, row, t, h, hq, v, scale);
    else
      lowerLinearStep(b, op, state, carried, keys, row, t, h, hq, v, scale);
    scf::YieldOp::create(b, carried);
  }
  if (Value final = op.getFinalState())
    for (int64_t d = 0; d < K; ++d)
      memref::StoreOp::create(b, loop.getResult(d), final, ValueRange{n, h, idx(d), v});
  if (mlstm && (op.getFinalNormalizer() || op.getFinalStabilizer())) {
    // Every column holds the same n and m: column 0 writes them.
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, v, zero), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    if (Value fn = op.getFinalNormalizer())
      for (int64_t d = 0; d < K; ++d)
        memref::StoreOp::create(b, loop.getResult(K + d), fn, ValueRange{n, h, idx(d)});
    if (Value fm = op.getFinalStabilizer())
      memref::StoreOp::create(b, loop.getResult(2 * K), fm, ValueRange{n, h});
  }
  op.erase();
}

struct MixerLowerLinearAttention
    : public mixer::impl::MixerLowerLinearAttentionBase<MixerLowerLinearAttention> {
  void runOnOperation() override {
    SmallVector<LinearAttentionOp> ops;
    getOperation().walk([&](LinearAttentionOp op) { ops.push_back(op); });
    for (LinearAttentionOp op : ops)
      lowerRecurrent(op);
  }
};
} // namespace
