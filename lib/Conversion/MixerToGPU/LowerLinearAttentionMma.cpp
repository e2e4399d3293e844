//===- LowerLinearAttentionMma.cpp - chunked linear attention, mma.sync ---===//
//
// The chunked form of linear attention with a per-head (scalar) or no decay
// and the additive update (simple GLA, RetNet, linear attention), as one
// fused GPU kernel on tensor cores (sm_80+ `mma.sync.m16n8k16`, bf16 or f16
// operands, f32 accumulation).
//
// One thread block owns one (sequence, head, value tile of BV channels) and
// walks the sequence chunk by chunk (C = 64 steps), carrying the state
// S^T [BV, K] in registers as mma accumulators. Within a chunk, with
// gamma_i = sum of the chunk's log decays up to step i:
//
//   P  = (Q K^T) .* exp(gamma_i - gamma_j) [j <= i]          intra-chunk scores
//   O  = scale * (exp(gamma_i) (Q S) + P V)                   output rows
//   S' = exp(gamma_C) S + K^T (V .* exp(gamma_C - gamma_j))   carried state
//
// All exponents are <= 0, so nothing overflows. The sequence is read once and
// the output written once: there is no per-chunk state in memory.
//
// Why S^T and not S: an m16n8 accumulator tile of S^T held by a lane is
// exactly the lane's k16n8 B-operand fragment of S for the product Q S, so
// the state goes from accumulator to operand without shared memory. The
// B-operand needs the state in 16-bit floats: like fla, the inter-chunk
// product reads a rounded copy of the f32 state, which itself stays f32.
//
// Warp w of the W = BV / 16 warps owns the state rows v in [16w, 16w + 16),
// the output columns in the same range for all C rows, and the score rows
// [16w, 16w + 16) when C = 16 W; scores are shared through shared memory.
//
// Shared memory (dynamic; rows padded by 8 elements so that the 8 row
// addresses of an ldmatrix fall in distinct banks): two stages of Q, K [C, K]
// and V [C, BV], the decayed V [C, BV], the scores P [C, C] and gamma [C].
// While a chunk is computed, the next one is copied into the other stage
// with cp.async (no registers held, zero-fill past the end of a sequence):
// a block walks its sequence serially, so hiding the load latency is what
// keeps the tensor cores busy.
//
// The delta rule (gated or not) runs as two kernels. The first (see
// DeltaRulePrepare.cpp), parallel over chunks, writes each chunk's WY factors
// W = T diag(beta exp(gamma)) K and U = T diag(beta) V, T = (I + A)^-1 with A
// the strictly lower beta_i exp(gamma_i - gamma_j) k_i . k_j, to the op's
// workspace. Then, in this kernel, the chunk's values are the corrected
//
//   V' = U - W S,
//
// (the same product as Q S, with W for Q) and the chunk proceeds as above
// with V' for V: O = scale (exp(gamma_i) Q S + P V'), S' = exp(gamma_C) S +
// K^T (V' .* exp(gamma_C - gamma_j)). Value head h reads query/key head
// h / (H / Hq) (grouped heads).
//
// Without an output operand the kernel is the state pass of a sequence-split
// schedule: it skips Q, the scores and the output and only carries S (about a
// quarter of the fused kernel's tensor-core work).
//
// The mLSTM cell (an input gate, a normaliser and a stabiliser) is the same
// kernel with per-step weights from its chunk factors (mlstmChunkFactors) in
// place of the decays, and a denominator on every output row.
//
// With the config's `chunk_parallel` (the delta rule, the mLSTM: ops that do
// not split into pieces), where the fused kernel would launch few blocks the
// op runs as two kernels of this builder instead: a state pass that keeps
// every chunk's initial state (Schedule::StatePass), then every chunk's
// outputs in parallel (Schedule::ChunkOutputs); the choice is made at run time
// from the block count.
//
// Ops this lowering cannot take are left for mixer-lower-linear-attention.
//
//===----------------------------------------------------------------------===//

#include "../Scratch.h"
#include "MmaEmitter.h"
#include "mixir/Conversion/Capabilities.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <limits>

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERLOWERLINEARATTENTIONMMA
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

constexpr int64_t kChunk = kMmaChunk;
constexpr int64_t kPad = kMmaPad;

} // namespace

std::string mlir::mixer::chunkedKernelIneligibility(LinearAttentionOp op, int64_t blockV,
                                                    int64_t keyDim) {
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
  // A warp per 16 value channels; the chunk's 4 score row blocks are shared
  // out evenly among the warps, so 1, 2 or 4 of them.
  if (blockV != 16 && blockV != 32 && blockV != 64)
    return "block_v must be 16, 32 or 64";
  Type e = typeOf(op.getQuery()).getElementType();
  if (!e.isBF16() && !e.isF16())
    return "inputs are not bf16 or f16";
  for (Value v : {op.getKey(), op.getValue()})
    if (typeOf(v).getElementType() != e)
      return "query, key and value differ in element type";
  // An f32 output serves the backward pass, whose dq/dk feed the decay gradient.
  if (Value out = op.getOutput(); out && typeOf(out).getElementType() != e &&
                                  !typeOf(out).getElementType().isF32())
    return "output is neither the input type nor f32";
  if (Value u = op.getCorrectedValues(); u && typeOf(u).getElementType() != e)
    return "corrected values not in the input type (the kernel computes with those)";
  if (op.getBeta()) {
    if (!op.getOutput())
      return "delta rule without an output (no state pass for it)";
    if (std::string why = deltaRulePrepareIneligibility(op); !why.empty())
      return why;
  }
  if (op.hasValueDecay())
    return "per-value-dimension decay";
  if (op.isMlstm()) {
    if (!op.getOutput())
      return "the mLSTM cell without an output (no state pass for it)";
    if (!op.getLogDecay())
      return "the mLSTM cell without a forget gate";
    if (!typeOf(op.getInputGate()).getElementType().isF32())
      return "mLSTM input gate that is not f32";
  }
  if (Value g = op.getLogDecay();
      g && !op.hasVectorDecay() && !typeOf(g).getElementType().isF32())
    return "per-head decay that is not f32";
  if (op.hasVectorDecay()) {
    if (op.getBeta())
      return "per-key-dimension decay with the delta rule";
    if (std::string why = vectorDecayPrepareIneligibility(op); !why.empty())
      return why;
  }
  if (!op.getStateElementType().isF32())
    return "state is not f32";
  int64_t V = op.getValueDim();
  if (keyDim % 16 != 0 || keyDim > 128)
    return "key dimension not a multiple of 16 up to 128";
  if (V % blockV != 0)
    return "value dimension not a multiple of the value tile";
  // Rows move as 16-byte vectors: the head dimension must be contiguous.
  for (Value v : {op.getQuery(), op.getKey(), op.getValue(), op.getOutput()}) {
    if (!v)
      continue;
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(typeOf(v).getStridesAndOffset(strides, offset)) || strides.back() != 1)
      return "head dimension without a static unit stride";
  }
  return "";
}

std::string mlir::mixer::chunkParallelIneligibility(LinearAttentionOp op) {
  if (!op.getOutput())
    return "no output (the state pass alone is the fused kernel without one)";
  if (op.hasVectorDecay())
    return "per-key-dimension decay";
  if (op.getPieces())
    return "the op already runs in pieces";
  return "";
}

