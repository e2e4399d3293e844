//===- TileScan.cpp - split mixer.scan into per-channel time tiles --------===//
//
// mixer.scan over [B, T, D] -> scf.parallel over (channel, batch row, tile)
// of mixer.channel_scan on strided 1-D views. Channels are the fastest loop so
// that, once the parallel loop is mapped to GPU threads, neighbouring threads
// touch neighbouring addresses of a [B, T, D] tensor.
//
// Jagged windows make tiles independent: a tile that starts on a block
// boundary needs only the zero-initialised terminal state of the one block
// before it (spec 2.1), which the tile recomputes from that block's inputs.
// Global windows chain tiles in order through the carry.
//
//===----------------------------------------------------------------------===//

#include "mixir/Conversion/Capabilities.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Complex/IR/Complex.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERTILESCAN
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

/// Zero of the state type (the carry of a recurrence that has not started).
Value zeroOf(OpBuilder &b, Location loc, Type type) {
  if (auto c = dyn_cast<ComplexType>(type)) {
    Attribute zero = b.getFloatAttr(c.getElementType(), 0.0);
    return complex::ConstantOp::create(b, loc, c, b.getArrayAttr({zero, zero}));
  }
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, 0.0));
}

/// Builds the index arithmetic and views of one tile.
struct TileBuilder {
  OpBuilder &b;
  Location loc;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value ceilDiv(Value x, Value y) { return arith::CeilDivUIOp::create(b, loc, x, y); }
  Value cmp(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }

  /// The 1-D view x[n, t0 : t0 + len, d] of a [B, T, D] memref.
  Value series(Value x, Value n, Value t0, Value len, Value d) {
    auto srcTy = cast<MemRefType>(x.getType());
    SmallVector<OpFoldResult> offsets = {n, t0, d};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), len, b.getIndexAttr(1)};
    SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
    auto viewTy = memref::SubViewOp::inferRankReducedResultType({ShapedType::kDynamic}, srcTy,
                                                                 offsets, sizes, strides);
    return memref::SubViewOp::create(b, loc, cast<MemRefType>(viewTy), x, offsets, sizes,
                                     strides);
  }
};

class MixerTileScanPass : public mixer::impl::MixerTileScanBase<MixerTileScanPass> {
public:
  void runOnOperation() override {
    SmallVector<ScanOp> scans;
    getOperation().walk([&](ScanOp op) { scans.push_back(op); });
    for (ScanOp op : scans) {
      if (!op.hasPureBufferSemantics()) {
        op.emitOpError("mixer-tile-scan needs the buffer form; run one-shot-bufferize first");
        return signalPassFailure();
      }
      if (failed(readConfig(op)) ||
          failed(op.getWindow().isJagged() ? tileJagged(op) : tileGlobal(op)))
        return signalPassFailure();
      op.erase();
    }
    SmallVector<ScanAdjointOp> adjoints;
    getOperation().walk([&](ScanAdjointOp op) { adjoints.push_back(op); });
    for (ScanAdjointOp op : adjoints) {
      if (failed(readConfig(op)) ||
          failed(op.getWindow().isJagged() ? tileJaggedAdjoint(op) : tileGlobalAdjoint(op)))
        return signalPassFailure();
      op.erase();
    }
  }

private:
  // The config of the op being tiled (see readConfig).
  LoweringConfigAttr config;
  int64_t tileSize = 0;
  bool timeFastest = false, exchangeOutput = false;
  int64_t vectorAlignment = 0;
  // The configs of the channel scans the op becomes: their loop shape and
  // which of their operands move as vectors.
  LoweringConfigAttr channelConfig;

