//===- DeltaRulePrepare.cpp - the delta rule's per-chunk WY factors -------===//
//
// The first of the two kernels of the chunked delta rule (gated or not), part
// of mixer-lower-linear-attention-mma. Within a chunk of C = 64 steps that
// starts from state S, with gamma_i the chunk's running sum of log decays,
// the delta rule's corrected values v'_i = beta_i (v_i - S_i^T k_i) satisfy
//
//   (I + A) V' = diag(beta) V - diag(beta exp(gamma)) K S,
//   A_ij = beta_i exp(gamma_i - gamma_j) k_i . k_j  for j < i, else 0,
//
// so V' = U - W S with the WY factors (T = (I + A)^-1, unit lower triangular)
//
//   W = T diag(beta exp(gamma)) K        [C, K]
//   U = T diag(beta) V                   [C, V]
//
// which depend on the chunk alone. This kernel computes them for every chunk
// in parallel (one block of 4 warps per (chunk, head, sequence)) and writes
// them to the op's workspace, W in columns [0, K) and U in [K, K + V), in the
// input element type; the sequential kernel then needs one more product (W S)
// per chunk than the additive update.
//
// Per block: K and V rows to shared memory (cp.async, zero past the sequence,
// which makes those rows of A zero and of T the identity); A = K K^T on
// tensor cores, masked and weighted, kept f32; T by forward substitution in
// f32, one column of T per thread of warps 0-1 (x_i = [i = j] - sum_{k<i}
// A_ik x_k, fully unrolled, A read as broadcast vectors), while warps 2-3
// scale the rows of K and V in place; then W and U as T times the scaled rows
// on tensor cores (T rounded to 16 bits, as fla does), stored from the
// accumulator fragments.
//
//===----------------------------------------------------------------------===//

#include "MmaEmitter.h"
#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::mixer;

std::string mlir::mixer::deltaRulePrepareIneligibility(LinearAttentionOp op) {
  if (op.getValueDim() % 16 != 0 || op.getValueDim() > 256)
    return "delta rule with a value dimension not a multiple of 16 up to 256";
  return "";
}

namespace {

constexpr int64_t kC = kMmaChunk;
constexpr int64_t kWarps = kC / 16; // one 16-row block of the chunk per warp

struct DeltaRulePrepareBuilder : MmaEmitter {
  LinearAttentionOp op;
  Value workspace; // [B, T, H, K + V] of key's type: W and U
  int64_t K, V;
  bool decay;

  DeltaRulePrepareBuilder(LinearAttentionOp op, Value workspace, ImplicitLocOpBuilder &b)
      : MmaEmitter(b, cast<MemRefType>(op.getKey().getType()).getElementType()), op(op),
        workspace(workspace), K(op.getKeyDim()), V(op.getValueDim()),
        decay(static_cast<bool>(op.getLogDecay())) {}

  // Shared memory: K and V rows (16-bit, scaled in place), A (f32), T
  // (16-bit), gamma and beta (f32). A's rows are 16-byte multiples so that
  // the solve reads them as aligned 4-vectors.
  int64_t strideK() const { return K + kMmaPad; }
  int64_t strideV() const { return V + kMmaPad; }
  int64_t strideA() const { return kC + 4; }
  int64_t strideT() const { return kC + kMmaPad; }
  int64_t offK = 0, offV = 0, offA = 0, offT = 0, offG = 0, offB = 0, bytes = 0;
  void layoutSharedMemory() {
    offV = offK + kC * strideK() * 2;
    offA = offV + kC * strideV() * 2;
    offT = offA + kC * strideA() * 4;
    offG = offT + kC * strideT() * 2;
    offB = offG + kC * 4;
    bytes = offB + kC * 4;
  }

  void build();
  void solve(Value aS, Value tS);
  void scaleRows(Value buffer, int64_t cols, Value gS, Value bS, bool withDecay, Value thread,
                 int64_t threads);
  void productToWorkspace(int64_t bufOffset, int64_t stride, int64_t cols, int64_t colBase,
                          const ChunkRows &rows, Value h);
};

/// T = (I + A)^-1 by forward substitution, column j = tid (threads [0, C)),
/// into tS. Rows i < j come out exactly 0, so T's upper triangle is zero.
void DeltaRulePrepareBuilder::solve(Value aS, Value tS) {
  auto vec4 = VectorType::get({4}, b.getF32Type());
  Value j = tid;
  SmallVector<Value> x;
  for (int64_t i = 0; i < kC; ++i) {
    // Four partial sums shorten the dependence chain to i / 4 FMAs.
    Value isDiagonal = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, j, idx(i));
    SmallVector<Value, 4> acc = {arith::SelectOp::create(b, isDiagonal, f32(1.0), f32(0.0)),
                                 f32(0.0), f32(0.0), f32(0.0)};
    for (int64_t k0 = 0; k0 < i; k0 += 4) {
      Value a = vector::LoadOp::create(b, vec4, aS, ValueRange{idx(i), idx(k0)}, false,
                                       llvm::MaybeAlign(16));
      for (int64_t e = 0; e < 4 && k0 + e < i; ++e) {
        Value aik = vector::ExtractOp::create(b, a, ArrayRef<int64_t>{e});
        Value neg = arith::NegFOp::create(b, aik);
        acc[e] = math::FmaOp::create(b, neg, x[k0 + e], acc[e]);
      }
    }
    Value xi = arith::AddFOp::create(b, arith::AddFOp::create(b, acc[0], acc[1]),
                                     arith::AddFOp::create(b, acc[2], acc[3]));
    x.push_back(xi);
    memref::StoreOp::create(b, arith::TruncFOp::create(b, elt, xi), tS, ValueRange{idx(i), j});
  }
}

