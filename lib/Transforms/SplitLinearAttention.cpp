//===- SplitLinearAttention.cpp - key and sequence splits -----------------===//
//
// The schedules above the linear-attention kernels, as the strategy recorded
// them in an op's config.
//
// Key split. With a decay that is diagonal over the key dimensions (none, per
// head, per key) the rows of the state over a block of key dimensions evolve
// on their own, and o = sum over blocks of the blocks' outputs: K = 256 runs
// as two K = 128 tensor-core passes with float32 outputs into scratch, summed
// into the output by a parallel loop.
//
// Sequence split (the two-phase schedule). One block per (value tile, head,
// sequence) leaves SMs idle with few heads and long sequences. Cutting every
// sequence into P pieces of L steps restores the parallelism:
//
//   1. the op without an output, with `pieces`: each piece's state from zero,
//      L_j, into scratch [P, N, H, K, V];
//   2. each piece's total log decay, G_j (per key dimension; a per-head decay
//      is broadcast, no decay is 0), in two parallel loops (64-step chunk sums,
//      then piece sums), in the state type;
//   3. a mixer.scan over pieces, y_j = exp(G_j) y_{j-1} + L_j from y_{-1} = the
//      initial state, on [N H K, P, V] views: batch rows are (sequence, head,
//      key), channels the value dimension (coalesced), the gate a stride-0
//      view over it. y_{j-1} is piece j's initial state and y_{P-1} the final;
//   4. the op with `pieces` from those states, writing the output.
//
// Pieces past a (packed) sequence's end are empty: their state from zero is 0
// and their decay 0, so the scan carries the state through them unchanged.
// With the run-time rule (`piece = 0`), generated code decides from the sizes
// of the call; the unsplit op is the other branch. Scratch is sized by the
// same decision (0 bytes when the op runs unsplit).
//
//===----------------------------------------------------------------------===//

#include "mixir/Conversion/Capabilities.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Strategy/Facts.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERSPLITLINEARATTENTION
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

constexpr int64_t kChunk = 64; // pieces are whole chunks; the gate sums go a chunk at a time

struct Splitter {
  LinearAttentionOp op;
  LoweringConfigAttr config;
  ImplicitLocOpBuilder b;
  Type state;
  int64_t K, V;