  LogicalResult readConfig(Operation *op) {
    config = LoweringConfigAttr::of(op);
    if (!config || config.getKernel() != KernelKind::Tiled)
      return op->emitOpError("mixer-tile-scan needs a mixer.lowering_config with kernel = "
                             "tiled; run mixer-select-lowering-config first");
    tileSize = config.getTile();
    timeFastest = config.getTimeFastest();
    exchangeOutput = config.getExchangeOutput();
    vectorAlignment = config.getVectorAlignment();
    // The channel scan's operands (ODS order) that the op's vectorised
    // operands become: scan (gates 0, inputs 1, output 3) keeps its indices;
    // scan_adjoint's gates 0, inputs 1, states 3, output_grad 4, gates_grad 6,
    // inputs_grad 7 become channel_scan_adjoint's 0, 1, 2, 3, 6, 7.
    int64_t mask = config.getVectorOperands();
    if (isa<ScanAdjointOp>(op)) {
      int64_t mapped = 0;
      for (auto [from, to] : {std::pair<int, int>{0, 0}, {1, 1}, {3, 2}, {4, 3}, {6, 6}, {7, 7}})
        if ((mask >> from) & 1)
          mapped |= int64_t(1) << to;
      mask = mapped;
    }
    channelConfig = LoweringConfigAttr::get(
        op->getContext(), KernelKind::Tiled, 0, config.getUnroll(), {}, false, false,
        vectorAlignment, mask, config.getIndexBitwidth(), false, 0, 0, 0, {}, 0);
    return success();
  }

  /// Gives a channel scan made from the op its config.
  template <typename OpTy> OpTy configured(OpTy op) {
    op->setAttr(LoweringConfigAttr::getAttrName(), channelConfig);
    return op;
  }

  /// The op's config moves to the parallel loop it became, for the GPU mapping.
  void configure(scf::ParallelOp loop) {
    loop->setAttr(LoweringConfigAttr::getAttrName(), config);
  }

  /// Emits one channel_scan with the attributes of `op` (window overridable).
  Value channelScan(OpBuilder &b, ScanOp op, WindowAttr window, Value gates, Value inputs,
                    Value init, Value output) {
    return configured(ChannelScanOp::create(b, op.getLoc(), op.getStateElementType(), gates,
                                            inputs, init, output, window, op.getLogSpaceAttr(),
                                            op.getReverseAttr()));
  }

  /// Initial carry of channel (n, d): initial_state[n, d] or zero.
  Value initialCarry(OpBuilder &b, ScanOp op, Value n, Value d) {
    if (Value init = op.getInitialState())
      return memref::LoadOp::create(b, op.getLoc(), init, ValueRange{n, d});
    return zeroOf(b, op.getLoc(), op.getStateElementType());
  }

  /// The indices of one time tile of a jagged scan, inside its scf.parallel.
  struct JaggedTile {
    Value d, n, j;      // channel, batch row, tile
    Value t0, len, end; // [t0, end), len = end - t0
    Value time, numTiles;
  };

  /// Emits the scf.parallel over (channel, batch row, tile) shared by a jagged
  /// scan and its adjoint, and calls `body` inside it.
  LogicalResult emitJaggedTiles(Operation *op, Value gates, int64_t blockLen,
                                function_ref<void(OpBuilder &, const JaggedTile &)> body,
                                int64_t padTilesTo = 1) {
    if (tileSize <= 0 || tileSize % blockLen != 0)
      return op->emitOpError() << "mixer-tile-scan: tile " << tileSize
                               << " must be a positive multiple of the jagged block "
                               << blockLen;
    OpBuilder b(op);
    Location loc = op->getLoc();
    TileBuilder tb{b, loc};
    Value c0 = tb.idx(0), c1 = tb.idx(1);
    Value batch = memref::DimOp::create(b, loc, gates, 0);
    Value time = memref::DimOp::create(b, loc, gates, 1);
    Value channels = memref::DimOp::create(b, loc, gates, 2);
    Value tile = tb.idx(tileSize);
    Value numTiles = tb.ceilDiv(time, tile);
    // The first dimension is the one mapped to threadIdx.x: whichever
    // neighbours in memory (see the pass description).
    // Padded tiles (past numTiles) run the body with nothing in range.
    Value paddedTiles =
        padTilesTo > 1 ? tb.mul(tb.ceilDiv(numTiles, tb.idx(padTilesTo)), tb.idx(padTilesTo))
                       : numTiles;
    // time-fastest: (tile, channel, batch row), so that the channels of one
    // batch row run close together and share its gates in cache (a gate
    // broadcast over channels, as BTP's per-head gate, is read once per
    // channel).
    SmallVector<Value> upper = timeFastest
                                   ? SmallVector<Value>{paddedTiles, channels, batch}
                                   : SmallVector<Value>{channels, batch, paddedTiles};
    auto loop = scf::ParallelOp::create(
        b, loc, ValueRange{c0, c0, c0}, upper, ValueRange{c1, c1, c1},
        [&](OpBuilder &nb, Location, ValueRange ivs) {
          TileBuilder t{nb, loc};
          JaggedTile tl = timeFastest
                              ? JaggedTile{ivs[1], ivs[2], ivs[0], {}, {}, {}, time, numTiles}
                              : JaggedTile{ivs[0], ivs[1], ivs[2], {}, {}, {}, time, numTiles};
          tl.t0 = t.mul(tl.j, tile);
          tl.len = t.min(tile, t.sub(time, tl.t0));
          tl.end = t.add(tl.t0, tl.len);
          body(nb, tl);
          scf::ReduceOp::create(nb, loc);
        });
    configure(loop);
    return success();
  }

