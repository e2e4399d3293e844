//===- LinearAttentionSteps.cpp - one step of the linear recurrences ------===//
//
// The scalar arithmetic of one time step on a carried state column, shared by
// the recurrent lowering of mixer.linear_attention and the forward passes
// (checkpoints, recomputation) of its adjoint's lowering.
//
//===----------------------------------------------------------------------===//

#include "../LinearAttentionCommon.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::mixer;

Value mlir::mixer::extendTo(ImplicitLocOpBuilder &b, Type state, Value v) {
  return v.getType() == state ? v : arith::ExtFOp::create(b, state, v).getResult();
}

Value mlir::mixer::truncTo(ImplicitLocOpBuilder &b, Type to, Value v) {
  return v.getType() == to ? v : arith::TruncFOp::create(b, to, v).getResult();
}

Value mlir::mixer::loadAs(ImplicitLocOpBuilder &b, Type state, Value memref, ValueRange indices) {
  return extendTo(b, state, memref::LoadOp::create(b, memref, indices));
}

/// One step of the linear recurrence (decay, additive or delta-rule update,
/// readout) on the carried column `s` (K values), updated in place; stores o_t[v].
void mlir::mixer::emitLinearStep(ImplicitLocOpBuilder &b, const RecurrenceOperands &op,
                                 Type state, SmallVectorImpl<Value> &s, ArrayRef<Value> keys,
                                 Value row, Value t, Value h, Value hq, Value v, Value scale,
                                 Value output, Value corrected) {
  int64_t K = op.keyDim;
  auto idx = [&](int64_t i) { return arith::ConstantIndexOp::create(b, i).getResult(); };
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));
  bool vectorDecay = op.vectorDecay, valueDecay = op.valueDecay;
  // Decay: S <- D_t S, on this column (a value decay is one factor per column).
  if (Value g = op.logDecay) {
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
  Value u = loadAs(b, state, op.value, ValueRange{row, t, h, v});
  if (Value beta = op.beta) {
    Value dot = zeroF;
    for (int64_t d = 0; d < K; ++d)
      dot = math::FmaOp::create(b, s[d], keys[d], dot);
    Value betaT = loadAs(b, state, beta, ValueRange{row, t, h});
    u = arith::MulFOp::create(b, betaT, arith::SubFOp::create(b, u, dot));
    if (corrected) {
      Type uTy = cast<MemRefType>(corrected.getType()).getElementType();
      memref::StoreOp::create(b, truncTo(b, uTy, u), corrected, ValueRange{row, t, h, v});
    }
  }
  for (int64_t d = 0; d < K; ++d)
    s[d] = math::FmaOp::create(b, keys[d], u, s[d]);
  if (output) {
    Value out = zeroF;
    for (int64_t d = 0; d < K; ++d) {
      Value q = loadAs(b, state, op.query, ValueRange{row, t, hq, idx(d)});
      out = math::FmaOp::create(b, s[d], q, out);
    }
    out = arith::MulFOp::create(b, out, scale);
    Type outTy = cast<MemRefType>(output.getType()).getElementType();
    memref::StoreOp::create(b, truncTo(b, outTy, out), output, ValueRange{row, t, h, v});
  }
}

/// One step of the stabilised mLSTM cell (the op's description) on the
/// carried values [S column (K), n (K), m], updated in place; stores o_t[v].
void mlir::mixer::emitMlstmStep(ImplicitLocOpBuilder &b, const RecurrenceOperands &op,
                                Type state, SmallVectorImpl<Value> &carried,
                                ArrayRef<Value> keys, Value row, Value t, Value h, Value hq,
                                Value v, Value scale, Value output) {
  int64_t K = op.keyDim;
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));
  Value m = carried[2 * K];
  Value logForget = op.logDecay ? loadAs(b, state, op.logDecay, ValueRange{row, t, h})
                                     : zeroF;
  Value input = loadAs(b, state, op.inputGate, ValueRange{row, t, h});
  Value decayed = arith::AddFOp::create(b, logForget, m);
  Value mNew = arith::MaximumFOp::create(b, decayed, input);
  Value forget = math::ExpOp::create(b, arith::SubFOp::create(b, decayed, mNew));
  Value in = math::ExpOp::create(b, arith::SubFOp::create(b, input, mNew));
  Value u = arith::MulFOp::create(b, in, loadAs(b, state, op.value, ValueRange{row, t, h, v}));
  for (int64_t d = 0; d < K; ++d) {
    carried[d] = math::FmaOp::create(b, keys[d], u, arith::MulFOp::create(b, forget, carried[d]));
    carried[K + d] = math::FmaOp::create(b, keys[d], in,
                                         arith::MulFOp::create(b, forget, carried[K + d]));
  }
  carried[2 * K] = mNew;
  if (!output)
    return;
  Value num = zeroF, den = zeroF;
  for (int64_t d = 0; d < K; ++d) {
    Value q = loadAs(b, state, op.query, ValueRange{row, t, hq, arith::ConstantIndexOp::create(b, d)});
    num = math::FmaOp::create(b, carried[d], q, num);
    den = math::FmaOp::create(b, carried[K + d], q, den);
  }
  num = arith::MulFOp::create(b, num, scale);
  den = math::AbsFOp::create(b, arith::MulFOp::create(b, den, scale));
  Value floor = math::ExpOp::create(b, arith::NegFOp::create(b, mNew));
  Value eps = arith::ConstantOp::create(b, b.getFloatAttr(state, op.epsilon));
  Value denom = arith::AddFOp::create(b, arith::MaximumFOp::create(b, den, floor), eps);
  Value out = arith::DivFOp::create(b, num, denom);
  Type outTy = cast<MemRefType>(output.getType()).getElementType();
  memref::StoreOp::create(b, truncTo(b, outTy, out), output, ValueRange{row, t, h, v});
}