  Splitter(LinearAttentionOp op)
      : op(op), config(LoweringConfigAttr::of(op)), b(op.getLoc(), op),
        state(op.getStateElementType()), K(op.getKeyDim()), V(op.getValueDim()) {}

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value ceilDiv(Value x, Value y) { return arith::CeilDivUIOp::create(b, x, y); }
  Value min(Value x, Value y) { return arith::MinUIOp::create(b, x, y); }
  Value max(Value x, Value y) { return arith::MaxUIOp::create(b, x, y); }
  Value ult(Value x, Value y) { return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y); }
  Value ule(Value x, Value y) { return arith::CmpIOp::create(b, arith::CmpIPredicate::ule, x, y); }
  Value select(Value c, Value x, Value y) { return arith::SelectOp::create(b, c, x, y); }

  /// The parent's config without one or both splits (for the ops it becomes);
  /// `pieces`: for an op that runs in pieces, which is not chunk-parallel.
  LoweringConfigAttr without(bool keys, bool sequences, bool pieces = false) {
    return LoweringConfigAttr::get(
        op.getContext(), config.getKernel(), config.getTile(), config.getUnroll(),
        config.getBlock(), config.getTimeFastest(), config.getExchangeOutput(),
        config.getVectorAlignment(), config.getVectorOperands(), config.getIndexBitwidth(),
        config.getSinkConstants(), config.getChunk(), config.getBlockV(),
        keys ? 0 : config.getKeySplit(), sequences ? SequenceSplitAttr() : config.getSequenceSplit(),
        pieces ? 0 : config.getChunkParallel());
  }

  /// A copy of the op with some operands replaced and the given config.
  LinearAttentionOp cloneWith(LoweringConfigAttr c, function_ref<void(IRMapping &)> remap,
                              function_ref<void(LinearAttentionOp)> edit = {}) {
    IRMapping map;
    remap(map);
    auto copy = cast<LinearAttentionOp>(b.clone(*op, map));
    copy->setAttr(LoweringConfigAttr::getAttrName(), c);
    if (edit)
      edit(copy);
    return copy;
  }

  /// A dynamic view of `buffer` (identity layout) with the given sizes, strides
  /// and offset (static ones may be given as constants).
  Value view(Value buffer, ArrayRef<Value> sizes, ArrayRef<Value> strides, Value offset,
             ArrayRef<int64_t> staticSizes = {}) {
    SmallVector<int64_t> shape(sizes.size(), ShapedType::kDynamic);
    for (auto [i, s] : llvm::enumerate(staticSizes))
      if (s > 0)
        shape[i] = s;
    SmallVector<int64_t> dynStrides(strides.size(), ShapedType::kDynamic);
    auto type = MemRefType::get(
        shape, cast<MemRefType>(buffer.getType()).getElementType(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, dynStrides));
    SmallVector<OpFoldResult> sz, st;
    for (auto [i, s] : llvm::enumerate(sizes))
      sz.push_back(ShapedType::isDynamic(shape[i]) ? OpFoldResult(s) : b.getIndexAttr(shape[i]));
    for (Value s : strides)
      st.push_back(s);
    return memref::ReinterpretCastOp::create(b, type, buffer, OpFoldResult(offset), sz, st);
  }

  /// Scratch at the top level of the function (see Scratch.h).
  Value scratch(Type elt, ArrayRef<int64_t> shape, ArrayRef<Value> dynamicSizes) {
    Operation *anchor = op;
    while (!isa<FunctionOpInterface>(anchor->getParentOp()))
      anchor = anchor->getParentOp();
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(anchor);
    auto alloc = memref::AllocOp::create(b, MemRefType::get(shape, elt), dynamicSizes);
    alloc->setAttr(kWorkspaceAttr, b.getUnitAttr());
    return alloc;
  }

  /// An outermost scf.parallel over [0, upper) whose body `body` builds; the
  /// strategy gives it its thread block (mixer-select-lowering-config runs
  /// again after this pass): threads over the first dimension, the grid over
  /// the next two. A GPU grid has three dimensions and the mapping runs any
  /// further one sequentially inside each thread, so dimensions past the third
  /// are folded into it (the body still sees one index per dimension).
  void parallel(ArrayRef<Value> upper, function_ref<void(ValueRange)> body) {
    SmallVector<Value> bounds(upper.begin(), upper.end());
    while (bounds.size() > 3) {
      Value last = bounds.pop_back_val();
      bounds.back() = mul(bounds.back(), last);
    }
    SmallVector<Value> zeros(bounds.size(), idx(0)), ones(bounds.size(), idx(1));
    auto loop = scf::ParallelOp::create(b, zeros, bounds, ones);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody()); // before its scf.reduce
    SmallVector<Value> iv = llvm::to_vector(ValueRange(loop.getInductionVars()));
    if (upper.size() > 3) {
      // Delinearise the folded index, the innermost (third) dimension fastest.
      Value folded = iv.pop_back_val();
      for (size_t d = 2; d < upper.size(); ++d) {
        if (d + 1 == upper.size()) {
          iv.push_back(folded);
          break;
        }
        iv.push_back(arith::RemUIOp::create(b, folded, upper[d]));
        folded = arith::DivUIOp::create(b, folded, upper[d]);
      }
    }
    body(iv);
  }

  Value zero() { return arith::ConstantOp::create(b, b.getFloatAttr(state, 0.0)); }
  Value extend(Value v) {
    if (v.getType() == state)
      return v;
    return arith::ExtFOp::create(b, state, v);
  }

  // --- Key split -------------------------------------------------------------

  void splitKeys() {
    int64_t Kb = config.getKeySplit();
    Value B = memref::DimOp::create(b, op.getQuery(), 0);
    Value T = memref::DimOp::create(b, op.getQuery(), 1);
    Value H = memref::DimOp::create(b, op.getValue(), 2);
    Value out = op.getOutput();
    SmallVector<Value> partials;
    for (int64_t lo = 0; lo < K; lo += Kb) {
      int64_t width = std::min(Kb, K - lo);
      auto slice = [&](Value x, unsigned dim) -> Value {
        if (!x)
          return x;
        auto type = cast<MemRefType>(x.getType());
        SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
        SmallVector<OpFoldResult> sizes, strides(type.getRank(), b.getIndexAttr(1));
        for (int64_t d = 0; d < type.getRank(); ++d)
          sizes.push_back(d == dim ? OpFoldResult(b.getIndexAttr(width))
                                   : OpFoldResult(memref::DimOp::create(b, x, d).getResult()));
        offsets[dim] = b.getIndexAttr(lo);
        return memref::SubViewOp::create(b, x, offsets, sizes, strides);
      };
      Value partial;
      if (out)
        partial = scratch(state, {ShapedType::kDynamic, ShapedType::kDynamic,
                                  ShapedType::kDynamic, V},
                          {B, T, H});
      partials.push_back(partial);
      Value q = slice(op.getQuery(), 3), k = slice(op.getKey(), 3);
      Value g = op.hasVectorDecay() ? slice(op.getLogDecay(), 3) : op.getLogDecay();
      Value init = slice(op.getInitialState(), 2), final = slice(op.getFinalState(), 2);
      cloneWith(without(/*keys=*/true, /*sequences=*/false), [&](IRMapping &map) {
        map.map(op.getQuery(), q);
        map.map(op.getKey(), k);
        if (op.getLogDecay())
          map.map(op.getLogDecay(), g);
        if (op.getInitialState())
          map.map(op.getInitialState(), init);
        if (op.getFinalState())
          map.map(op.getFinalState(), final);
        if (out)
          map.map(out, partial);
      });
    }
    if (!out)
      return;
    // o = the sum of the blocks' float32 outputs, in o's type.
    Value Vv = memref::DimOp::create(b, out, 3);
    Type outElt = cast<MemRefType>(out.getType()).getElementType();
    parallel({Vv, H, T, B}, [&](ValueRange iv) {
      ValueRange at{iv[3], iv[2], iv[1], iv[0]};
      Value sum = memref::LoadOp::create(b, partials[0], at);
      for (Value p : ArrayRef<Value>(partials).drop_front())
        sum = arith::AddFOp::create(b, sum, memref::LoadOp::create(b, p, at));
      if (outElt != state)
        sum = arith::TruncFOp::create(b, outElt, sum);
      memref::StoreOp::create(b, sum, out, at);
    });
  }

  // --- Sequence split --------------------------------------------------------

  /// The piece length L > 0 when the op runs split (the rule of the config's
  /// sequence_split, evaluated on the sizes of the call), and whether it does.
  std::pair<Value, Value> pieceLength(Value tokens, Value N, Value H, Value T) {
    SequenceSplitAttr rule = config.getSequenceSplit();
    if (rule.getPiece() > 0) {
      Value L = idx(rule.getPiece());
      return {L, ult(L, T)};
    }
    int64_t tilesPerHead = std::max<int64_t>(V / 64, 1);
    Value tiles = mul(H, idx(tilesPerHead));
    Value mean = arith::DivUIOp::create(b, tokens, max(N, idx(1)));
    Value few = ule(mul(N, tiles), idx(rule.getMaxPrograms()));
    Value longEnough = ule(idx(rule.getMinLength()), mean);
    Value pieces = max(arith::DivUIOp::create(b, idx(rule.getTargetPrograms()), max(tiles, idx(1))),
                       idx(1));
    Value L = max(ceilDiv(tokens, pieces), idx(rule.getMinPiece()));
    Value granule = idx(rule.getGranule());
    L = mul(ceilDiv(L, granule), granule);
    Value split = arith::AndIOp::create(b, arith::AndIOp::create(b, few, longEnough), ult(L, T));
    return {L, split};
  }

  void splitSequences() {
    Value offsets = op.getOffsets();
    Value rows = memref::DimOp::create(b, op.getQuery(), 0);
    Value T = memref::DimOp::create(b, op.getQuery(), 1);
    Value H = memref::DimOp::create(b, op.getValue(), 2);
    Value N = offsets ? sub(memref::DimOp::create(b, offsets, 0), idx(1)) : rows;
    Value tokens = mul(rows, T);
    auto [L, split] = pieceLength(tokens, N, H, T);
    // P pieces per sequence: a (packed) row's length bounds every sequence.
    Value P = select(split, ceilDiv(T, max(L, idx(1))), idx(0));
    Value chunks = select(split, ceilDiv(T, idx(kChunk)), idx(0));
    Value startsRows = select(split, add(P, idx(1)), idx(0));
    int64_t dyn = ShapedType::kDynamic;
    Value local = scratch(state, {dyn, dyn, dyn, K, V}, {P, N, H});
    Value starts = scratch(state, {dyn, dyn, dyn, K, V}, {startsRows, N, H});
    Value chunkSums = scratch(state, {dyn, dyn, dyn, K}, {chunks, N, H});
    Value gateSums = scratch(state, {dyn, dyn, dyn, K}, {P, N, H});

    auto ifOp = scf::IfOp::create(b, split, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      cloneWith(without(false, true), [](IRMapping &) {});
    }
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value KV = idx(K * V), Vc = idx(V), Kc = idx(K);
    Value HKV = mul(H, KV), NHKV = mul(N, HKV), NHK = mul(mul(N, H), Kc);
    Value c0 = idx(0), c1 = idx(1);
    // [N, P, H, K, V] views of the piece-major buffers (piece j of sequence n
    // at row j).
    auto pieceStates = [&](Value buffer, Value rowOffset) {
      return view(buffer, {N, P, H, Kc, Vc}, {HKV, NHKV, KV, Vc, c1}, rowOffset,
                  {0, 0, 0, K, V});
    };

    // 1. Each piece's state from zero.
    cloneWith(without(false, true, /*pieces=*/true), [](IRMapping &) {},
              [&](LinearAttentionOp pass) {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(pass);
      pass.getOutputMutable().clear();
      pass.getInitialStateMutable().clear();
      pass.getFinalStateMutable().assign(pieceStates(local, c0));
      pass.getPiecesMutable().assign(L);
    });

    // 2. Each piece's total log decay, per key dimension: 64-step chunk sums
    //    (chunks start at the sequence's start, as pieces do), then piece sums.
    Value g = op.getLogDecay();
    Value chunksPerPiece = arith::DivUIOp::create(b, L, idx(kChunk));
    // Threads over the key dimensions where the decay has them (coalesced
    // reads), else over the chunks: a per-head decay's sums are computed once,
    // into key 0, and the piece sums broadcast them over the keys.
    bool perKey = op.hasVectorDecay();
    if (g)
      parallel(perKey ? SmallVector<Value>{Kc, chunks, H, N} : SmallVector<Value>{chunks, c1, H, N},
               [&](ValueRange iv) {
        Value k = iv[perKey ? 0 : 1], c = iv[perKey ? 1 : 0], h = iv[2], n = iv[3];
        auto [row, start, length] = sequenceRangeOf(n, T);
        Value t0 = mul(c, idx(kChunk));
        Value rest = select(ult(t0, length), sub(length, t0), c0);
        Value steps = min(rest, idx(kChunk));
        auto loop = scf::ForOp::create(b, c0, steps, c1, ValueRange{zero()});
        {
          OpBuilder::InsertionGuard lg(b);
          b.setInsertionPointToStart(loop.getBody());
          Value t = add(add(start, t0), loop.getInductionVar());
          SmallVector<Value> at = {row, t, h};
          if (op.hasVectorDecay())
            at.push_back(k);
          Value x = extend(memref::LoadOp::create(b, g, at));
          scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(b, loop.getRegionIterArg(0), x)});
        }
        memref::StoreOp::create(b, loop.getResult(0), chunkSums, ValueRange{c, n, h, k});
      });
    parallel(perKey ? SmallVector<Value>{Kc, P, H, N} : SmallVector<Value>{P, Kc, H, N},
             [&](ValueRange iv) {
      Value k = iv[perKey ? 0 : 1], j = iv[perKey ? 1 : 0], h = iv[2], n = iv[3];
      Value total = zero();
      if (g) {
        Value first = mul(j, chunksPerPiece);
        Value last = min(add(first, chunksPerPiece), chunks);
        auto loop = scf::ForOp::create(b, first, last, c1, ValueRange{zero()});
        {
          OpBuilder::InsertionGuard lg(b);
          b.setInsertionPointToStart(loop.getBody());
          Value x = memref::LoadOp::create(
              b, chunkSums, ValueRange{loop.getInductionVar(), n, h, perKey ? k : c0});
          scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(b, loop.getRegionIterArg(0), x)});
        }
        total = loop.getResult(0);
      }
      memref::StoreOp::create(b, total, gateSums, ValueRange{j, n, h, k});
    });

    // 3. Row 0 of the piece starts: the initial state; then the scan over
    //    pieces fills rows 1..P (row P: the final state).
    Value init = op.getInitialState();
    parallel({Vc, Kc, H, N}, [&](ValueRange iv) {
      Value v = iv[0], k = iv[1], h = iv[2], n = iv[3];
      Value x = init ? extend(memref::LoadOp::create(b, init, ValueRange{n, h, k, v}))
                     : zero();
      memref::StoreOp::create(b, x, starts, ValueRange{c0, n, h, k, v});
    });
    Value gates = view(gateSums, {NHK, P, Vc}, {c1, NHK, c0}, c0);
    Value inputs = view(local, {NHK, P, Vc}, {Vc, NHKV, c1}, c0);
    Value outs = view(starts, {NHK, P, Vc}, {Vc, NHKV, c1}, NHKV);
    Value first = view(starts, {NHK, Vc}, {Vc, c1}, c0);
    ScanOp::create(b, TypeRange{}, gates, inputs, first, outs, Value(), WindowAttr::get(b.getContext()),
                   b.getUnitAttr(), UnitAttr());

    // 4. The output from the pieces' initial states.
    cloneWith(without(false, true, /*pieces=*/true), [](IRMapping &) {},
              [&](LinearAttentionOp pass) {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(pass);
      pass.getInitialStateMutable().assign(pieceStates(starts, c0));
      pass.getFinalStateMutable().clear();
      pass.getPiecesMutable().assign(L);
    });
    if (Value final = op.getFinalState())
      parallel({Vc, Kc, H, N}, [&](ValueRange iv) {
        Value v = iv[0], k = iv[1], h = iv[2], n = iv[3];
        Value x = memref::LoadOp::create(b, starts, ValueRange{P, n, h, k, v});
        memref::StoreOp::create(b, x, final, ValueRange{n, h, k, v});
      });
  }

  /// (batch row, first step, length) of sequence n.
  std::tuple<Value, Value, Value> sequenceRangeOf(Value n, Value T) {
    Value offsets = op.getOffsets();
    if (!offsets)
      return {n, idx(0), T};
    auto at = [&](Value i) {
      Value o = memref::LoadOp::create(b, offsets, ValueRange{i});
      return arith::IndexCastOp::create(b, b.getIndexType(), o).getResult();
    };
    Value start = at(n);
    return {idx(0), start, sub(at(add(n, idx(1))), start)};
  }
};