  /// The carry a tile receives: the zero-initialised local state of the one
  /// neighbouring block [start, start + len) when `hasNeighbour`, else
  /// `fallback` (the initial state). Recomputed from that block's 16 steps.
  Value neighbourCarry(OpBuilder &b, Location loc, Type state, Value hasNeighbour,
                       const JaggedTile &tl, Value start, Value len, Value gates, Value inputs,
                       int64_t blockLen, UnitAttr logSpace, UnitAttr reverse,
                       function_ref<Value(OpBuilder &)> fallback) {
    auto ifOp = scf::IfOp::create(
        b, loc, hasNeighbour,
        [&](OpBuilder &ib, Location) {
          TileBuilder h{ib, loc};
          auto localOnly = WindowAttr::get(ib.getContext(), WindowKind::Jagged, blockLen, 1);
          Value c = configured(ChannelScanOp::create(
              ib, loc, state, h.series(gates, tl.n, start, len, tl.d),
              h.series(inputs, tl.n, start, len, tl.d), Value(), Value(), localOnly, logSpace,
              reverse));
          scf::YieldOp::create(ib, loc, c);
        },
        [&](OpBuilder &eb, Location) { scf::YieldOp::create(eb, loc, fallback(eb)); });
    return ifOp.getResult(0);
  }

  LogicalResult tileJagged(ScanOp op) {
    WindowAttr window = op.getWindow();
    int64_t blockLen = window.getBlock();
    bool reverse = op.getReverse();
    Location loc = op.getLoc();
    Value gates = op.getGates(), inputs = op.getInputs();
    if (exchangeOutput && (!timeFastest || tileSize != blockLen))
      return op.emitOpError() << "mixer-tile-scan: exchange_output needs time_fastest and "
                                 "tiles of one block (tile = "
                              << blockLen << ")";
    // The exchange stores aligned 16-byte chunks: the config must say that the
    // output's blocks are aligned (operand 3 among the vectorised ones).
    if (exchangeOutput && !config.vectorizes(3))
      return op.emitOpError("mixer-tile-scan: exchange_output needs the output among "
                            "vector_operands (its blocks aligned)");
    int64_t group = exchangeOutput ? exchangeOutputGroup(op, vectorAlignment) : 0;
    if (exchangeOutput && !group)
      return op.emitOpError("mixer-tile-scan: exchange_output needs an f32 output with a unit "
                            "time stride, vector_alignment >= 16 and a block of 4 x 2^k <= 128 "
                            "steps");
    // Runs the tile's recurrence into `out` (null: no output) and stores the
    // final state from the last tile; returns the tile's last state.
    auto scanTile = [&](OpBuilder &nb, const JaggedTile &tl, Value out) {
      TileBuilder t{nb, loc};
      Value carry;
      if (window.hasCarry()) {
        // The one block that feeds this tile: before it (forward) or after it
        // (reverse, where the last block may be partial).
        Value blockV = t.idx(blockLen);
        Value hasNeighbour = reverse ? t.cmp(arith::CmpIPredicate::ult, tl.end, tl.time)
                                     : t.cmp(arith::CmpIPredicate::ugt, tl.j, t.idx(0));
        Value start = reverse ? tl.end : t.sub(tl.t0, blockV);
        Value hlen = reverse ? t.min(blockV, t.sub(tl.time, tl.end)) : blockV;
        carry = neighbourCarry(nb, loc, op.getStateElementType(), hasNeighbour, tl, start, hlen,
                               gates, inputs, blockLen, op.getLogSpaceAttr(),
                               op.getReverseAttr(),
                               [&](OpBuilder &eb) { return initialCarry(eb, op, tl.n, tl.d); });
      }
      Value last = channelScan(nb, op, window, t.series(gates, tl.n, tl.t0, tl.len, tl.d),
                               t.series(inputs, tl.n, tl.t0, tl.len, tl.d), carry, out);
      if (Value fin = op.getFinalState()) {
        // The last tile in processing order holds the final state.
        Value isLast = reverse ? t.cmp(arith::CmpIPredicate::eq, tl.j, t.idx(0))
                               : t.cmp(arith::CmpIPredicate::eq, t.add(tl.j, t.idx(1)),
                                       tl.numTiles);
        scf::IfOp::create(nb, loc, isLast, [&](OpBuilder &tbld, Location) {
          memref::StoreOp::create(tbld, loc, last, fin, ValueRange{tl.n, tl.d});
          scf::YieldOp::create(tbld, loc);
        });
      }
    };
    return emitJaggedTiles(
        op, gates, blockLen,
        [&](OpBuilder &nb, const JaggedTile &tl) {
          TileBuilder t{nb, loc};
          if (!group) {
            Value out =
                op.getOutput() ? t.series(op.getOutput(), tl.n, tl.t0, tl.len, tl.d) : Value();
            scanTile(nb, tl, out);
            return;
          }
          emitExchangedTile(nb, op, tl, group, scanTile);
        },
        group ? 32 : 1);
  }

