//===- LinearAttentionCommon.h - shared by the linear-attention lowerings -===//
//
// What the lowerings of mixer.linear_attention and its adjoint (recurrent,
// tensor-core) share: the run-time sizes, a sequence's time range in its row
// (batch rows, or the packed row cut by offsets), and the scalar arithmetic of
// one recurrence step on a carried state column.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_CONVERSION_LINEARATTENTIONCOMMON_H
#define MIXIR_CONVERSION_LINEARATTENTIONCOMMON_H

#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <tuple>

namespace mlir::mixer {

/// Run-time sizes: value heads H, value heads per query head (GVA), time T
/// (of a row), sequences N.
struct LinearAttentionSizes {
  Value H, group, T, N;
};

inline LinearAttentionSizes linearAttentionSizes(ImplicitLocOpBuilder &b, Value query,
                                                 Value value, Value offsets) {
  Value H = memref::DimOp::create(b, value, 2);
  Value group = arith::DivUIOp::create(b, H, memref::DimOp::create(b, query, 2));
  Value T = memref::DimOp::create(b, query, 1);
  Value N = offsets ? arith::SubIOp::create(b, memref::DimOp::create(b, offsets, 0),
                                            arith::ConstantIndexOp::create(b, 1))
                          .getResult()
                    : memref::DimOp::create(b, query, 0).getResult();
  return {H, group, T, N};
}

/// The time range of sequence `n`: (batch row, first step, length).
inline std::tuple<Value, Value, Value> sequenceRange(ImplicitLocOpBuilder &b, Value offsets,
                                                     Value n, Value T) {
  Value zero = arith::ConstantIndexOp::create(b, 0);
  if (!offsets)
    return {n, zero, T};
  auto offset = [&](Value i) {
    Value o = memref::LoadOp::create(b, offsets, ValueRange{i});
    return arith::IndexCastOp::create(b, b.getIndexType(), o).getResult();
  };
  Value start = offset(n);
  Value next = arith::AddIOp::create(b, n, arith::ConstantIndexOp::create(b, 1));
  return {zero, start, arith::SubIOp::create(b, offset(next), start)};
}

/// The programs of a mixer.linear_attention: one per sequence, or with
/// `pieces` one per (sequence, piece), p = n P + j. `count` is how many.
struct Programs {
  Value count, pieces, pieceLength; // pieces / pieceLength: null without pieces
};

inline Programs linearAttentionPrograms(ImplicitLocOpBuilder &b, LinearAttentionOp op, Value N) {
  Value L = op.getPieces();
  if (!L)
    return {N, Value(), Value()};
  Value state = op.getInitialState() ? op.getInitialState() : op.getFinalState();
  Value P = memref::DimOp::create(b, state, 1);
  return {arith::MulIOp::create(b, N, P), P, L};
}

/// What program `p` runs: (batch row, first step, length) and the indices of
/// its state in init/final ({n}, or {n, j} with pieces).
struct ProgramRange {
  Value row, start, length;
  SmallVector<Value, 2> state;
};

inline ProgramRange programRange(ImplicitLocOpBuilder &b, const Programs &programs, Value offsets,
                                 Value p, Value T) {
  if (!programs.pieces) {
    auto [row, start, length] = sequenceRange(b, offsets, p, T);
    return {row, start, length, {p}};
  }
  Value n = arith::DivUIOp::create(b, p, programs.pieces);
  Value j = arith::RemUIOp::create(b, p, programs.pieces);
  auto [row, start, length] = sequenceRange(b, offsets, n, T);
  // Piece j: [j L, min((j + 1) L, length)), empty past the sequence's end.
  Value begin = arith::MulIOp::create(b, j, programs.pieceLength);
  Value rest = arith::SelectOp::create(
      b, arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, length, begin),
      arith::SubIOp::create(b, length, begin), arith::ConstantIndexOp::create(b, 0));
  Value pieceLength = arith::MinUIOp::create(b, rest, programs.pieceLength);
  return {row, arith::AddIOp::create(b, start, begin), pieceLength, {n, j}};
}

/// `index` followed by `more`: the indices of an element of a state operand.
inline SmallVector<Value> stateIndices(ArrayRef<Value> index, ValueRange more) {
  SmallVector<Value> all(index);
  all.append(more.begin(), more.end());
  return all;
}

/// The forward operands one recurrence step reads, from a
/// mixer.linear_attention or a mixer.linear_attention_adjoint.
struct RecurrenceOperands {
  Value query, key, value, logDecay, beta, inputGate;
  bool vectorDecay = false, valueDecay = false;
  int64_t keyDim = 0;
  double epsilon = 1e-6;

  template <typename OpTy>
  static RecurrenceOperands of(OpTy op) {
    return {op.getQuery(), op.getKey(),          op.getValue(),          op.getLogDecay(),
            op.getBeta(),  op.getInputGate(),    op.hasVectorDecay(),    op.hasValueDecay(),
            op.getKeyDim(), op.getEpsilonOrDefault()};
  }
};

Value extendTo(ImplicitLocOpBuilder &b, Type state, Value v);
Value truncTo(ImplicitLocOpBuilder &b, Type to, Value v);
Value loadAs(ImplicitLocOpBuilder &b, Type state, Value memref, ValueRange indices);

/// One step of the linear recurrence (decay, additive or delta-rule update)
/// on the carried column `s` (K values) of value channel `v`, updated in
/// place; with an `output`, stores o_t[v] = scale S_t^T q_t there, and with
/// `corrected` (the delta rule) the step's update value beta_t (v_t - S^T k_t).
void emitLinearStep(ImplicitLocOpBuilder &b, const RecurrenceOperands &ops, Type state,
                    SmallVectorImpl<Value> &s, ArrayRef<Value> keys, Value row, Value t, Value h,
                    Value hq, Value v, Value scale, Value output, Value corrected = {});

/// One step of the stabilised mLSTM cell on the carried values [S column (K),
/// n (K), m], updated in place; with an `output`, stores o_t[v] there.
void emitMlstmStep(ImplicitLocOpBuilder &b, const RecurrenceOperands &ops, Type state,
                   SmallVectorImpl<Value> &carried, ArrayRef<Value> keys, Value row, Value t,
                   Value h, Value hq, Value v, Value scale, Value output);

} // namespace mlir::mixer

#endif // MIXIR_CONVERSION_LINEARATTENTIONCOMMON_H
