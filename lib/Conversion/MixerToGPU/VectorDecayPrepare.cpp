//===- VectorDecayPrepare.cpp - a per-key decay's per-chunk factors -------===//
//
// The first of the two kernels of chunked linear attention with a decay per
// key dimension (GLA), part of mixer-lower-linear-attention-mma. Within a
// chunk of C = 64 steps, with Gamma_i [K] the chunk's running sum of log
// decays up to step i (inclusive) and Gamma_C its total,
//
//   o_i = scale (Qd_i S + sum_{j <= i} P_ij v_j),   Qd_i = q_i .* exp(Gamma_i)
//   P_ij = sum_d q_i[d] k_j[d] exp(Gamma_i[d] - Gamma_j[d])
//   S'   = diag(exp(Gamma_C)) S + Kd^T V,           Kd_j = k_j .* exp(Gamma_C - Gamma_j)
//
// Qd, Kd, P and exp(Gamma_C) depend on the chunk alone, not on the state or
// the values: this kernel computes them for every chunk in parallel (a block
// of 4 warps per (chunk, head, sequence)) into the op's workspace, row by
// row: Qd in columns [0, K), Kd in [K, 2K), the row of P in [2K, 2K + 64)
// (its 16 x 16 blocks on or below the diagonal, zero right of the diagonal;
// the blocks right of the diagonal block are not written, and the sequential
// kernel neither copies nor uses them), and in the chunk's first row exp(Gamma_C) as
// K f32 values in [2K + 64, 4K + 64). The sequential kernel is then the
// additive one with those operands and a per-column decay of the state.
//
// All of Qd's and Kd's exponents are <= 0. P is where a naive factorisation
// overflows (exp(-Gamma_j) grows without bound along a chunk), so it is built
// from 16 x 16 tiles with a reference step r per tile:
//
//   P_IJ = (Q_I .* exp(Gamma_I - Gamma_r)) (K_J .* exp(Gamma_r - Gamma_J))^T
//
// Below the diagonal (J < I), r is the last step of block J: both exponents
// are <= 0. On the diagonal, r is the block's first step: the query side is
// <= 0 and the key side at most the block's total decay over 16 steps, which
// for any one key dimension fits f32 and bf16 (exp(80)) unless that block
// decays by more than e^-80; such a block (a warp-uniform test) takes an exact
// path instead, one exp(Gamma_i - Gamma_j) per term on the CUDA cores. The
// operands are rounded to 16 bits for the tensor cores, as fla does.
//
//===----------------------------------------------------------------------===//

#include "MmaEmitter.h"
#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;
using namespace mlir::mixer;

std::string mlir::mixer::vectorDecayPrepareIneligibility(LinearAttentionOp op) {
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
  MemRefType g = typeOf(op.getLogDecay());
  if (!g.getElementType().isF32())
    return "per-key-dimension decay that is not f32";
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(g.getStridesAndOffset(strides, offset)) || strides.back() != 1)
    return "per-key-dimension decay without a static unit innermost stride";
  return "";
}

namespace {

constexpr int64_t kC = kMmaChunk;
constexpr int64_t kWarps = 4;
constexpr int64_t kBlocks = kC / 16; // 16-step blocks of a chunk
// The largest key-side exponent of a diagonal tile on the tensor cores: keys
// times exp(80) stay finite in bf16 (f32's range, e^88.7); f16 ends at
// 65504 = e^11.1, so there keys up to ~20 times exp(8).
constexpr double kMaxExponent = 80.0;
constexpr double kMaxExponentF16 = 8.0;

struct VectorDecayPrepareBuilder : MmaEmitter {
  LinearAttentionOp op;
  Value workspace; // [B, T, H, 4 K + 64] of key's type (see chunkFactorWidth)
  int64_t K;

  VectorDecayPrepareBuilder(LinearAttentionOp op, Value workspace, ImplicitLocOpBuilder &b)
      : MmaEmitter(b, cast<MemRefType>(op.getKey().getType()).getElementType()), op(op),
        workspace(workspace), K(op.getKeyDim()) {}

  // Shared memory: Q and K rows (16-bit) and Gamma (f32, prefix sums in
  // place of the log decays), rows padded so that 16-byte copies and
  // ldmatrix-free fragment loads stay aligned and spread over banks.
  int64_t strideQK() const { return K + kMmaPad; }
  int64_t strideG() const { return K + 4; }
  int64_t offQ = 0, offK = 0, offG = 0, bytes = 0;
  void layoutSharedMemory() {
    offK = offQ + kC * strideQK() * 2;
    offG = offK + kC * strideQK() * 2;
    bytes = offG + kC * strideG() * 4;
  }