  /// exchange-output: a full block's outputs go to a private buffer, the
  /// partial last block stores its own; then every thread (padded ones too)
  /// takes part in the exchange, and stores chunk r of each full block of its
  /// group, r being its place in the group.
  void emitExchangedTile(OpBuilder &nb, ScanOp op, const JaggedTile &tl, int64_t group,
                         function_ref<void(OpBuilder &, const JaggedTile &, Value)> scanTile) {
    Location loc = op.getLoc();
    TileBuilder t{nb, loc};
    int64_t blockLen = op.getWindow().getBlock();
    Type f32 = nb.getF32Type();
    auto chunkTy = VectorType::get({4}, f32);
    Value blockV = t.idx(blockLen);
    auto buffer = memref::AllocaOp::create(nb, loc, MemRefType::get({blockLen}, f32),
                                           nb.getI64IntegerAttr(16));
    auto isFull = [&](TileBuilder &b, Value blockIndex) {
      return b.cmp(arith::CmpIPredicate::ule, b.mul(b.add(blockIndex, b.idx(1)), blockV),
                   tl.time);
    };
    scf::IfOp::create(nb, loc, t.cmp(arith::CmpIPredicate::ult, tl.t0, tl.time),
                      [&](OpBuilder &ib, Location) {
                        TileBuilder b{ib, loc};
                        scf::IfOp::create(
                            ib, loc, isFull(b, tl.j),
                            [&](OpBuilder &fb, Location) {
                              // A constant length: the block loop then folds
                              // away and the buffer is indexed statically (so
                              // LLVM keeps it in registers).
                              JaggedTile whole = tl;
                              whole.len = TileBuilder{fb, loc}.idx(blockLen);
                              scanTile(fb, whole, buffer);
                              scf::YieldOp::create(fb, loc);
                            },
                            [&](OpBuilder &pb, Location) {
                              TileBuilder p{pb, loc};
                              scanTile(pb, tl,
                                       p.series(op.getOutput(), tl.n, tl.t0, tl.len, tl.d));
                              scf::YieldOp::create(pb, loc);
                            });
                        scf::YieldOp::create(ib, loc);
                      });
    // Chunk q of this thread's block, q = 0..group-1.
    Value mine = vector::LoadOp::create(nb, loc, VectorType::get({blockLen}, f32), buffer,
                                        ValueRange{t.idx(0)}, /*nontemporal=*/false,
                                        llvm::MaybeAlign(16));
    SmallVector<Value> own, out;
    for (int64_t q = 0; q < group; ++q) {
      SmallVector<Value> elements;
      for (int64_t e = 0; e < 4; ++e)
        elements.push_back(vector::ExtractOp::create(nb, loc, mine, 4 * q + e));
      own.push_back(vector::FromElementsOp::create(nb, loc, chunkTy, elements));
    }
    // Transpose within the group: out[s] = chunk r of block s of the group.
    // Round m pairs thread r with r ^ m, which sends chunk r ^ m of its own
    // block and receives chunk r of block r ^ m. Thread ids are tile indices
    // (time-fastest, groups aligned to warps by the padding).
    Value r = arith::RemUIOp::create(nb, loc, tl.j, t.idx(group));
    out = own;
    for (int64_t m = 1; m < group; ++m) {
      Value partner = arith::XOrIOp::create(nb, loc, r, t.idx(m));
      auto isPartner = [&](int64_t q) { return t.cmp(arith::CmpIPredicate::eq, partner, t.idx(q)); };
      Value send = own[0];
      for (int64_t q = 1; q < group; ++q)
        send = arith::SelectOp::create(nb, loc, isPartner(q), own[q], send);
      SmallVector<Value> lanes;
      for (int64_t e = 0; e < 4; ++e) {
        Value x = vector::ExtractOp::create(nb, loc, send, e);
        lanes.push_back(
            gpu::ShuffleOp::create(nb, loc, x, m, 32, gpu::ShuffleMode::XOR).getShuffleResult());
      }
      Value received = vector::FromElementsOp::create(nb, loc, chunkTy, lanes);
      for (int64_t s = 0; s < group; ++s)
        out[s] = arith::SelectOp::create(nb, loc, isPartner(s), received, out[s]);
    }
    Value groupStart = t.sub(tl.j, r);
    for (int64_t s = 0; s < group; ++s) {
      Value blockIndex = t.add(groupStart, t.idx(s));
      scf::IfOp::create(nb, loc, isFull(t, blockIndex), [&](OpBuilder &sb, Location) {
        TileBuilder b{sb, loc};
        Value at = b.add(b.mul(blockIndex, blockV), b.mul(r, b.idx(4)));
        Value dest = b.series(op.getOutput(), tl.n, at, b.idx(4), tl.d);
        vector::StoreOp::create(sb, loc, out[s], dest, ValueRange{b.idx(0)},
                                /*nontemporal=*/false, llvm::MaybeAlign(16));
        scf::YieldOp::create(sb, loc);
      });
    }
  }