namespace {

/// Builds the kernel of one op. Holds the per-kernel constants.
struct MmaKernelBuilder : MmaEmitter {
  LinearAttentionOp op;
  int64_t K, BV, W; // key dim, value tile, warps
  Type outElt;      // elt, or f32
  bool decay;  // per-head decay (gamma prefix sums in the kernel)
  bool gated;  // per-key decay: Qd, Kd, P and the chunk decay from the workspace
  bool output; // false: the state pass only (no Q, scores or output)
  bool delta;  // the delta rule: W and U (workspace) stand in for V
  bool mlstm;  // the mLSTM cell: input gate, normaliser and stabiliser

  /// Fused: one block walks its sequence, outputs and state together. The
  /// chunk-parallel schedule is two kernels: StatePass walks the sequence
  /// without outputs and keeps every chunk's initial state (and the delta
  /// rule's corrected values, in place of U), then ChunkOutputs computes every
  /// chunk's outputs from those, one block per (value tile, head, chunk).
  enum class Schedule { Fused, StatePass, ChunkOutputs };
  Schedule schedule;
  Value workspace;   // the chunk factors of the delta rule or of a per-key decay
  Value chunkStates; // [N, C, H, V, K] of elt: each chunk's initial S^T, rounded
  Value chunkStats;  // mLSTM: [N, C, H, K + 1] f32: each chunk's initial n, then m

  MmaKernelBuilder(LinearAttentionOp op, ImplicitLocOpBuilder &b, int64_t blockV,
                   Value workspace, Schedule schedule = Schedule::Fused,
                   Value chunkStates = {}, Value chunkStats = {})
      : MmaEmitter(b, cast<MemRefType>(op.getQuery().getType()).getElementType()), op(op),
        K(op.getKeyDim()), BV(blockV), W(blockV / 16), schedule(schedule),
        workspace(workspace), chunkStates(chunkStates), chunkStats(chunkStats) {}

  // Shared buffers: byte offsets and row strides (elements).
  int64_t offQ = 0, offK = 0, offW = 0, offV = 0, offVd = 0, offP = 0, offG = 0, bytes = 0;
  int64_t offDecay = 0; // per-key decay: the chunk's exp(Gamma_C), K f32, in the stage
  int64_t offGate = 0;  // per-head decay: the chunk's C log decays (f32), in the stage
  int64_t offInput = 0; // mLSTM: the chunk's C input gates (f32), in the stage
  // mLSTM, single buffers (f32): per step u = i - b, the row stabiliser M (the
  // stabiliser less b), the state update's key weights and after them the
  // chunk's stabiliser and state factor, q . n and the scores' row sums; the
  // normaliser n (K, carried from chunk to chunk).
  int64_t offU = 0, offM = 0, offWeight = 0, offQN = 0, offRowSum = 0, offN = 0;
  int64_t strideQK() const { return K + kPad; }
  int64_t strideV() const { return BV + kPad; }
  int64_t strideP() const { return kChunk + kPad; }

  // Two stages alternate: one chunk's Q, K and V. The delta rule's stage is
  // K and U only; its Q and W have one buffer each, refilled for the next
  // chunk as soon as this chunk's last reader is past a barrier. That keeps a
  // block at 107 KB for K = V = 128 (two per SM) instead of 141 KB. A per-key
  // decay's stage also holds the chunk's scores P and decay (from the
  // workspace): 108 KB for K = 128, and no decayed values or gamma.
  int64_t stageBytes = 0;
  int64_t singleBytes = 0; // the delta rule's Q and W, after the two stages
  void layoutSharedMemory() {
    int64_t eb = 2, rowsQK = kChunk * strideQK() * eb, rowsP = kChunk * strideP() * eb;
    offQ = 0;
    offK = delta ? 0 : offQ + rowsQK;
    offV = offK + rowsQK;
    stageBytes = offV + kChunk * strideV() * eb;
    if (decay) { // the chunk's per-head log decays, prefetched with the rest
      offGate = stageBytes;
      stageBytes += kChunk * 4;
    }
    if (mlstm) { // and its input gates
      offInput = stageBytes;
      stageBytes += kChunk * 4;
    }
    if (gated) {
      offP = stageBytes;
      offDecay = offP + rowsP;
      stageBytes = offDecay + K * 4;
      bytes = 2 * stageBytes;
      return;
    }
    if (delta) {
      offQ = 2 * stageBytes;
      offW = offQ + rowsQK;
      singleBytes = 2 * rowsQK;
    }
    offVd = 2 * stageBytes + singleBytes;
    offP = offVd + (decay ? kChunk * strideV() * eb : 0);
    offG = offP + rowsP;
    bytes = offG + kChunk * 4;
    if (mlstm) {
      offU = bytes;
      offM = offU + kChunk * 4;
      offWeight = offM + kChunk * 4;
      offQN = offWeight + (kChunk + 4) * 4;
      offRowSum = offQN + kChunk * 4;
      offN = offRowSum + kChunk * 4; // 16-byte aligned: read as vectors
      bytes = offN + K * 4;
    }
  }

  void mlstmChunkFactors(const ChunkRows &rows, Value stageOff, Value gS, Value mPrev);

  void build();
};

void MmaKernelBuilder::build() {
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
  bool statePass = schedule == Schedule::StatePass;
  bool chunkOutputs = schedule == Schedule::ChunkOutputs;
  output = op.getOutput() && !statePass;
  outElt = output ? typeOf(op.getOutput()).getElementType() : elt;
  gated = op.hasVectorDecay();
  decay = static_cast<bool>(op.getLogDecay()) && !gated;
  // The delta rule's values are the workspace's (U, or once the state pass
  // has run, the corrected U - W S); only a kernel that carries S corrects.
  bool valuesInWorkspace = static_cast<bool>(op.getBeta());
  delta = valuesInWorkspace && !chunkOutputs;
  mlstm = op.isMlstm();
  bool update = !chunkOutputs; // carries the state from chunk to chunk
  layoutSharedMemory();
  Value offsets = op.getOffsets();

  // Launch geometry: (value tiles, heads, sequences) x W warps; for the
  // chunk outputs, (value tiles, heads, sequences x chunks of the row).
  Value one = idx(1);
  auto [H, group, T, N] = opSizes(op);
  Programs programs = linearAttentionPrograms(b, op, N);
  Value rowChunks = arith::CeilDivUIOp::create(b, T, idx(kChunk));
  Value blocks = chunkOutputs ? mul(N, rowChunks) : programs.count;
  auto launch = gpu::LaunchOp::create(b, idx(op.getValueDim() / BV), H, blocks, idx(32 * W),
                                      one, one, i32(bytes));
  nameKernel(op, launch,
             statePass ? "chunk_states" : chunkOutputs ? "chunk_outputs" : "chunked");
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b);
  b.setInsertionPointToStart(&launch.getBody().front());

  Value zero = idx(0);
  beginKernel(launch.getThreadIds().x);
  Value vTile = launch.getBlockIds().x, h = launch.getBlockIds().y, p = launch.getBlockIds().z;
  Value firstChunk = zero; // the chunk outputs' block: sequence p / C, chunk p % C
  if (chunkOutputs) {
    firstChunk = arith::RemUIOp::create(b, p, rowChunks);
    p = arith::DivUIOp::create(b, p, rowChunks);
  }
  Value hq = arith::DivUIOp::create(b, h, group); // the query/key head of value head h
  Value warpRow = mul(warp, idx(16)); // first state row / output column / score row
  Value v0 = add(mul(vTile, idx(BV)), warpRow);