struct MixerSplitLinearAttention
    : public mixer::impl::MixerSplitLinearAttentionBase<MixerSplitLinearAttention> {
  void runOnOperation() override {
    // Keys first: the blocks a key split makes may then be split in sequence.
    for (bool keys : {true, false}) {
      SmallVector<LinearAttentionOp> ops;
      getOperation().walk([&](LinearAttentionOp op) {
        LoweringConfigAttr config = LoweringConfigAttr::of(op);
        if (config && (keys ? config.getKeySplit() > 0 : static_cast<bool>(config.getSequenceSplit())))
          ops.push_back(op);
      });
      for (LinearAttentionOp op : ops) {
        if (failed(check(op, keys)))
          return signalPassFailure();
        Splitter s(op);
        if (keys)
          s.splitKeys();
        else
          s.splitSequences();
        op.erase();
      }
    }
  }

  LogicalResult check(LinearAttentionOp op, bool keys) {
    std::string why = splitIneligibility(op, keys, LoweringConfigAttr::of(op).getKeySplit());
    if (!why.empty())
      return op.emitOpError() << "mixer-split-linear-attention: " << why;
    return success();
  }
};
} // namespace

std::string mlir::mixer::splitIneligibility(LinearAttentionOp op, bool keys, int64_t keySplit) {
  if (op.getBeta() || op.isMlstm() || op.hasValueDecay())
    return "only the additive update with a decay diagonal over keys splits";
  if (op.getPieces())
    return "the op already runs in pieces";
  if (keys && op.getKeyDim() <= keySplit)
    return "key_split is not narrower than the key dimension";
  if (!keys && !op.getOutput())
    return "a sequence split needs the output";
  return "";
}