  /// A scalar of `op`'s state type read from a [B, D] operand, or zero.
  Value loadOrZero(OpBuilder &b, Location loc, Value src, Type type, Value n, Value d) {
    if (src)
      return memref::LoadOp::create(b, loc, src, ValueRange{n, d});
    return zeroOf(b, loc, type);
  }

  /// Global adjoint: per channel, tiles in reverse order chain the gradient
  /// carry a_{t0} lam_{t0} to the left; the forward state before a tile is
  /// read from h (or the initial state).
  LogicalResult tileGlobalAdjoint(ScanAdjointOp op) {
    bool reverse = op.getReverse();
    OpBuilder b(op);
    Location loc = op.getLoc();
    TileBuilder tb{b, loc};
    Type st = op.getStateElementType();
    Value c0 = tb.idx(0), c1 = tb.idx(1);
    Value batch = memref::DimOp::create(b, loc, op.getGates(), 0);
    Value time = memref::DimOp::create(b, loc, op.getGates(), 1);
    Value channels = memref::DimOp::create(b, loc, op.getGates(), 2);
    Value tile = tileSize > 0 ? tb.idx(tileSize) : time;
    Value numTiles = tileSize > 0 ? tb.ceilDiv(time, tile) : c1;
    auto parallel = scf::ParallelOp::create(
        b, loc, ValueRange{c0, c0}, ValueRange{channels, batch}, ValueRange{c1, c1},
        [&](OpBuilder &nb, Location, ValueRange ivs) {
          Value d = ivs[0], n = ivs[1];
          Value gradIn = loadOrZero(nb, loc, op.getFinalGrad(), st, n, d);
          auto loop = scf::ForOp::create(
              nb, loc, c0, numTiles, c1, ValueRange{gradIn},
              [&](OpBuilder &lb, Location, Value step, ValueRange g) {
                TileBuilder t{lb, loc};
                // The adjoint runs against the forward scan's direction.
                Value j = reverse ? step : t.sub(t.sub(numTiles, c1), step);
                Value t0 = t.mul(j, tile);
                Value len = t.min(tile, t.sub(time, t0));
                Value end = t.add(t0, len);
                // The forward state just outside the range, on the side the
                // forward scan came from: h_{t0-1} (forward) or h_{end} (reverse).
                Value hasPrev = reverse ? t.cmp(arith::CmpIPredicate::ult, end, time)
                                        : t.cmp(arith::CmpIPredicate::ugt, t0, c0);
                auto carry = scf::IfOp::create(
                    lb, loc, hasPrev,
                    [&](OpBuilder &ib, Location) {
                      Value prev = reverse ? end : arith::SubIOp::create(ib, loc, t0, c1).getResult();
                      scf::YieldOp::create(ib, loc,
                                           memref::LoadOp::create(ib, loc, op.getStates(),
                                                                  ValueRange{n, prev, d})
                                               .getResult());
                    },
                    [&](OpBuilder &eb, Location) {
                      scf::YieldOp::create(
                          eb, loc, loadOrZero(eb, loc, op.getInitialState(), st, n, d));
                    });
                auto view = [&](Value x) { return t.series(x, n, t0, len, d); };
                Value out = configured(ChannelScanAdjointOp::create(
                    lb, loc, st, view(op.getGates()), Value(), view(op.getStates()),
                    view(op.getOutputGrad()), carry.getResult(0), g[0],
                    view(op.getGatesGrad()), view(op.getInputsGrad()), op.getWindowAttr(),
                    op.getLogSpaceAttr(), op.getReverseAttr()));
                scf::YieldOp::create(lb, loc, out);
              });
          if (Value dInit = op.getInitialStateGrad())
            memref::StoreOp::create(nb, loc, loop.getResult(0), dInit, ValueRange{n, d});
          scf::ReduceOp::create(nb, loc);
        });
    configure(parallel);
    return success();
  }