  Value vdS = decay ? view(offVd, kChunk, strideV(), elt) : Value();
  Value pS = view(offP, kChunk, strideP(), elt);
  Value gS = view(offG, 1, kChunk, b.getF32Type());

  // The sequence's (or piece's) range; n: the index of its state.
  ProgramRange range = programRange(b, programs, offsets, p, T);
  Value row = range.row, start = range.start, length = range.length;
  ArrayRef<Value> n = range.state;

  // State S^T: tile c holds rows v = v0 + gq (+8), columns d = 8c + 2tq (+1).
  int64_t stateTiles = K / 8;
  Value numChunks =
      arith::CeilDivUIOp::create(b, length, idx(kChunk)); // unsigned: length >= 0
  // The chunks this block walks: all, or the chunk outputs' one (none past
  // its sequence's end).
  Value endChunk = chunkOutputs ? arith::MinUIOp::create(b, addc(firstChunk, 1), numChunks)
                                      .getResult()
                                : numChunks;
  Value seq = n.front();
  auto stateAt = [&](Value c, Value v, Value d) {
    return ValueRange{seq, c, h, v, d};
  };
  SmallVector<Value> state;
  if (chunkOutputs) {
    // The chunk's initial state, as the state pass kept it (read only where
    // the chunk exists: past its sequence's end nothing was written).
    SmallVector<Type> types(stateTiles * 4 + (mlstm ? 1 : 0), b.getF32Type());
    auto exists = scf::IfOp::create(b, types, ult(firstChunk, endChunk), /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&exists.getThenRegion().front());
      SmallVector<Value> got;
      for (int64_t c = 0; c < stateTiles; ++c)
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t e = 0; e < 2; ++e) {
            Value d = add(idx(8 * c + e), tq2);
            Value v = add(addc(v0, 8 * half), gq);
            got.push_back(arith::ExtFOp::create(
                b, b.getF32Type(),
                memref::LoadOp::create(b, chunkStates, stateAt(firstChunk, v, d)).getResult()));
          }
      if (mlstm)
        got.push_back(memref::LoadOp::create(b, chunkStats,
                                             ValueRange{seq, firstChunk, h, idx(K)}));
      scf::YieldOp::create(b, got);
      b.setInsertionPointToStart(&exists.getElseRegion().front());
      scf::YieldOp::create(b, SmallVector<Value>(types.size(), f32(0.0)));
    }
    state.append(exists.getResults().begin(), exists.getResults().end());
  }
  for (int64_t c = 0; c < stateTiles && !chunkOutputs; ++c)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t e = 0; e < 2; ++e) {
        if (Value init = op.getInitialState()) {
          Value d = add(idx(8 * c + e), tq2);
          Value v = add(addc(v0, 8 * half), gq);
          state.push_back(
              memref::LoadOp::create(b, init, stateIndices(n, ValueRange{h, d, v})));
        } else {
          state.push_back(f32(0.0));
        }
      }
  // Accumulator element order within a tile: (half 0: e0, e1), (half 1: e0, e1),
  // which is the mma's c0..c3.
  // The mLSTM's stabiliser m is carried after the state (every thread holds
  // it), its normaliser n in shared memory (the first barrier in the loop
  // orders these stores before any read).
  Value nS = mlstm ? view(offN, 1, K, b.getF32Type()) : Value();
  if (mlstm && chunkOutputs) {
    for (int64_t d0 = 0; d0 < K; d0 += 32 * W) {
      Value d = addc(tid, d0);
      auto guard = guardBelow(d, d0 + 32 * W > K ? K : 0);
      auto exists = scf::IfOp::create(b, TypeRange{b.getF32Type()}, ult(firstChunk, endChunk),
                                      /*withElse=*/true);
      OpBuilder::InsertionGuard inner(b);
      b.setInsertionPointToStart(&exists.getThenRegion().front());
      scf::YieldOp::create(
          b, ValueRange{memref::LoadOp::create(b, chunkStats, ValueRange{seq, firstChunk, h, d})
                            .getResult()});
      b.setInsertionPointToStart(&exists.getElseRegion().front());
      scf::YieldOp::create(b, ValueRange{f32(0.0)});
      b.setInsertionPointAfter(exists);
      memref::StoreOp::create(b, exists.getResult(0), nS, ValueRange{zero, d});
    }
  } else if (mlstm) {
    state.push_back(op.getInitialStabilizer()
                        ? memref::LoadOp::create(b, op.getInitialStabilizer(),
                                                 ValueRange{seq, h}).getResult()
                        : f32(0.0));
    for (int64_t d0 = 0; d0 < K; d0 += 32 * W) {
      Value d = addc(tid, d0);
      auto guard = guardBelow(d, d0 + 32 * W > K ? K : 0);
      Value n0 = op.getInitialNormalizer()
                     ? memref::LoadOp::create(b, op.getInitialNormalizer(),
                                              ValueRange{seq, h, d}).getResult()
                     : f32(0.0);
      memref::StoreOp::create(b, n0, nS, ValueRange{zero, d});
    }
  }

  Value lastRow = arith::SubIOp::create(b, add(start, length), one);
  int64_t threads = 32 * W;
  auto chunkStart = [&](Value c) { return mul(c, idx(kChunk)); };
  auto rowsOf = [&](Value c) {
    Value valid = arith::MinUIOp::create(b, idx(kChunk),
                                         arith::SubIOp::create(b, length, chunkStart(c)));
    return ChunkRows{row, add(start, chunkStart(c)), valid, lastRow};
  };

  Global gq_ = globalOf(op.getQuery()), gk_ = globalOf(op.getKey());
  Global gv_ = globalOf(valuesInWorkspace ? workspace : op.getValue());
  Value vBaseCol = mul(vTile, idx(BV));

  // 1. Q, K, V of chunk `c` into stage `parity` (cp.async). The delta rule
  //    reads the chunk's W and U (workspace) in place of V: V is replaced by
  //    the corrected values U - W S once S is known.
  auto stageQ = [&](Value c, Value stageOff) {
    copyRowsAsync(gq_, addc(stageOff, offQ), strideQK(), K, zero, rowsOf(c), hq, threads);
  };
  auto stageW = [&](Value c) {
    copyRowsAsync(gv_, idx(offW), strideQK(), K, zero, rowsOf(c), h, threads);
  };
  // A per-key decay stages Qd, Kd and P from the workspace (value head h)
  // and the chunk's decay, K f32 values from its first row.
  Global gw_ = gated ? globalOf(workspace) : Global{};
  Global gg_ = decay ? globalOf(op.getLogDecay()) : Global{};
  Global gi_ = mlstm ? globalOf(op.getInputGate()) : Global{};
  auto stageGated = [&](Value c, Value stageOff) {
    ChunkRows rows = rowsOf(c);
    if (output) {
      copyRowsAsync(gw_, addc(stageOff, offQ), strideQK(), K, zero, rows, h, threads);
      copyRowsAsync(gw_, addc(stageOff, offP), strideP(), kChunk, idx(2 * K), rows, h, threads,
                    /*eltBytes=*/2, /*lowerBlocks=*/true);
    }
    copyRowsAsync(gw_, addc(stageOff, offK), strideQK(), K, idx(K), rows, h, threads);
    copyRowsAsync(gv_, addc(stageOff, offV), strideV(), BV, vBaseCol, rows, h, threads);
    Value src = byteAddress(gw_, rows.row, rows.t0, h, idx(2 * K + kChunk), 2);
    for (int64_t i0 = 0; i0 < K / 4; i0 += threads) {
      Value i = addc(tid, i0);
      auto guard = guardBelow(i, i0 + threads > K / 4 ? K / 4 : 0);
      copyAsync(add(addc(stageOff, offDecay), mul(i, idx(16))), add(src, mul(i, idx(16))), 16,
                i32(16));
    }
  };
  auto stageChunk = [&](Value c, Value parity) {
    ChunkRows rows = rowsOf(c);
    Value stageOff = mul(parity, idx(stageBytes));
    if (gated)
      return stageGated(c, stageOff);
    if (output && !delta)
      stageQ(c, stageOff);
    copyRowsAsync(gk_, addc(stageOff, offK), strideQK(), K, zero, rows, hq, threads);
    Value colBase = valuesInWorkspace ? addc(vBaseCol, K) : vBaseCol;
    copyRowsAsync(gv_, addc(stageOff, offV), strideV(), BV, colBase, rows, h, threads);
    if (decay)
      copyGatesAsync(gg_, addc(stageOff, offGate), rows, h);
    if (mlstm)
      copyGatesAsync(gi_, addc(stageOff, offInput), rows, h);
  };
  /// Runs `fill` when chunk `c` exists.
  auto ifChunk = [&](Value c, llvm::function_ref<void()> fill) {
    auto ifOp = scf::IfOp::create(b, ult(c, endChunk), /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    fill();
  };
  // Prologue: the first chunk into its stage (and the delta rule's single
  // buffers).
  ifChunk(firstChunk, [&] {
    stageChunk(firstChunk, arith::RemUIOp::create(b, firstChunk, idx(2)));
    if (delta) {
      if (output)
        stageQ(firstChunk, zero);
      stageW(firstChunk);
    }
  });
  NVVM::CpAsyncCommitGroupOp::create(b);

  auto loop = scf::ForOp::create(b, firstChunk, endChunk, one, state);
  b.setInsertionPointToStart(loop.getBody());
  SmallVector<Value> S(loop.getRegionIterArgs());
  Value mPrev; // the mLSTM's stabiliser at the end of the previous chunk
  if (mlstm) {
    mPrev = S.back();
    S.pop_back();
  }
  Value chunk = loop.getInductionVar();
  ChunkRows rows = rowsOf(chunk);
  Value t0 = rows.t0, valid = rows.valid;
  if (statePass) {
    // Keep the chunk's initial state S^T, rounded to 16 bits as the output's
    // product Q S reads it: pairs of key dimensions, [v][d], one register each.
    auto pairTy = VectorType::get({2}, elt);
    for (int64_t c = 0; c < stateTiles; ++c)
      for (int64_t half = 0; half < 2; ++half) {
        Value d = addc(tq2, 8 * c);
        Value v = add(addc(v0, 8 * half), gq);
        Value pair = vector::FromElementsOp::create(
            b, pairTy,
            ValueRange{arith::TruncFOp::create(b, elt, S[4 * c + 2 * half]),
                       arith::TruncFOp::create(b, elt, S[4 * c + 2 * half + 1])});
        vector::StoreOp::create(b, pair, chunkStates, stateAt(chunk, v, d), false,
                                llvm::MaybeAlign(4));
      }
  }
  Value parity = arith::RemUIOp::create(b, chunk, idx(2));
  Value stageOff = mul(parity, idx(stageBytes));
  Value offQd = delta ? idx(offQ) : addc(stageOff, offQ), offKd = addc(stageOff, offK),
        offWd = idx(offW), offVdyn = addc(stageOff, offV);
  Value vdOffset = decay ? idx(offVd) : offVdyn;
  Value offPd = gated ? addc(stageOff, offP) : idx(offP); // the scores P
  // Prefetch the next chunk into the other stage (read two chunks ago and
  // released by the barrier that ended the previous chunk).
  Value next = add(chunk, one);
  ifChunk(next, [&] { stageChunk(next, arith::SubIOp::create(b, one, parity)); });
  // One group per stage fill (empty after the last chunk): waiting until one
  // is pending completes this chunk's copies, including the delta rule's Q
  // and W, committed before it during the previous chunk.
  NVVM::CpAsyncCommitGroupOp::create(b);
  NVVM::CpAsyncWaitGroupOp::create(b, 1);
  Value vS = view(offVdyn, kChunk, strideV(), elt);
  // 2. gamma: the chunk's inclusive prefix sums of log decays, by warp 0.
  if (decay) {
    Value isWarp0 = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, zero);
    auto ifOp = scf::IfOp::create(b, isWarp0, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    decayPrefixSumsStaged(view(addc(stageOff, offGate), 1, kChunk, b.getF32Type()), rows, gS);
    if (mlstm)
      mlstmChunkFactors(rows, stageOff, gS, mPrev);
  }
  gpu::BarrierOp::create(b);
  // The mLSTM's per-step factors (see mlstmChunkFactors).
  Value uS = mlstm ? view(offU, 1, kChunk, b.getF32Type()) : Value();
  Value mS = mlstm ? view(offM, 1, kChunk, b.getF32Type()) : Value();
  Value weightS = mlstm ? view(offWeight, 1, kChunk + 4, b.getF32Type()) : Value();
  Value qnS = mlstm ? view(offQN, 1, kChunk, b.getF32Type()) : Value();
  Value rowSumS = mlstm ? view(offRowSum, 1, kChunk, b.getF32Type()) : Value();
  auto at = [&](Value buf, Value r) -> Value {
    return memref::LoadOp::create(b, buf, ValueRange{zero, r});
  };
  Value mNew = mlstm ? at(weightS, idx(kChunk)) : Value();
  Value stateFactor = mlstm ? at(weightS, idx(kChunk + 1)) : Value();
  if (statePass && mlstm) {
    // The chunk's initial n and m, from the first value tile's block (every
    // block of the head holds the same); n is not updated before a barrier.
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, vTile, zero), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    for (int64_t d0 = 0; d0 <= K; d0 += threads) {
      Value d = addc(tid, d0);
      auto below = guardBelow(d, d0 + threads > K ? K + 1 : 0);
      Value isM = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, d, idx(K));
      Value nd = memref::LoadOp::create(
          b, nS, ValueRange{zero, arith::MinUIOp::create(b, d, idx(K - 1))});
      memref::StoreOp::create(b, arith::SelectOp::create(b, isM, mPrev, nd), chunkStats,
                              ValueRange{seq, chunk, h, d});
    }
  }

  auto gammaAt = [&](Value r) -> Value {
    return decay ? memref::LoadOp::create(b, gS, ValueRange{zero, r}).getResult() : f32(0.0);
  };
  Value gLast = gammaAt(idx(kChunk - 1));

  // B fragments of S from the accumulators of S^T (see the file comment).
  int64_t mTiles = kChunk / 16;
  SmallVector<SmallVector<Value, 2>> stateB; // [kk * 2 + nn] -> 2 regs
  if (output || delta)
    for (int64_t kk = 0; kk < K / 16; ++kk)
      for (int64_t nn = 0; nn < 2; ++nn) {
        SmallVector<Value, 2> regs;
        for (int64_t c : {2 * kk, 2 * kk + 1})
          regs.push_back(pack(S[c * 4 + 2 * nn], S[c * 4 + 2 * nn + 1]));
        stateB.push_back(regs);
      }
  /// rows [16 mt, 16 mt + 16) of (A S)[:, this warp's 16 columns], for A [C, K]
  /// in shared memory at `aOffset`.
  auto timesState = [&](Value aOffset, int64_t mt) {
    SmallVector<SmallVector<Value, 4>, 2> acc(2, SmallVector<Value, 4>(4, f32(0.0)));
    auto [ar, ac] = laneA();
    for (int64_t kk = 0; kk < K / 16; ++kk) {
      auto a = ldmatrix(aOffset, strideQK(), addc(ar, 16 * mt), addc(ac, 16 * kk), false);
      for (int64_t nn = 0; nn < 2; ++nn)
        acc[nn] = mma(a, stateB[kk * 2 + nn], acc[nn]);
    }
    return acc;
  };

  // 2b. The delta rule's corrected values V = U - W S (W carries the decay
  //     from the chunk start), over this warp's columns, in place of U.
  if (delta) {
    auto pairTy = VectorType::get({2}, elt);
    auto pairF = VectorType::get({2}, b.getF32Type());
    for (int64_t mt = 0; mt < mTiles; ++mt) {
      auto ws = timesState(offWd, mt);
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t nn = 0; nn < 2; ++nn) {
          Value r = addc(gq, 16 * mt + 8 * half);
          Value col = add(warpRow, addc(tq2, 8 * nn));
          Value u = vector::LoadOp::create(b, pairTy, vS, ValueRange{r, col});
          Value uf = arith::ExtFOp::create(b, pairF, u);
          Value w = vector::FromElementsOp::create(
              b, pairF, ValueRange{ws[nn][2 * half], ws[nn][2 * half + 1]});
          Value corrected = arith::TruncFOp::create(b, pairTy, arith::SubFOp::create(b, uf, w));
          vector::StoreOp::create(b, corrected, vS, ValueRange{r, col});
        }
    }
    gpu::BarrierOp::create(b); // the decayed values below read every warp's columns
    // The chunk's corrected values (valid rows) to `dest` [B, T, H, *] from
    // column `firstCol` on, 16 bytes a thread.
    auto storeCorrected = [&](Value dest, Value firstCol) {
      auto vecTy = VectorType::get({8}, elt);
      int64_t perRow = BV / 8, total = kChunk * perRow;
      for (int64_t i0 = 0; i0 < total; i0 += threads) {
        Value i = addc(tid, i0);
        Value r = arith::DivUIOp::create(b, i, idx(perRow));
        Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
        auto inside = scf::IfOp::create(b, ult(r, valid), /*withElseRegion=*/false);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&inside.getThenRegion().front());
        Value x = vector::LoadOp::create(b, vecTy, vS, ValueRange{r, col}, false,
                                         llvm::MaybeAlign(16));
        vector::StoreOp::create(b, x, dest, ValueRange{row, add(t0, r), h, add(firstCol, col)},
                                false, llvm::MaybeAlign(16));
      }
    };
    // The corrected values replace U in the workspace: the chunk outputs read
    // them as their values.
    if (statePass)
      storeCorrected(workspace, addc(vBaseCol, K));
    // The op's own copy (the backward's building block).
    if (Value corrected = op.getCorrectedValues())
      storeCorrected(corrected, vBaseCol);
    // Every warp is done with W: refill it for the next chunk.
    ifChunk(next, [&] { stageW(next); });
    NVVM::CpAsyncCommitGroupOp::create(b);
  }

  // 3. The decayed values V .* exp(gamma_C - gamma_j) for the state update.
  if (decay && update) {
    int64_t perRow = BV / 8, total = kChunk * perRow;
    auto vecTy = VectorType::get({8}, elt);
    auto vecF = VectorType::get({8}, b.getF32Type());
    for (int64_t i0 = 0; i0 < total; i0 += threads) {
      Value i = addc(tid, i0);
      Value r = arith::DivUIOp::create(b, i, idx(perRow));
      Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
      Value x = vector::LoadOp::create(b, vecTy, vS, ValueRange{r, col}, false,
                                       llvm::MaybeAlign(16));
      Value w = mlstm ? at(weightS, r)
                      : math::ExpOp::create(b, arith::SubFOp::create(b, gLast, gammaAt(r)))
                            .getResult();
      Value xf = arith::ExtFOp::create(b, vecF, x);
      xf = arith::MulFOp::create(b, xf, vector::BroadcastOp::create(b, vecF, w));
      vector::StoreOp::create(b, arith::TruncFOp::create(b, vecTy, xf), vdS,
                              ValueRange{r, col}, false, llvm::MaybeAlign(16));
    }
  }

  // 4. Scores of this warp's row blocks (rows [16 r, 16 r + 16) for
  //    r = warp, warp + W, ...): P = Q K^T, masked and decayed, to shared.
  for (int64_t rb = 0; output && !gated && rb < kChunk / 16 / W; ++rb) {
    Value scoreRow = mul(addc(warp, W * rb), idx(16));
    int64_t nTiles = kChunk / 8;
    SmallVector<SmallVector<Value, 4>> P(nTiles, SmallVector<Value, 4>(4, f32(0.0)));
    auto [ar, ac] = laneA();
    auto [br, bc] = laneBnk();
    for (int64_t kk = 0; kk < K / 16; ++kk) {
      auto a = ldmatrix(offQd, strideQK(), add(scoreRow, ar), addc(ac, 16 * kk), false);
      for (int64_t np = 0; np < nTiles / 2; ++np) {
        auto bf = ldmatrix(offKd, strideQK(), addc(br, 16 * np), addc(bc, 16 * kk), false);
        P[2 * np] = mma(a, {bf[0], bf[1]}, P[2 * np]);
        P[2 * np + 1] = mma(a, {bf[2], bf[3]}, P[2 * np + 1]);
      }
    }
    for (int64_t half = 0; half < 2; ++half) {
      Value i = addc(add(scoreRow, gq), 8 * half);
      // The mLSTM weighs step j of row i by exp(u_j - M_i) (<= 1 for j <= i).
      Value gi = mlstm ? at(mS, i) : gammaAt(i);
      Value rowSum = f32(0.0);
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        SmallVector<Value, 2> vals;
        for (int64_t e = 0; e < 2; ++e) {
          Value j = addc(tq2, 8 * nt + e);
          Value p = P[nt][2 * half + e];
          if (decay) {
            Value gj = mlstm ? at(uS, j) : gammaAt(j);
            Value x = mlstm ? arith::SubFOp::create(b, gj, gi) : arith::SubFOp::create(b, gi, gj);
            p = arith::MulFOp::create(b, p, math::ExpOp::create(b, x));
          }
          Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, j, i);
          vals.push_back(arith::SelectOp::create(b, causal, p, f32(0.0)));
          if (mlstm)
            rowSum = addF(rowSum, vals.back());
        }
        Value pair = vector::FromElementsOp::create(
            b, VectorType::get({2}, elt),
            ValueRange{arith::TruncFOp::create(b, elt, vals[0]),
                       arith::TruncFOp::create(b, elt, vals[1])});
        vector::StoreOp::create(b, pair, pS, ValueRange{i, addc(tq2, 8 * nt)});
      }
      if (mlstm) {
        // The row's sum over its four lanes (the denominator's intra-chunk part).
        rowSum = warpReduce(rowSum, [&](Value x, Value y) { return addF(x, y); }, {1, 2});
        storeWhereZero(tq, rowSum, rowSumS, ValueRange{zero, i});
      }
    }
  }

  // 4b. mLSTM: q_i . n (the previous chunk's normaliser), two threads per row.
  if (mlstm && output) {
    Value qS = view(offQd, kChunk, strideQK(), elt);
    auto vecTy = VectorType::get({8}, elt);
    auto vecF = VectorType::get({8}, b.getF32Type());
    for (int64_t i0 = 0; i0 < 2 * kChunk; i0 += threads) {
      Value i = addc(tid, i0);
      Value r = arith::DivUIOp::create(b, i, idx(2));
      Value part = arith::RemUIOp::create(b, i, idx(2));
      Value acc = f32(0.0);
      for (int64_t d0 = 0; d0 < K / 2; d0 += 8) {
        Value d = addc(mul(part, idx(K / 2)), d0);
        Value x = arith::ExtFOp::create(
            b, vecF, vector::LoadOp::create(b, vecTy, qS, ValueRange{r, d}, false,
                                            llvm::MaybeAlign(16)).getResult());
        Value nv = vector::LoadOp::create(b, vecF, nS, ValueRange{zero, d}, false,
                                          llvm::MaybeAlign(16));
        acc = vector::ReductionOp::create(b, vector::CombiningKind::ADD,
                                          arith::MulFOp::create(b, x, nv), acc);
      }
      acc = warpReduce(acc, [&](Value x, Value y) { return addF(x, y); }, {1});
      storeWhereZero(part, acc, qnS, ValueRange{zero, r});
    }
  }

  // 5. Inter-chunk output: O[:, this warp's 16 columns] = exp(gamma_i) (Q S).
  SmallVector<SmallVector<SmallVector<Value, 4>, 2>> O(
      mTiles, SmallVector<SmallVector<Value, 4>, 2>(2, SmallVector<Value, 4>(4, f32(0.0))));
  if (output) {
    for (int64_t mt = 0; mt < mTiles; ++mt) {
      O[mt] = timesState(offQd, mt);
      if (decay)
        for (int64_t half = 0; half < 2; ++half) {
          Value r = addc(gq, 16 * mt + 8 * half);
          Value w = mlstm ? math::ExpOp::create(b, arith::SubFOp::create(b, mPrev, at(mS, r)))
                          : math::ExpOp::create(b, gammaAt(r));
          for (int64_t nn = 0; nn < 2; ++nn)
            for (int64_t e = 0; e < 2; ++e)
              O[mt][nn][2 * half + e] = arith::MulFOp::create(b, O[mt][nn][2 * half + e], w);
        }
    }
  }
  gpu::BarrierOp::create(b); // scores and decayed values are complete
  if (delta) {
    // Every warp is done with Q: refill it for the next chunk.
    if (output)
      ifChunk(next, [&] { stageQ(next, zero); });
    NVVM::CpAsyncCommitGroupOp::create(b);
  }
  // 6. Intra-chunk output O += P V (key blocks after the row block are masked
  //    out entirely and skipped), then scale and store.
  if (output) {
    auto [ar, ac] = laneA();
    auto [br, bc] = laneBkn();
    Value scale = op.getScale();
    if (!scale.getType().isF32())
      scale = arith::TruncFOp::create(b, b.getF32Type(), scale);
    Value vBase = mul(vTile, idx(BV));
    for (int64_t mt = 0; mt < mTiles; ++mt) {
      for (int64_t kk = 0; kk <= mt; ++kk) {
        auto a = ldmatrix(offPd, strideP(), addc(ar, 16 * mt), addc(ac, 16 * kk), false);
        auto bf = ldmatrix(offVdyn, strideV(), addc(br, 16 * kk), add(warpRow, bc), true);
        O[mt][0] = mma(a, {bf[0], bf[1]}, O[mt][0]);
        O[mt][1] = mma(a, {bf[2], bf[3]}, O[mt][1]);
      }
      for (int64_t half = 0; half < 2; ++half) {
        Value r = addc(gq, 16 * mt + 8 * half);
        Value inside = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, r, valid);
        auto ifOp = scf::IfOp::create(b, inside, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&ifOp.getThenRegion().front());
        // The mLSTM's denominator max(|scale n_i . q_i|, exp(-m_i)) + epsilon,
        // with n_i . q_i = exp(m_prev - M_i) q_i . n + the row's score sum and
        // the stabiliser m_i = b_i + M_i.
        Value denom;
        if (mlstm) {
          Value M = at(mS, r);
          Value den = addF(arith::MulFOp::create(
                               b, math::ExpOp::create(b, arith::SubFOp::create(b, mPrev, M)),
                               at(qnS, r)),
                           at(rowSumS, r));
          den = math::AbsFOp::create(b, arith::MulFOp::create(b, den, scale));
          Value floor = math::ExpOp::create(
              b, arith::NegFOp::create(b, addF(at(gS, r), M)));
          denom = addF(maxF(den, floor), f32(op.getEpsilonOrDefault()));
        }
        for (int64_t nn = 0; nn < 2; ++nn) {
          Value x = arith::MulFOp::create(b, O[mt][nn][2 * half], scale);
          Value y = arith::MulFOp::create(b, O[mt][nn][2 * half + 1], scale);
          if (mlstm) {
            x = arith::DivFOp::create(b, x, denom);
            y = arith::DivFOp::create(b, y, denom);
          }
          if (outElt != x.getType()) {
            x = arith::TruncFOp::create(b, outElt, x);
            y = arith::TruncFOp::create(b, outElt, y);
          }
          Value pair =
              vector::FromElementsOp::create(b, VectorType::get({2}, outElt), ValueRange{x, y});
          Value col = add(add(vBase, warpRow), addc(tq2, 8 * nn));
          vector::StoreOp::create(b, pair, op.getOutput(), ValueRange{row, add(t0, r), h, col},
                                  false, llvm::MaybeAlign(2 * outElt.getIntOrFloatBitWidth() / 8));
        }
      }
    }
  }

  // 7. State update S^T = exp(gamma_C) S^T + Vd^T K.
  if (update) {
    if (decay) {
      Value w = mlstm ? stateFactor : math::ExpOp::create(b, gLast).getResult();
      for (Value &s : S)
        s = arith::MulFOp::create(b, s, w);
    }
    if (mlstm) {
      // n = stateFactor n + sum_j w_j k_j, one key dimension per thread.
      Value kS = view(offKd, kChunk, strideQK(), elt);
      for (int64_t d0 = 0; d0 < K; d0 += threads) {
        Value d = addc(tid, d0);
        auto guard = guardBelow(d, d0 + threads > K ? K : 0);
        Value acc = arith::MulFOp::create(
            b, stateFactor, memref::LoadOp::create(b, nS, ValueRange{zero, d}));
        auto sum = scf::ForOp::create(b, zero, idx(kChunk), one, ValueRange{acc});
        {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(sum.getBody());
          Value j = sum.getInductionVar();
          Value kj = arith::ExtFOp::create(b, b.getF32Type(),
                                           memref::LoadOp::create(b, kS, ValueRange{j, d}).getResult());
          scf::YieldOp::create(
              b, ValueRange{math::FmaOp::create(b, at(weightS, j), kj, sum.getRegionIterArgs()[0])
                                .getResult()});
        }
        memref::StoreOp::create(b, sum.getResult(0), nS, ValueRange{zero, d});
      }
    }
    if (gated) {
      // Column d of S^T (key dimension d) decays by exp(Gamma_C)[d].
      Value dec = view(addc(stageOff, offDecay), 1, K, b.getF32Type());
      auto pairF = VectorType::get({2}, b.getF32Type());
      for (int64_t c = 0; c < stateTiles; ++c) {
        Value w = vector::LoadOp::create(b, pairF, dec, ValueRange{zero, addc(tq2, 8 * c)});
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t e = 0; e < 2; ++e) {
            Value &s = S[4 * c + 2 * half + e];
            s = arith::MulFOp::create(b, s,
                                      vector::ExtractOp::create(b, w, ArrayRef<int64_t>{e}));
          }
      }
    }
    auto [ar, ac] = laneAkm();
    auto [br, bc] = laneBkn();
    for (int64_t kk = 0; kk < kChunk / 16; ++kk) {
      auto a = ldmatrix(vdOffset, strideV(), addc(ar, 16 * kk), add(warpRow, ac), true);
      for (int64_t np = 0; np < K / 16; ++np) {
        auto bf = ldmatrix(offKd, strideQK(), addc(br, 16 * kk), addc(bc, 16 * np), true);
        for (int64_t sub = 0; sub < 2; ++sub) {
          int64_t c = 2 * np + sub;
          auto d = mma(a, {bf[2 * sub], bf[2 * sub + 1]}, ArrayRef<Value>(S).slice(4 * c, 4));
          for (int64_t e = 0; e < 4; ++e)
            S[4 * c + e] = d[e];
        }
      }
    }
  }
  gpu::BarrierOp::create(b); // the next chunk overwrites the buffers
  if (mlstm)
    S.push_back(mNew);
  scf::YieldOp::create(b, S);

  // The final state, as [n, h, d, v].
  b.setInsertionPointAfter(loop);
  if (Value final = update ? op.getFinalState() : Value())
    for (int64_t c = 0; c < stateTiles; ++c)
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t e = 0; e < 2; ++e) {
          Value d = add(idx(8 * c + e), tq2);
          Value v = add(addc(v0, 8 * half), gq);
          memref::StoreOp::create(b, loop.getResult(c * 4 + 2 * half + e), final,
                                  stateIndices(n, ValueRange{h, d, v}));
        }
  // The mLSTM's normaliser and stabiliser, from the first value tile's block
  // (every block of the head holds the same).
  if (mlstm && update && (op.getFinalNormalizer() || op.getFinalStabilizer())) {
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, vTile, zero), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    if (Value fn = op.getFinalNormalizer())
      for (int64_t d0 = 0; d0 < K; d0 += threads) {
        Value d = addc(tid, d0);
        auto below = guardBelow(d, d0 + threads > K ? K : 0);
        memref::StoreOp::create(b, memref::LoadOp::create(b, nS, ValueRange{zero, d}), fn,
                                ValueRange{seq, h, d});
      }
    if (Value fm = op.getFinalStabilizer()) {
      auto t0 = scf::IfOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tid, zero), false);
      b.setInsertionPointToStart(&t0.getThenRegion().front());
      memref::StoreOp::create(b, loop.getResults().back(), fm, ValueRange{seq, h});
    }
  }
}