  Value qS, kS, gS; // typed views

  void build();
  void prefixSums();
  void decayedRows(const ChunkRows &rows, Value h, Value wsBase);
  void scoreTile(int64_t I, int64_t J, const ChunkRows &rows, Value h);

  /// Two adjacent elements (d, d + 1) of row `r` of a 16-bit view, as f32.
  Value pairF(Value view, Value r, Value d) {
    Value x = vector::LoadOp::create(b, VectorType::get({2}, elt), view, ValueRange{r, d});
    return arith::ExtFOp::create(b, VectorType::get({2}, b.getF32Type()), x);
  }
  Value gammaPair(Value r, Value d) {
    return vector::LoadOp::create(b, VectorType::get({2}, b.getF32Type()), gS, ValueRange{r, d});
  }
  /// x .* exp2(e) for 2-vectors, packed to one register of two 16-bit floats.
  Value scaledPair(Value x, Value e) {
    Value y = arith::MulFOp::create(b, x, math::Exp2Op::create(b, e));
    return LLVM::BitcastOp::create(b, b.getI32Type(),
                                   arith::TruncFOp::create(b, VectorType::get({2}, elt), y));
  }
  Value sub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
};

/// Gamma: running sums of the chunk's log decays, in place and in base 2
/// (times log2 e: every exponential below is one exp2), one key dimension per
/// thread (rows past the sequence were zero-filled: Gamma stays).
void VectorDecayPrepareBuilder::prefixSums() {
  for (int64_t d0 = 0; d0 < K; d0 += 32 * kWarps) {
    Value d = addc(tid, d0);
    auto guard = guardBelow(d, d0 + 32 * kWarps > K ? K : 0);
    auto loop = scf::ForOp::create(b, idx(0), idx(kC), idx(1), ValueRange{f32(0.0)});
    OpBuilder::InsertionGuard inLoop(b);
    b.setInsertionPointToStart(loop.getBody());
    Value r = loop.getInductionVar();
    Value sum = arith::AddFOp::create(b, loop.getRegionIterArgs()[0],
                                      memref::LoadOp::create(b, gS, ValueRange{r, d}));
    memref::StoreOp::create(b, arith::MulFOp::create(b, sum, f32(M_LOG2E)), gS,
                            ValueRange{r, d});
    scf::YieldOp::create(b, sum);
  }
}

/// Qd and Kd of the chunk's valid rows to the workspace (8 columns per
/// thread and step), and exp(Gamma_C) to the first row's f32 columns.
void VectorDecayPrepareBuilder::decayedRows(const ChunkRows &rows, Value h, Value wsBase) {
  auto vecTy = VectorType::get({8}, elt);
  auto vecF = VectorType::get({8}, b.getF32Type());
  Value ws = workspace;
  Value last = idx(kC - 1); // Gamma stays constant past the sequence
  int64_t perRow = K / 8, total = kC * perRow, threads = 32 * kWarps;
  for (int64_t i0 = 0; i0 < total; i0 += threads) {
    Value i = addc(tid, i0);
    Value r = arith::DivUIOp::create(b, i, idx(perRow));
    Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
    auto ifOp = scf::IfOp::create(b, ult(r, rows.valid), /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value gi = vector::LoadOp::create(b, vecF, gS, ValueRange{r, col}, false, llvm::MaybeAlign(16));
    Value gC =
        vector::LoadOp::create(b, vecF, gS, ValueRange{last, col}, false, llvm::MaybeAlign(16));
    Value t = add(rows.t0, r);
    auto store = [&](Value view, Value exponent, Value wsCol) {
      Value raw =
          vector::LoadOp::create(b, vecTy, view, ValueRange{r, col}, false, llvm::MaybeAlign(16));
      Value x = arith::ExtFOp::create(b, vecF, raw);
      Value y = arith::MulFOp::create(b, x, math::Exp2Op::create(b, exponent));
      vector::StoreOp::create(b, arith::TruncFOp::create(b, vecTy, y), ws,
                              ValueRange{rows.row, t, h, wsCol}, false, llvm::MaybeAlign(16));
    };
    store(qS, gi, col);
    store(kS, sub(gC, gi), addc(col, K));
  }
  // exp(Gamma_C) as f32 in the first row: byte address from the workspace's
  // base (the columns are 16-bit; the row start is 16-byte aligned).
  for (int64_t d0 = 0; d0 < K; d0 += threads) {
    Value d = addc(tid, d0);
    auto guard = guardBelow(d, d0 + threads > K ? K : 0);
    Value decay = math::Exp2Op::create(b, memref::LoadOp::create(b, gS, ValueRange{last, d}));
    Value addr = add(wsBase, mul(d, idx(4)));
    Value a64 = arith::IndexCastOp::create(b, b.getI64Type(), addr);
    Value ptr = LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(b.getContext()), a64);
    LLVM::StoreOp::create(b, decay, ptr, /*alignment=*/4);
  }
}

/// Tile (I, J) of P (J <= I): this warp's accumulators, masked, rounded and
/// stored to the rows' score columns.
void VectorDecayPrepareBuilder::scoreTile(int64_t I, int64_t J, const ChunkRows &rows,
                                          Value h) {
  auto f32Ty = b.getF32Type();
  bool diagonal = I == J;
  Value ref = idx(diagonal ? 16 * I : 16 * J + 15);
  Value rowA[2] = {addc(gq, 16 * I), addc(gq, 16 * I + 8)};   // A rows i
  Value rowB[2] = {addc(gq, 16 * J), addc(gq, 16 * J + 8)};   // B columns j (n tiles)

  auto fast = [&]() {
    SmallVector<SmallVector<Value, 4>, 2> acc(2, SmallVector<Value, 4>(4, f32(0.0)));
    for (int64_t kk = 0; kk < K / 16; ++kk) {
      Value d0 = addc(tq2, 16 * kk), d8 = addc(tq2, 16 * kk + 8);
      Value gr0 = gammaPair(ref, d0), gr8 = gammaPair(ref, d8);
      // A: (row gq, d0), (row gq + 8, d0), (row gq, d8), (row gq + 8, d8).
      SmallVector<Value, 4> a;
      for (auto [d, gr] : {std::pair{d0, gr0}, std::pair{d8, gr8}})
        for (Value r : rowA)
          a.push_back(scaledPair(pairF(qS, r, d), sub(gammaPair(r, d), gr)));
      for (int64_t nt = 0; nt < 2; ++nt) {
        SmallVector<Value, 2> bf;
        for (auto [d, gr] : {std::pair{d0, gr0}, std::pair{d8, gr8}})
          bf.push_back(scaledPair(pairF(kS, rowB[nt], d), sub(gr, gammaPair(rowB[nt], d))));
        acc[nt] = mma(a, bf, acc[nt]);
      }
    }
    SmallVector<Value> flat;
    for (auto &t : acc)
      flat.append(t.begin(), t.end());
    return flat;
  };

  // The exact path: every term with its own exponent (j <= i only; the
  // others are masked below, their exponent clamped to 0 to stay finite).
  auto exact = [&]() {
    SmallVector<Value> init(8, f32(0.0));
    auto loop = scf::ForOp::create(b, idx(0), idx(K), idx(1), init);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value d = loop.getInductionVar();
    auto scalar = [&](Value view, Value r) -> Value {
      Value x = memref::LoadOp::create(b, view, ValueRange{r, d});
      return x.getType().isF32() ? x : arith::ExtFOp::create(b, f32Ty, x).getResult();
    };
    SmallVector<Value> next;
    for (int64_t nt = 0; nt < 2; ++nt)
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t e = 0; e < 2; ++e) {
          Value i = rowA[half];
          Value j = addc(tq2, 16 * J + 8 * nt + e);
          Value expo = arith::MinimumFOp::create(b, sub(scalar(gS, i), scalar(gS, j)), f32(0.0));
          Value term = arith::MulFOp::create(b, scalar(qS, i), scalar(kS, j));
          term = arith::MulFOp::create(b, term, math::Exp2Op::create(b, expo));
          next.push_back(arith::AddFOp::create(
              b, loop.getRegionIterArgs()[next.size()], term));
        }
    scf::YieldOp::create(b, next);
    return SmallVector<Value>(loop.getResults());
  };