  /// Jagged adjoint: tiles are independent again. A tile needs the forward
  /// carry into its first block (the local state of the block before it,
  /// recomputed) and the gradient carry into its last block (the next block's
  /// a_{t} rho_{t} at its first step, recomputed; or the final-state gradient).
  LogicalResult tileJaggedAdjoint(ScanAdjointOp op) {
    WindowAttr window = op.getWindow();
    int64_t blockLen = window.getBlock();
    Location loc = op.getLoc();
    Type st = op.getStateElementType();
    Value gates = op.getGates(), inputs = op.getInputs();
    return emitJaggedTiles(op, gates, blockLen, [&](OpBuilder &nb, const JaggedTile &tl) {
      TileBuilder t{nb, loc};
      Value blockV = t.idx(blockLen);
      Value carry;
      if (window.hasCarry())
        carry = neighbourCarry(
            nb, loc, st, t.cmp(arith::CmpIPredicate::ugt, tl.j, t.idx(0)), tl,
            t.sub(tl.t0, blockV), blockV, gates, inputs, blockLen, op.getLogSpaceAttr(),
            UnitAttr(), [&](OpBuilder &eb) {
              return loadOrZero(eb, loc, op.getInitialState(), st, tl.n, tl.d);
            });
      // Gradient entering the tile's last step from the right: the next
      // block's carry gradient (recomputed), or the final-state gradient.
      auto gradIn = scf::IfOp::create(
          nb, loc, t.cmp(arith::CmpIPredicate::ult, tl.end, tl.time),
          [&](OpBuilder &ib, Location) {
            Value g = zeroOf(ib, loc, st);
            if (window.hasCarry()) {
              TileBuilder h{ib, loc};
              Value hlen = h.min(blockV, h.sub(tl.time, tl.end));
              auto view = [&](Value x) { return h.series(x, tl.n, tl.end, hlen, tl.d); };
              g = configured(ChannelScanAdjointOp::create(
                  ib, loc, st, view(gates), view(inputs), Value(), view(op.getOutputGrad()),
                  zeroOf(ib, loc, st), zeroOf(ib, loc, st), Value(), Value(),
                  op.getWindowAttr(), op.getLogSpaceAttr(), UnitAttr()));
            }
            scf::YieldOp::create(ib, loc, g);
          },
          [&](OpBuilder &eb, Location) {
            scf::YieldOp::create(eb, loc, loadOrZero(eb, loc, op.getFinalGrad(), st, tl.n, tl.d));
          });
      auto view = [&](Value x) { return t.series(x, tl.n, tl.t0, tl.len, tl.d); };
      Value out = configured(ChannelScanAdjointOp::create(
          nb, loc, st, view(gates), view(inputs), Value(), view(op.getOutputGrad()), carry,
          gradIn.getResult(0), view(op.getGatesGrad()), view(op.getInputsGrad()),
          op.getWindowAttr(), op.getLogSpaceAttr(), UnitAttr()));
      if (Value dInit = op.getInitialStateGrad()) {
        scf::IfOp::create(nb, loc, t.cmp(arith::CmpIPredicate::eq, tl.j, t.idx(0)),
                          [&](OpBuilder &ib, Location) {
                            memref::StoreOp::create(ib, loc, out, dInit, ValueRange{tl.n, tl.d});
                            scf::YieldOp::create(ib, loc);
                          });
      }
    });
  }