/// The mLSTM's per-step factors of one chunk (spec 3.1's chunkwise form), by
/// warp 0 (lane l: steps 2l and 2l + 1, the ones it staged), after the prefix
/// sums b (gS) of the log forget gates lambda. With the input gates i and the
/// previous chunk's stabiliser m_prev, for valid steps:
///
///   u_j = i_j - b_j,   M_i = max(m_prev, max_{j <= i} u_j)     (row stabiliser
///                      m_i = b_i + M_i, the recurrent form's m at step i)
///   a_j = (sum_{s > j} lambda_s) + i_j     (a suffix sum, not g - b_j)
///   m_new = max(g + m_prev, max_j a_j),    g = b_C (the chunk's total)
///
/// Scores are weighted by exp(u_j - M_i), the inter-chunk readout by
/// exp(m_prev - M_i), the state update's keys by exp(a_j - m_new) and the
/// state by exp(g + m_prev - m_new): every exponent <= 0. Steps past the
/// sequence have u = a = -inf (weight 0).
void MmaKernelBuilder::mlstmChunkFactors(const ChunkRows &rows, Value stageOff, Value gS,
                                         Value mPrev) {
  Value zero = idx(0);
  Value gateS = view(addc(stageOff, offGate), 1, kChunk, b.getF32Type());
  Value inputS = view(addc(stageOff, offInput), 1, kChunk, b.getF32Type());
  Value uS = view(offU, 1, kChunk, b.getF32Type());
  Value mS = view(offM, 1, kChunk, b.getF32Type());
  Value weightS = view(offWeight, 1, kChunk + 4, b.getF32Type());
  Value ninf = f32(-std::numeric_limits<double>::infinity());
  Value r[2] = {mul(lane, idx(2)), addc(mul(lane, idx(2)), 1)};
  Value valid[2], lambda[2], in[2], u[2];
  for (int e = 0; e < 2; ++e) {
    valid[e] = ult(r[e], rows.valid);
    lambda[e] = arith::SelectOp::create(
        b, valid[e], memref::LoadOp::create(b, gateS, ValueRange{zero, r[e]}), f32(0.0));
    in[e] = memref::LoadOp::create(b, inputS, ValueRange{zero, r[e]});
    Value be = memref::LoadOp::create(b, gS, ValueRange{zero, r[e]});
    u[e] = arith::SelectOp::create(b, valid[e], arith::SubFOp::create(b, in[e], be), ninf);
    memref::StoreOp::create(b, u[e], uS, ValueRange{zero, r[e]});
  }
  // Row stabilisers: a max scan over lanes, seeded with m_prev.
  Value before = warpShift(warpScan(maxF(u[0], u[1]), [&](Value x, Value y) { return maxF(x, y); },
                                    ninf, false),
                           ninf, false);
  Value M0 = maxF(mPrev, maxF(before, u[0]));
  memref::StoreOp::create(b, M0, mS, ValueRange{zero, r[0]});
  memref::StoreOp::create(b, maxF(M0, u[1]), mS, ValueRange{zero, r[1]});
  // Suffix sums of lambda after each step, and the chunk's total g.
  Value pair = addF(lambda[0], lambda[1]);
  Value suffix = warpScan(pair, [&](Value x, Value y) { return addF(x, y); }, f32(0.0), true);
  Value after = warpShift(suffix, f32(0.0), true); // lanes l + 1 .. 31
  Value total = gpu::ShuffleOp::create(b, suffix, i32(0), i32(32), gpu::ShuffleMode::IDX)
                    .getShuffleResult();
  Value a[2] = {addF(addF(after, lambda[1]), in[0]), addF(after, in[1])};
  for (int e = 0; e < 2; ++e)
    a[e] = arith::SelectOp::create(b, valid[e], a[e], ninf);
  Value aMax = warpReduce(maxF(a[0], a[1]), [&](Value x, Value y) { return maxF(x, y); });
  Value decayed = addF(total, mPrev);
  Value mNew = maxF(decayed, aMax);
  for (int e = 0; e < 2; ++e)
    memref::StoreOp::create(b, math::ExpOp::create(b, arith::SubFOp::create(b, a[e], mNew)),
                            weightS, ValueRange{zero, r[e]});
  auto lane0 = scf::IfOp::create(
      b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane, zero), false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&lane0.getThenRegion().front());
  memref::StoreOp::create(b, mNew, weightS, ValueRange{zero, idx(kChunk)});
  memref::StoreOp::create(b, math::ExpOp::create(b, arith::SubFOp::create(b, decayed, mNew)),
                          weightS, ValueRange{zero, idx(kChunk + 1)});
}