  SmallVector<Value> flat;
  if (!diagonal) {
    flat = fast();
  } else {
    // The block's largest total decay over the key dimensions, warp-wide.
    Value worst = f32(0.0);
    Value first = idx(16 * I), lastStep = idx(16 * I + 15);
    for (int64_t d0 = 0; d0 < K; d0 += 32) {
      // Lanes past K (K = 16, 48, ...) repeat the last dimension.
      Value d = d0 + 32 > K ? arith::MinUIOp::create(b, addc(lane, d0), idx(K - 1)).getResult()
                            : addc(lane, d0);
      Value drop = sub(memref::LoadOp::create(b, gS, ValueRange{first, d}),
                       memref::LoadOp::create(b, gS, ValueRange{lastStep, d}));
      worst = arith::MaximumFOp::create(b, worst, drop);
    }
    for (int32_t off = 16; off >= 1; off /= 2) {
      auto sh = gpu::ShuffleOp::create(b, worst, i32(off), i32(32), gpu::ShuffleMode::XOR);
      worst = arith::MaximumFOp::create(b, worst, sh.getShuffleResult());
    }
    double limit = (elt.isF16() ? kMaxExponentF16 : kMaxExponent) * M_LOG2E; // base 2
    Value safe = arith::CmpFOp::create(b, arith::CmpFPredicate::OLE, worst, f32(limit));
    SmallVector<Type> types(8, f32Ty);
    auto ifOp = scf::IfOp::create(b, types, safe, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      scf::YieldOp::create(b, fast());
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(b, exact());
    }
    flat.assign(ifOp.getResults().begin(), ifOp.getResults().end());
  }