/// Rows r of a [C, cols] 16-bit buffer times beta_r (and exp(gamma_r)), in
/// place, by `threads` threads numbered from `thread`.
void DeltaRulePrepareBuilder::scaleRows(Value buffer, int64_t cols, Value gS, Value bS,
                                        bool withDecay, Value thread, int64_t threads) {
  Value zero = idx(0);
  int64_t perRow = cols / 8, total = kC * perRow;
  auto vecTy = VectorType::get({8}, elt);
  auto vecF = VectorType::get({8}, b.getF32Type());
  for (int64_t i0 = 0; i0 < total; i0 += threads) {
    Value i = addc(thread, i0);
    Value inRange = ult(i, idx(total));
    auto ifOp = scf::IfOp::create(b, inRange, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value r = arith::DivUIOp::create(b, i, idx(perRow));
    Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
    Value w = memref::LoadOp::create(b, bS, ValueRange{zero, r});
    if (withDecay)
      w = arith::MulFOp::create(
          b, w, math::ExpOp::create(b, memref::LoadOp::create(b, gS, ValueRange{zero, r})));
    Value x = vector::LoadOp::create(b, vecTy, buffer, ValueRange{r, col}, false,
                                     llvm::MaybeAlign(16));
    Value xf = arith::MulFOp::create(b, arith::ExtFOp::create(b, vecF, x),
                                     vector::BroadcastOp::create(b, vecF, w));
    vector::StoreOp::create(b, arith::TruncFOp::create(b, vecTy, xf), buffer,
                            ValueRange{r, col}, false, llvm::MaybeAlign(16));
  }
}

/// This warp's 16 rows of T M for the [C, cols] buffer M at `bufOffset`, stored
/// to workspace columns [colBase, colBase + cols) of the chunk's valid rows,
/// in blocks of 64 columns (32 accumulators per lane).
void DeltaRulePrepareBuilder::productToWorkspace(int64_t bufOffset, int64_t stride,
                                                 int64_t cols, int64_t colBase,
                                                 const ChunkRows &rows, Value h) {
  Value warpRow = mul(warp, idx(16));
  auto [ar, ac] = laneA();
  auto [br, bc] = laneBkn();
  auto pairTy = VectorType::get({2}, elt);
  for (int64_t cb = 0; cb < cols; cb += 64) {
    int64_t nTiles = std::min<int64_t>(64, cols - cb) / 8;
    SmallVector<SmallVector<Value, 4>> acc(nTiles, SmallVector<Value, 4>(4, f32(0.0)));
    for (int64_t kk = 0; kk < kC / 16; ++kk) {
      auto a = ldmatrix(idx(offT), strideT(), add(warpRow, ar), addc(ac, 16 * kk), false);
      for (int64_t np = 0; np < nTiles / 2; ++np) {
        auto bf = ldmatrix(idx(bufOffset), stride, addc(br, 16 * kk), addc(bc, cb + 16 * np),
                           true);
        acc[2 * np] = mma(a, {bf[0], bf[1]}, acc[2 * np]);
        acc[2 * np + 1] = mma(a, {bf[2], bf[3]}, acc[2 * np + 1]);
      }
    }
    for (int64_t half = 0; half < 2; ++half) {
      Value r = add(warpRow, addc(gq, 8 * half));
      auto ifOp = scf::IfOp::create(b, ult(r, rows.valid), /*withElseRegion=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        Value pair = vector::FromElementsOp::create(
            b, pairTy,
            ValueRange{arith::TruncFOp::create(b, elt, acc[nt][2 * half]),
                       arith::TruncFOp::create(b, elt, acc[nt][2 * half + 1])});
        Value col = addc(tq2, colBase + cb + 8 * nt);
        vector::StoreOp::create(b, pair, workspace,
                                ValueRange{rows.row, add(rows.t0, r), h, col}, false,
                                llvm::MaybeAlign(2 * elt.getIntOrFloatBitWidth() / 8));
      }
    }
  }
}

void DeltaRulePrepareBuilder::build() {
  layoutSharedMemory();
  Value zero = idx(0);
  auto [rows, h, hq] = beginChunkKernel(op, 32 * kWarps, bytes, "wy_prepare");
  Value row = rows.row;
  int64_t threads = 32 * kWarps;
  copyRowsAsync(globalOf(op.getKey()), idx(offK), strideK(), K, zero, rows, hq, threads);
  copyRowsAsync(globalOf(op.getValue()), idx(offV), strideV(), V, zero, rows, h, threads);
  NVVM::CpAsyncCommitGroupOp::create(b);
  NVVM::CpAsyncWaitGroupOp::create(b, 0);

  Value gS = view(offG, 1, kC, b.getF32Type());
  Value bS = view(offB, 1, kC, b.getF32Type());
  if (decay) {
    auto ifOp = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, zero), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    decayPrefixSums(op.getLogDecay(), rows, h, gS);
  }
  {
    // beta per row, 0 past the sequence.
    auto ifOp = scf::IfOp::create(b, ult(tid, idx(kC)), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value t = arith::MinUIOp::create(b, add(rows.t0, tid), rows.lastRow);
    Value beta = memref::LoadOp::create(b, op.getBeta(), ValueRange{row, t, h});
    if (!beta.getType().isF32())
      beta = beta.getType().getIntOrFloatBitWidth() < 32
                 ? arith::ExtFOp::create(b, b.getF32Type(), beta).getResult()
                 : arith::TruncFOp::create(b, b.getF32Type(), beta).getResult();
    beta = arith::SelectOp::create(b, ult(tid, rows.valid), beta, f32(0.0));
    memref::StoreOp::create(b, beta, bS, ValueRange{zero, tid});
  }
  gpu::BarrierOp::create(b);
  auto gammaAt = [&](Value r) -> Value {
    return decay ? memref::LoadOp::create(b, gS, ValueRange{zero, r}).getResult() : f32(0.0);
  };

  // A = K K^T, strictly lower, rows weighted by beta_i exp(gamma_i - gamma_j):
  // this warp's 16 rows, f32 to shared memory.
  Value aS = view(offA, kC, strideA(), b.getF32Type());
  {
    Value warpRow = mul(warp, idx(16));
    int64_t nTiles = kC / 8;
    SmallVector<SmallVector<Value, 4>> P(nTiles, SmallVector<Value, 4>(4, f32(0.0)));
    auto [ar, ac] = laneA();
    auto [br, bc] = laneBnk();
    for (int64_t kk = 0; kk < K / 16; ++kk) {
      auto a = ldmatrix(idx(offK), strideK(), add(warpRow, ar), addc(ac, 16 * kk), false);
      for (int64_t np = 0; np < nTiles / 2; ++np) {
        auto bf = ldmatrix(idx(offK), strideK(), addc(br, 16 * np), addc(bc, 16 * kk), false);
        P[2 * np] = mma(a, {bf[0], bf[1]}, P[2 * np]);
        P[2 * np + 1] = mma(a, {bf[2], bf[3]}, P[2 * np + 1]);
      }
    }
    auto pairF = VectorType::get({2}, b.getF32Type());
    for (int64_t half = 0; half < 2; ++half) {
      Value i = add(warpRow, addc(gq, 8 * half));
      Value gi = gammaAt(i);
      Value bi = memref::LoadOp::create(b, bS, ValueRange{zero, i});
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        SmallVector<Value, 2> vals;
        for (int64_t e = 0; e < 2; ++e) {
          Value j = addc(tq2, 8 * nt + e);
          Value a = arith::MulFOp::create(b, P[nt][2 * half + e], bi);
          if (decay)
            a = arith::MulFOp::create(
                b, a, math::ExpOp::create(b, arith::SubFOp::create(b, gi, gammaAt(j))));
          Value below = ult(j, i);
          vals.push_back(arith::SelectOp::create(b, below, a, f32(0.0)));
        }
        Value pair = vector::FromElementsOp::create(b, pairF, vals);
        vector::StoreOp::create(b, pair, aS, ValueRange{i, addc(tq2, 8 * nt)});
      }
    }
  }
  gpu::BarrierOp::create(b);

  // T on warps 0-1; the row scaling of K (beta exp(gamma)) and V (beta) on
  // warps 2-3, which nothing reads until the barrier.
  {
    auto ifOp = scf::IfOp::create(b, ult(tid, idx(kC)), /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    solve(aS, view(offT, kC, strideT(), elt));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    Value thread = arith::SubIOp::create(b, tid, idx(kC));
    scaleRows(view(offK, kC, strideK(), elt), K, gS, bS, decay, thread, threads - kC);
    scaleRows(view(offV, kC, strideV(), elt), V, gS, bS, false, thread, threads - kC);
  }
  gpu::BarrierOp::create(b);

  productToWorkspace(offK, strideK(), K, 0, rows, h);
  productToWorkspace(offV, strideV(), V, K, rows, h);
}

} // namespace

void mlir::mixer::emitDeltaRulePrepare(LinearAttentionOp op, Value workspace,
                                       ImplicitLocOpBuilder &b) {
  DeltaRulePrepareBuilder builder(op, workspace, b);
  builder.build();
}