/// The width of the scratch rows a chunked op writes before its sequential
/// kernel ([B, T, H, width] of key's type), or 0: the delta rule's WY
/// factors W and U (K + V); a per-key decay's decayed queries and keys, the
/// chunk's scores and in its first row its total decay as K f32 values
/// (4 K + 64).
int64_t chunkFactorWidth(LinearAttentionOp op) {
  if (op.getBeta())
    return op.getKeyDim() + op.getValueDim();
  if (op.hasVectorDecay())
    return 4 * op.getKeyDim() + 64;
  return 0;
}

struct MixerLowerLinearAttentionMma
    : public mixer::impl::MixerLowerLinearAttentionMmaBase<MixerLowerLinearAttentionMma> {
  void runOnOperation() override {
    SmallVector<LinearAttentionOp> ops;
    getOperation().walk([&](LinearAttentionOp op) {
      if (LoweringConfigAttr config = LoweringConfigAttr::of(op);
          config && config.getKernel() == KernelKind::Chunked)
        ops.push_back(op);
    });
    for (LinearAttentionOp op : ops) {
      LoweringConfigAttr config = LoweringConfigAttr::of(op);
      if (config.getKeySplit() || config.getSequenceSplit()) {
        op.emitOpError("mixer-lower-linear-attention-mma: the config splits keys or sequences; "
                       "run mixer-split-linear-attention first");
        return signalPassFailure();
      }
      int64_t blockV = config.getBlockV();
      if (config.getChunk() != kChunk) {
        op.emitOpError() << "cannot take the tensor-core lowering: its chunk is " << kChunk
                         << " steps, the config asks for " << config.getChunk();
        return signalPassFailure();
      }
      if (std::string why = chunkedKernelIneligibility(op, blockV, op.getKeyDim());
          !why.empty()) {
        op.emitOpError() << "cannot take the tensor-core lowering: " << why;
        return signalPassFailure();
      }
      ImplicitLocOpBuilder b(op.getLoc(), op);
      Value workspace;
      if (int64_t width = chunkFactorWidth(op)) {
        Type elt = cast<MemRefType>(op.getKey().getType()).getElementType();
        workspace = allocateScratch(
            op, MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic,
                                 ShapedType::kDynamic, width},
                                elt),
            [&](ImplicitLocOpBuilder &sb) {
              return SmallVector<Value>{memref::DimOp::create(sb, op.getQuery(), 0),
                                        memref::DimOp::create(sb, op.getQuery(), 1),
                                        memref::DimOp::create(sb, op.getValue(), 2)};
            });
      }
      Block *block = op->getBlock();
      Operation *before = op->getPrevNode();
      if (op.getBeta()) {
        OpBuilder::InsertionGuard guard(b);
        emitDeltaRulePrepare(op, workspace, b);
      } else if (op.hasVectorDecay()) {
        OpBuilder::InsertionGuard guard(b);
        emitVectorDecayPrepare(op, workspace, b);
      }
      using Schedule = MmaKernelBuilder::Schedule;
      auto emit = [&](Operation *at, Schedule schedule, Value states, Value stats) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(at);
        MmaKernelBuilder kb(op, b, blockV, workspace, schedule, states, stats);
        kb.build();
      };
      if (int64_t bound = config.getChunkParallel(); bound > 0) {
        if (std::string why = chunkParallelIneligibility(op); !why.empty()) {
          op.emitOpError() << "cannot run chunk-parallel: " << why;
          return signalPassFailure();
        }
        // Chunk-parallel where the fused kernel would launch at most `bound`
        // blocks (N H V / block_v), decided on the call's sizes; the scratch
        // for the chunks' states is sized by the same decision.
        auto chosen = [&](ImplicitLocOpBuilder &sb) {
          LinearAttentionSizes sz =
              linearAttentionSizes(sb, op.getQuery(), op.getValue(), op.getOffsets());
          Value blocks = arith::MulIOp::create(
              sb, arith::MulIOp::create(sb, sz.N, sz.H),
              arith::ConstantIndexOp::create(sb, op.getValueDim() / blockV));
          return std::make_pair(sz, arith::CmpIOp::create(sb, arith::CmpIPredicate::ule, blocks,
                                                          arith::ConstantIndexOp::create(sb, bound))
                                        .getResult());
        };
        auto sizes = [&](ImplicitLocOpBuilder &sb) {
          auto [sz, yes] = chosen(sb);
          Value rows = arith::SelectOp::create(sb, yes, sz.N, arith::ConstantIndexOp::create(sb, 0));
          Value chunks =
              arith::CeilDivUIOp::create(sb, sz.T, arith::ConstantIndexOp::create(sb, kChunk));
          return SmallVector<Value>{rows, chunks, sz.H};
        };
        int64_t dyn = ShapedType::kDynamic;
        Type elt = cast<MemRefType>(op.getKey().getType()).getElementType();
        Value states = allocateScratch(
            op, MemRefType::get({dyn, dyn, dyn, op.getValueDim(), op.getKeyDim()}, elt), sizes);
        Value stats = op.isMlstm()
                          ? allocateScratch(op,
                                            MemRefType::get({dyn, dyn, dyn, op.getKeyDim() + 1},
                                                            b.getF32Type()),
                                            sizes)
                          : Value();
        auto ifOp = scf::IfOp::create(b, chosen(b).second, /*withElseRegion=*/true);
        emit(ifOp.thenBlock()->getTerminator(), Schedule::StatePass, states, stats);
        emit(ifOp.thenBlock()->getTerminator(), Schedule::ChunkOutputs, states, stats);
        emit(ifOp.elseBlock()->getTerminator(), Schedule::Fused, Value(), Value());
      } else {
        emit(op, Schedule::Fused, Value(), Value());
      }
      // The launches carry the config on (sunk constants: fragment
      // addresses then fold into immediate offsets).
      for (Operation &o : llvm::make_range(before ? std::next(before->getIterator())
                                                  : block->begin(),
                                           op->getIterator()))
        o.walk([&](gpu::LaunchOp launch) {
          launch->setAttr(LoweringConfigAttr::getAttrName(), config);
        });
      op.erase();
    }
  }
};
} // namespace