  // Mask j > i, round, store the valid rows.
  auto pairTy = VectorType::get({2}, elt);
  Value ws = workspace;
  for (int64_t half = 0; half < 2; ++half) {
    Value i = rowA[half];
    auto ifOp = scf::IfOp::create(b, ult(i, rows.valid), /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    for (int64_t nt = 0; nt < 2; ++nt) {
      SmallVector<Value, 2> vals;
      for (int64_t e = 0; e < 2; ++e) {
        Value j = addc(tq2, 16 * J + 8 * nt + e);
        Value p = flat[nt * 4 + 2 * half + e];
        if (diagonal)
          p = arith::SelectOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::ule, j, i),
                                      p, f32(0.0));
        vals.push_back(arith::TruncFOp::create(b, elt, p));
      }
      Value pair = vector::FromElementsOp::create(b, pairTy, vals);
      vector::StoreOp::create(b, pair, ws,
                              ValueRange{rows.row, add(rows.t0, i), h,
                                         addc(tq2, 2 * K + 16 * J + 8 * nt)},
                              false, llvm::MaybeAlign(4));
    }
  }
}

void VectorDecayPrepareBuilder::build() {
  layoutSharedMemory();
  Value zero = idx(0);
  auto [rows, h, hq] = beginChunkKernel(op, 32 * kWarps, bytes, "gla_prepare");
  Value row = rows.row;
  int64_t threads = 32 * kWarps;
  copyRowsAsync(globalOf(op.getQuery()), idx(offQ), strideQK(), K, zero, rows, hq, threads);
  copyRowsAsync(globalOf(op.getKey()), idx(offK), strideQK(), K, zero, rows, hq, threads);
  copyRowsAsync(globalOf(op.getLogDecay()), idx(offG), strideG(), K, zero, rows, h, threads,
                /*eltBytes=*/4);
  NVVM::CpAsyncCommitGroupOp::create(b);
  NVVM::CpAsyncWaitGroupOp::create(b, 0);
  gpu::BarrierOp::create(b);

  qS = view(offQ, kC, strideQK(), elt);
  kS = view(offK, kC, strideQK(), elt);
  gS = view(offG, kC, strideG(), b.getF32Type());
  prefixSums();
  gpu::BarrierOp::create(b);

  // The byte address of the chunk's first row, column 2K + 64 (its f32 decay).
  decayedRows(rows, h, byteAddress(globalOf(workspace), row, rows.t0, h,
                                   idx(2 * K + kC), 2));

  // The ten tiles of P on or below the diagonal, dealt round-robin to warps.
  int64_t t = 0;
  for (int64_t I = 0; I < kBlocks; ++I)
    for (int64_t J = 0; J <= I; ++J, ++t) {
      Value mine = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, idx(t % kWarps));
      auto ifOp = scf::IfOp::create(b, mine, /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      scoreTile(I, J, rows, h);
    }
}

} // namespace

void mlir::mixer::emitVectorDecayPrepare(LinearAttentionOp op, Value workspace,
                                         ImplicitLocOpBuilder &b) {
  VectorDecayPrepareBuilder builder(op, workspace, b);
  builder.build();
}