  LogicalResult tileGlobal(ScanOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    TileBuilder tb{b, loc};
    bool reverse = op.getReverse();
    Value gates = op.getGates(), inputs = op.getInputs();
    Value c0 = tb.idx(0), c1 = tb.idx(1);
    Value batch = memref::DimOp::create(b, loc, gates, 0);
    Value time = memref::DimOp::create(b, loc, gates, 1);
    Value channels = memref::DimOp::create(b, loc, gates, 2);
    // 0 keeps the sequence whole: one tile of length T.
    Value tile = tileSize > 0 ? tb.idx(tileSize) : time;
    Value numTiles = tileSize > 0 ? tb.ceilDiv(time, tile) : c1;

    auto parallel = scf::ParallelOp::create(
        b, loc, ValueRange{c0, c0}, ValueRange{channels, batch}, ValueRange{c1, c1},
        [&](OpBuilder &nb, Location, ValueRange ivs) {
          Value d = ivs[0], n = ivs[1];
          // Tiles of one channel run in processing order; the carry is the
          // previous tile's final state.
          auto loop = scf::ForOp::create(
              nb, loc, c0, numTiles, c1, ValueRange{initialCarry(nb, op, n, d)},
              [&](OpBuilder &lb, Location, Value step, ValueRange carry) {
                TileBuilder t{lb, loc};
                Value j = reverse ? t.sub(t.sub(numTiles, c1), step) : step;
                Value t0 = t.mul(j, tile);
                Value len = t.min(tile, t.sub(time, t0));
                Value out = op.getOutput() ? t.series(op.getOutput(), n, t0, len, d) : Value();
                Value next = channelScan(lb, op, op.getWindow(), t.series(gates, n, t0, len, d),
                                         t.series(inputs, n, t0, len, d), carry[0], out);
                scf::YieldOp::create(lb, loc, next);
              });
          if (Value fin = op.getFinalState())
            memref::StoreOp::create(nb, loc, loop.getResult(0), fin, ValueRange{n, d});
          scf::ReduceOp::create(nb, loc);
        });
    configure(parallel);
    return success();
  }
};
} // namespace

int64_t mlir::mixer::exchangeOutputGroup(ScanOp op, int64_t vectorAlignment) {
  if (vectorAlignment < 16 || !op.getOutput() || !op.getStateElementType().isF32() ||
      !op.getWindow().isJagged())
    return 0;
  auto outTy = cast<MemRefType>(op.getOutput().getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(outTy.getStridesAndOffset(strides, offset)) || strides[1] != 1)
    return 0;
  int64_t block = op.getWindow().getBlock();
  int64_t group = block / 4;
  if (block % 4 || !llvm::isPowerOf2_64(group) || group > 32)
    return 0;
  return group;
}
