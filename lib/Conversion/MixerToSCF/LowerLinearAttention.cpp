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

#include "../LinearAttentionCommon.h"
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

void lowerRecurrent(LinearAttentionOp op, LoweringConfigAttr config) {
  ImplicitLocOpBuilder b(op.getLoc(), op);
  Type state = op.getStateElementType();
  int64_t K = op.getKeyDim();
  auto idx = [&](int64_t i) { return arith::ConstantIndexOp::create(b, i).getResult(); };
  Value zero = idx(0), one = idx(1);
  auto [H, group, T, N] = linearAttentionSizes(b, op.getQuery(), op.getValue(), op.getOffsets());
  Value V = memref::DimOp::create(b, op.getValue(), 3);
  Value scale = extendTo(b, state, op.getScale());
  Value zeroF = arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0));

  Programs programs = linearAttentionPrograms(b, op, N);
  auto par = scf::ParallelOp::create(b, ValueRange{zero, zero, zero},
                                     ValueRange{V, H, programs.count}, ValueRange{one, one, one});
  // The config travels on with the loop (its thread block, on the GPU).
  par->setAttr(LoweringConfigAttr::getAttrName(), config);
  b.setInsertionPointToStart(par.getBody());
  Value v = par.getInductionVars()[0], h = par.getInductionVars()[1],
        p = par.getInductionVars()[2];
  Value hq = arith::DivUIOp::create(b, h, group);
  // The sequence's (or piece's) time range in its row; n: its state's index.
  ProgramRange range = programRange(b, programs, op.getOffsets(), p, T);
  Value row = range.row, start = range.start, length = range.length;
  ArrayRef<Value> n = range.state;
  // The mLSTM's normaliser and stabiliser (no pieces): indexed by the sequence.
  Value seq = n.front();

  // Carried through time: the column (K), and for the mLSTM cell its copy of
  // the normaliser (K) and the stabiliser (1).
  bool mlstm = op.isMlstm();
  SmallVector<Value> column;
  for (int64_t d = 0; d < K; ++d)
    column.push_back(op.getInitialState()
                         ? loadAs(b, state, op.getInitialState(),
                                  stateIndices(n, ValueRange{h, idx(d), v}))
                         : zeroF);
  if (mlstm) {
    for (int64_t d = 0; d < K; ++d)
      column.push_back(op.getInitialNormalizer()
                           ? loadAs(b, state, op.getInitialNormalizer(), ValueRange{seq, h, idx(d)})
                           : zeroF);
    column.push_back(op.getInitialStabilizer()
                         ? loadAs(b, state, op.getInitialStabilizer(), ValueRange{seq, h})
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
    RecurrenceOperands operands = RecurrenceOperands::of(op);
    if (mlstm)
      emitMlstmStep(b, operands, state, carried, keys, row, t, h, hq, v, scale, op.getOutput());
    else
      emitLinearStep(b, operands, state, carried, keys, row, t, h, hq, v, scale, op.getOutput(),
                     op.getCorrectedValues());
    scf::YieldOp::create(b, carried);
  }
  if (Value final = op.getFinalState())
    for (int64_t d = 0; d < K; ++d)
      memref::StoreOp::create(b, loop.getResult(d), final,
                              stateIndices(n, ValueRange{h, idx(d), v}));
  if (mlstm && (op.getFinalNormalizer() || op.getFinalStabilizer())) {
    // Every column holds the same n and m: column 0 writes them.
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, v, zero), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    if (Value fn = op.getFinalNormalizer())
      for (int64_t d = 0; d < K; ++d)
        memref::StoreOp::create(b, loop.getResult(K + d), fn, ValueRange{seq, h, idx(d)});
    if (Value fm = op.getFinalStabilizer())
      memref::StoreOp::create(b, loop.getResult(2 * K), fm, ValueRange{seq, h});
  }
  op.erase();
}

struct MixerLowerLinearAttention
    : public mixer::impl::MixerLowerLinearAttentionBase<MixerLowerLinearAttention> {
  void runOnOperation() override {
    SmallVector<LinearAttentionOp> ops;
    getOperation().walk([&](LinearAttentionOp op) { ops.push_back(op); });
    for (LinearAttentionOp op : ops) {
      LoweringConfigAttr config = LoweringConfigAttr::of(op);
      if (!config) {
        op.emitOpError("mixer-lower-linear-attention needs a mixer.lowering_config; run "
                       "mixer-select-lowering-config first");
        return signalPassFailure();
      }
      if (config.getKernel() == KernelKind::Chunked)
        continue; // mixer-lower-linear-attention-mma's
      if (config.getKernel() != KernelKind::Recurrent) {
        op.emitOpError() << "mixer-lower-linear-attention: the config's kernel "
                         << stringifyKernelKind(config.getKernel())
                         << " is not one for linear attention (recurrent or chunked)";
        return signalPassFailure();
      }
      if (config.getKeySplit() || config.getSequenceSplit()) {
        op.emitOpError("mixer-lower-linear-attention: the config splits keys or sequences; "
                       "run mixer-split-linear-attention first");
        return signalPassFailure();
      }
      lowerRecurrent(op, config);
    }
  }
};
} // namespace
