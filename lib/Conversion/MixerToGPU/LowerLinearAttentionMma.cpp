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
// Without an output operand the kernel is the state pass of a sequence-split
// schedule: it skips Q, the scores and the output and only carries S (about a
// quarter of the fused kernel's tensor-core work).
//
// Ops this lowering cannot take are left for mixer-lower-linear-attention.
//
//===----------------------------------------------------------------------===//

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

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERLOWERLINEARATTENTIONMMA
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

constexpr int64_t kChunk = 64; // steps per chunk (C)
constexpr int64_t kPad = 8;    // elements of row padding in shared memory

/// Why `op` cannot take the tensor-core path, or an empty string.
std::string mmaIneligibility(LinearAttentionOp op, int64_t blockV) {
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
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
  if (op.getBeta())
    return "delta rule";
  if (op.hasVectorDecay())
    return "per-key-dimension decay";
  if (!op.getStateElementType().isF32())
    return "state is not f32";
  if (op.getChunkSize() && *op.getChunkSize() != kChunk)
    return "chunk_size other than 64";
  int64_t K = op.getKeyDim(), V = op.getValueDim();
  if (K % 16 != 0 || K > 128)
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

/// Builds the kernel of one op. Holds the per-kernel constants.
struct MmaKernelBuilder {
  LinearAttentionOp op;
  ImplicitLocOpBuilder &b;
  int64_t K, BV, W; // key dim, value tile, warps
  Type elt;         // bf16 or f16
  Type outElt;      // elt, or f32
  bool decay;
  bool output; // false: the state pass only (no Q, scores or output)

  // Inside the launch.
  Value lane, warp, laneRow, laneHi, laneQuad; // lane%8, (lane/8)%2, lane/16
  Value smemBase;                              // !llvm.ptr<3>
  Value smem;                                  // memref<?xi8, workgroup>

  // Shared buffers: byte offsets and row strides (elements).
  int64_t offQ = 0, offK = 0, offV = 0, offVd = 0, offP = 0, offG = 0, bytes = 0;
  int64_t strideQK() const { return K + kPad; }
  int64_t strideV() const { return BV + kPad; }
  int64_t strideP() const { return kChunk + kPad; }

  Value idx(int64_t i) { return arith::ConstantIndexOp::create(b, i); }
  Value f32(double x) { return arith::ConstantOp::create(b, b.getF32FloatAttr(x)); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value addc(Value x, int64_t c) { return c ? add(x, idx(c)) : x; }

  int64_t stageBytes = 0; // one chunk's Q, K and V; two stages alternate
  void layoutSharedMemory() {
    int64_t eb = 2;
    offQ = 0;
    offK = offQ + kChunk * strideQK() * eb;
    offV = offK + kChunk * strideQK() * eb;
    stageBytes = offV + kChunk * strideV() * eb;
    offVd = 2 * stageBytes;
    offP = offVd + (decay ? kChunk * strideV() * eb : 0);
    offG = offP + kChunk * strideP() * eb;
    bytes = offG + kChunk * 4;
  }

  /// A typed 2-D view of a shared buffer.
  Value view(int64_t offset, int64_t rows, int64_t cols, Type t) {
    auto ws = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
    auto ty = MemRefType::get({rows, cols}, t, MemRefLayoutAttrInterface{}, ws);
    return memref::ViewOp::create(b, ty, smem, idx(offset), ValueRange{});
  }

  /// ldmatrix.x4 at byte offset `bufOffset` + (row, col) of a buffer with
  /// `stride` elements per row; `trans` transposes each 8x8 tile.
  SmallVector<Value, 4> ldmatrix(Value bufOffset, int64_t stride, Value row, Value col,
                                 bool trans) {
    Value off = add(mul(row, idx(stride * 2)), mul(col, idx(2)));
    off = add(off, bufOffset);
    Value off64 = arith::IndexCastOp::create(b, b.getI64Type(), off);
    auto ptrTy = LLVM::LLVMPointerType::get(b.getContext(), 3);
    Value ptr = LLVM::GEPOp::create(b, ptrTy, b.getI8Type(), smemBase, ValueRange{off64});
    auto i32 = b.getI32Type();
    auto structTy = LLVM::LLVMStructType::getLiteral(b.getContext(), {i32, i32, i32, i32});
    Value m = NVVM::LdMatrixOp::create(
        b, structTy, ptr, 4, trans ? NVVM::MMALayout::col : NVVM::MMALayout::row,
        NVVM::LdStMatrixShapeAttr::get(b.getContext(), 8, 8), NVVM::LdStMatrixEltType::B16);
    SmallVector<Value, 4> regs;
    for (int64_t i = 0; i < 4; ++i)
      regs.push_back(LLVM::ExtractValueOp::create(b, m, i));
    return regs;
  }

  /// Fragment addresses for the four ldmatrix patterns (see the PTX ISA's
  /// mma.m16n8k16 fragment layouts): the lane's row and column inside a 16x16
  /// block, for A from [m][k] storage, B from [n][k], B from [k][n] (trans)
  /// and A from [k][m] (trans).
  std::pair<Value, Value> laneA() { return {add(laneRow, mul(laneHi, idx(8))), mul(laneQuad, idx(8))}; }
  std::pair<Value, Value> laneBnk() { return {add(laneRow, mul(laneQuad, idx(8))), mul(laneHi, idx(8))}; }
  std::pair<Value, Value> laneBkn() { return {add(laneRow, mul(laneHi, idx(8))), mul(laneQuad, idx(8))}; }
  std::pair<Value, Value> laneAkm() { return {add(laneRow, mul(laneQuad, idx(8))), mul(laneHi, idx(8))}; }

  /// d = a * b + c on one m16n8k16 tile; a: 4 regs, b: 2 regs, c: 4 floats.
  SmallVector<Value, 4> mma(ArrayRef<Value> a, ArrayRef<Value> bf, ArrayRef<Value> c) {
    auto f32Ty = b.getF32Type();
    auto structTy =
        LLVM::LLVMStructType::getLiteral(b.getContext(), {f32Ty, f32Ty, f32Ty, f32Ty});
    bool f16 = elt.isF16();
    auto asOperand = [&](ArrayRef<Value> regs) {
      // f16 operands are <2 x half> in NVVM, bf16 ones are i32.
      SmallVector<Value> out;
      for (Value r : regs)
        out.push_back(f16 ? LLVM::BitcastOp::create(b, VectorType::get({2}, elt), r).getResult()
                          : r);
      return out;
    };
    NVVM::MMATypes t = f16 ? NVVM::MMATypes::f16 : NVVM::MMATypes::bf16;
    Value d = NVVM::MmaOp::create(b, structTy, asOperand(a), asOperand(bf), c, {16, 8, 16},
                                  std::nullopt, std::nullopt,
                                  std::array<NVVM::MMATypes, 2>{t, t},
                                  std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                                                 NVVM::MMALayout::col});
    SmallVector<Value, 4> out;
    for (int64_t i = 0; i < 4; ++i)
      out.push_back(LLVM::ExtractValueOp::create(b, d, i));
    return out;
  }

  /// cp.async of 16 bytes from global byte address `src` (index) to shared byte
  /// offset `dst`; `bytes` (i32) < 16 fills the rest with zeros.
  void copyAsync(Value dst, Value src, Value bytes) {
    MLIRContext *ctx = b.getContext();
    Value d64 = arith::IndexCastOp::create(b, b.getI64Type(), dst);
    Value dptr = LLVM::GEPOp::create(b, LLVM::LLVMPointerType::get(ctx, 3), b.getI8Type(),
                                     smemBase, ValueRange{d64});
    Value s64 = arith::IndexCastOp::create(b, b.getI64Type(), src);
    Value generic = LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(ctx), s64);
    Value global =
        LLVM::AddrSpaceCastOp::create(b, LLVM::LLVMPointerType::get(ctx, 1), generic);
    NVVM::CpAsyncOp::create(b, dptr, global, 16, NVVM::LoadCacheModifierKind::CG, bytes);
  }

  /// Two f32 values as one register of two 16-bit floats (x in the low half).
  Value pack(Value x, Value y) {
    Value lo = arith::TruncFOp::create(b, elt, x), hi = arith::TruncFOp::create(b, elt, y);
    Value v = vector::FromElementsOp::create(b, VectorType::get({2}, elt), ValueRange{lo, hi});
    return LLVM::BitcastOp::create(b, b.getI32Type(), v);
  }

  void build();
};

void MmaKernelBuilder::build() {
  MLIRContext *ctx = b.getContext();
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
  elt = typeOf(op.getQuery()).getElementType();
  output = static_cast<bool>(op.getOutput());
  outElt = output ? typeOf(op.getOutput()).getElementType() : elt;
  decay = static_cast<bool>(op.getLogDecay());
  layoutSharedMemory();
  Value offsets = op.getOffsets();

  // Launch geometry: (value tiles, heads, sequences) x W warps.
  Value one = idx(1);
  Value H = memref::DimOp::create(b, op.getQuery(), 2);
  Value T = memref::DimOp::create(b, op.getQuery(), 1);
  Value N = offsets ? arith::SubIOp::create(b, memref::DimOp::create(b, offsets, 0), one)
                          .getResult()
                    : memref::DimOp::create(b, op.getQuery(), 0).getResult();
  Value smemBytes = arith::ConstantIntOp::create(b, b.getI32Type(), bytes);
  auto launch = gpu::LaunchOp::create(b, idx(op.getValueDim() / BV), H, N, idx(32 * W), one,
                                      one, smemBytes);
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b);
  b.setInsertionPointToStart(&launch.getBody().front());

  Value zero = idx(0);
  Value tid = launch.getThreadIds().x;
  Value vTile = launch.getBlockIds().x, h = launch.getBlockIds().y, n = launch.getBlockIds().z;
  lane = arith::RemUIOp::create(b, tid, idx(32));
  warp = arith::DivUIOp::create(b, tid, idx(32));
  laneRow = arith::RemUIOp::create(b, lane, idx(8));
  laneHi = arith::RemUIOp::create(b, arith::DivUIOp::create(b, lane, idx(8)), idx(2));
  laneQuad = arith::DivUIOp::create(b, lane, idx(16));
  Value gq = arith::DivUIOp::create(b, lane, idx(4)); // fragment row
  Value tq = arith::RemUIOp::create(b, lane, idx(4)); // fragment column pair
  Value tq2 = mul(tq, idx(2));
  Value warpRow = mul(warp, idx(16)); // first state row / output column / score row
  Value v0 = add(mul(vTile, idx(BV)), warpRow);

  auto ws = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  smem = gpu::DynamicSharedMemoryOp::create(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), MemRefLayoutAttrInterface{}, ws));
  {
    Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, smem);
    Value p64 = arith::IndexCastOp::create(b, b.getI64Type(), p);
    smemBase = LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(ctx, 3), p64);
  }
  Value vdS = decay ? view(offVd, kChunk, strideV(), elt) : Value();
  Value pS = view(offP, kChunk, strideP(), elt);
  Value gS = view(offG, 1, kChunk, b.getF32Type());

  // The sequence's rows.
  Value row = n, start = zero, length = T;
  if (offsets) {
    auto offset = [&](Value i) {
      Value o = memref::LoadOp::create(b, offsets, ValueRange{i});
      return arith::IndexCastOp::create(b, b.getIndexType(), o).getResult();
    };
    row = zero;
    start = offset(n);
    length = arith::SubIOp::create(b, offset(add(n, one)), start);
  }

  // State S^T: tile c holds rows v = v0 + gq (+8), columns d = 8c + 2tq (+1).
  int64_t stateTiles = K / 8;
  SmallVector<Value> state;
  for (int64_t c = 0; c < stateTiles; ++c)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t e = 0; e < 2; ++e) {
        if (Value init = op.getInitialState()) {
          Value d = add(idx(8 * c + e), tq2);
          Value v = add(addc(v0, 8 * half), gq);
          state.push_back(memref::LoadOp::create(b, init, ValueRange{n, h, d, v}));
        } else {
          state.push_back(f32(0.0));
        }
      }
  // Accumulator element order within a tile: (half 0: e0, e1), (half 1: e0, e1),
  // which is the mma's c0..c3.

  Value numChunks =
      arith::CeilDivUIOp::create(b, length, idx(kChunk)); // unsigned: length >= 0
  Value lastRow = arith::SubIOp::create(b, add(start, length), one);
  int64_t threads = 32 * W;
  auto chunkStart = [&](Value c) { return mul(c, idx(kChunk)); };
  auto validRows = [&](Value c) {
    return arith::MinUIOp::create(b, idx(kChunk),
                                  arith::SubIOp::create(b, length, chunkStart(c)))
        .getResult();
  };

  // Global operands as byte addresses plus element strides, for cp.async.
  struct Global {
    Value base, offset;
    SmallVector<Value, 4> strides;
  };
  auto globalOf = [&](Value memref) {
    auto md = memref::ExtractStridedMetadataOp::create(b, memref);
    Global g;
    g.base = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
    g.offset = md.getOffset();
    for (Value st : md.getStrides())
      g.strides.push_back(st);
    return g;
  };
  Global gq_ = globalOf(op.getQuery()), gk_ = globalOf(op.getKey()),
         gv_ = globalOf(op.getValue());
  Value vBaseCol = mul(vTile, idx(BV));

  // 1. Q, K, V of chunk `c` into stage `parity`: 16 bytes per thread and
  //    step, issued asynchronously (cp.async); rows past the sequence are
  //    zero-filled (their source address is clamped to a valid row).
  auto stageChunk = [&](Value c, Value parity) {
    Value t0c = add(start, chunkStart(c));
    Value validC = validRows(c);
    Value stageOff = mul(parity, idx(stageBytes));
    auto copyTile = [&](const Global &g, int64_t bufOffset, int64_t stride, int64_t cols,
                        Value colBase) {
      int64_t perRow = cols / 8, total = kChunk * perRow;
      for (int64_t i0 = 0; i0 < total; i0 += threads) {
        Value i = addc(tid, i0);
        Value r = arith::DivUIOp::create(b, i, idx(perRow));
        Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
        Value inside = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, r, validC);
        Value t = arith::MinUIOp::create(b, add(t0c, r), lastRow);
        Value e = add(g.offset, add(add(mul(row, g.strides[0]), mul(t, g.strides[1])),
                                    add(mul(h, g.strides[2]), add(colBase, col))));
        Value src = add(g.base, mul(e, idx(2)));
        Value dst = add(add(stageOff, idx(bufOffset)),
                        add(mul(r, idx(stride * 2)), mul(col, idx(2))));
        Value bytes = arith::SelectOp::create(
            b, inside, arith::ConstantIntOp::create(b, b.getI32Type(), 16),
            arith::ConstantIntOp::create(b, b.getI32Type(), 0));
        copyAsync(dst, src, bytes);
      }
    };
    if (output)
      copyTile(gq_, offQ, strideQK(), K, zero);
    copyTile(gk_, offK, strideQK(), K, zero);
    copyTile(gv_, offV, strideV(), BV, vBaseCol);
  };
  {
    // Prologue: chunk 0 into stage 0.
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, numChunks, zero);
    auto ifOp = scf::IfOp::create(b, any, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    stageChunk(zero, zero);
  }
  NVVM::CpAsyncCommitGroupOp::create(b);

  auto loop = scf::ForOp::create(b, zero, numChunks, one, state);
  b.setInsertionPointToStart(loop.getBody());
  SmallVector<Value> S(loop.getRegionIterArgs());
  Value chunk = loop.getInductionVar();
  Value c0 = chunkStart(chunk);
  Value t0 = add(start, c0);
  Value valid = validRows(chunk);
  Value parity = arith::RemUIOp::create(b, chunk, idx(2));
  Value stageOff = mul(parity, idx(stageBytes));
  Value offQd = addc(stageOff, offQ), offKd = addc(stageOff, offK),
        offVdyn = addc(stageOff, offV);
  Value vdOffset = decay ? idx(offVd) : offVdyn;
  {
    // Prefetch the next chunk into the other stage (read two chunks ago and
    // released by the barrier that ended the previous chunk).
    Value next = add(chunk, one);
    Value more = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, next, numChunks);
    auto ifOp = scf::IfOp::create(b, more, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    stageChunk(next, arith::SubIOp::create(b, one, parity));
  }
  // One group per chunk (empty after the last): waiting until one is pending
  // completes this chunk's copies.
  NVVM::CpAsyncCommitGroupOp::create(b);
  NVVM::CpAsyncWaitGroupOp::create(b, 1);
  Value vS = memref::ViewOp::create(
      b,
      MemRefType::get({kChunk, strideV()}, elt, MemRefLayoutAttrInterface{},
                      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup)),
      smem, offVdyn, ValueRange{});
  // 2. gamma: the chunk's inclusive prefix sums of log decays, by warp 0 (two
  //    steps per lane, a shuffle scan over lanes). Steps past the end add 0.
  if (decay) {
    Value isWarp0 = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, zero);
    auto ifOp = scf::IfOp::create(b, isWarp0, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    Value g = op.getLogDecay();
    auto gate = [&](Value r) {
      Value inside = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, r, valid);
      Value t = arith::MinUIOp::create(b, add(t0, r), lastRow);
      Value x = memref::LoadOp::create(b, g, ValueRange{row, t, h});
      if (!x.getType().isF32())
        x = arith::ExtFOp::create(b, b.getF32Type(), x);
      return arith::SelectOp::create(b, inside, x, f32(0.0)).getResult();
    };
    Value r0 = mul(lane, idx(2)), r1 = addc(r0, 1);
    Value a = gate(r0), a1 = gate(r1);
    Value pair = arith::AddFOp::create(b, a, a1);
    Value incl = pair;
    Value width = arith::ConstantIntOp::create(b, b.getI32Type(), 32);
    for (int32_t off = 1; off < 32; off *= 2) {
      Value o = arith::ConstantIntOp::create(b, b.getI32Type(), off);
      auto sh = gpu::ShuffleOp::create(b, incl, o, width, gpu::ShuffleMode::UP);
      Value got = arith::SelectOp::create(b, sh.getValid(), sh.getShuffleResult(), f32(0.0));
      incl = arith::AddFOp::create(b, incl, got);
    }
    Value oneI32 = arith::ConstantIntOp::create(b, b.getI32Type(), 1);
    auto prev = gpu::ShuffleOp::create(b, incl, oneI32, width, gpu::ShuffleMode::UP);
    Value excl = arith::SelectOp::create(b, prev.getValid(), prev.getShuffleResult(), f32(0.0));
    Value g0 = arith::AddFOp::create(b, excl, a);
    memref::StoreOp::create(b, g0, gS, ValueRange{zero, r0});
    memref::StoreOp::create(b, arith::AddFOp::create(b, g0, a1), gS, ValueRange{zero, r1});
  }
  gpu::BarrierOp::create(b);

  auto gammaAt = [&](Value r) -> Value {
    return decay ? memref::LoadOp::create(b, gS, ValueRange{zero, r}).getResult() : f32(0.0);
  };
  Value gLast = gammaAt(idx(kChunk - 1));

  // 3. The decayed values V .* exp(gamma_C - gamma_j) for the state update.
  if (decay) {
    int64_t perRow = BV / 8, total = kChunk * perRow;
    auto vecTy = VectorType::get({8}, elt);
    auto vecF = VectorType::get({8}, b.getF32Type());
    for (int64_t i0 = 0; i0 < total; i0 += threads) {
      Value i = addc(tid, i0);
      Value r = arith::DivUIOp::create(b, i, idx(perRow));
      Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(8));
      Value x = vector::LoadOp::create(b, vecTy, vS, ValueRange{r, col}, false,
                                       llvm::MaybeAlign(16));
      Value w = math::ExpOp::create(b, arith::SubFOp::create(b, gLast, gammaAt(r)));
      Value xf = arith::ExtFOp::create(b, vecF, x);
      xf = arith::MulFOp::create(b, xf, vector::BroadcastOp::create(b, vecF, w));
      vector::StoreOp::create(b, arith::TruncFOp::create(b, vecTy, xf), vdS,
                              ValueRange{r, col}, false, llvm::MaybeAlign(16));
    }
  }

  // 4. Scores of this warp's row blocks (rows [16 r, 16 r + 16) for
  //    r = warp, warp + W, ...): P = Q K^T, masked and decayed, to shared.
  for (int64_t rb = 0; output && rb < kChunk / 16 / W; ++rb) {
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
      Value gi = gammaAt(i);
      for (int64_t nt = 0; nt < nTiles; ++nt) {
        SmallVector<Value, 2> vals;
        for (int64_t e = 0; e < 2; ++e) {
          Value j = addc(tq2, 8 * nt + e);
          Value p = P[nt][2 * half + e];
          if (decay)
            p = arith::MulFOp::create(
                b, p, math::ExpOp::create(b, arith::SubFOp::create(b, gi, gammaAt(j))));
          Value causal = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, j, i);
          vals.push_back(arith::SelectOp::create(b, causal, p, f32(0.0)));
        }
        Value pair = vector::FromElementsOp::create(
            b, VectorType::get({2}, elt),
            ValueRange{arith::TruncFOp::create(b, elt, vals[0]),
                       arith::TruncFOp::create(b, elt, vals[1])});
        vector::StoreOp::create(b, pair, pS, ValueRange{i, addc(tq2, 8 * nt)});
      }
    }
  }

  // 5. Inter-chunk output: O[:, this warp's 16 columns] = exp(gamma_i) (Q S).
  int64_t mTiles = kChunk / 16;
  SmallVector<SmallVector<SmallVector<Value, 4>, 2>> O(
      mTiles, SmallVector<SmallVector<Value, 4>, 2>(2, SmallVector<Value, 4>(4, f32(0.0))));
  if (output) {
    // B fragments of S from the accumulators of S^T (see the file comment).
    SmallVector<SmallVector<Value, 2>> stateB; // [kk * 2 + nn] -> 2 regs
    for (int64_t kk = 0; kk < K / 16; ++kk)
      for (int64_t nn = 0; nn < 2; ++nn) {
        SmallVector<Value, 2> regs;
        for (int64_t c : {2 * kk, 2 * kk + 1})
          regs.push_back(pack(S[c * 4 + 2 * nn], S[c * 4 + 2 * nn + 1]));
        stateB.push_back(regs);
      }
    auto [ar, ac] = laneA();
    for (int64_t mt = 0; mt < mTiles; ++mt) {
      for (int64_t kk = 0; kk < K / 16; ++kk) {
        auto a = ldmatrix(offQd, strideQK(), addc(ar, 16 * mt), addc(ac, 16 * kk), false);
        for (int64_t nn = 0; nn < 2; ++nn)
          O[mt][nn] = mma(a, stateB[kk * 2 + nn], O[mt][nn]);
      }
      if (decay)
        for (int64_t half = 0; half < 2; ++half) {
          Value w = math::ExpOp::create(b, gammaAt(addc(gq, 16 * mt + 8 * half)));
          for (int64_t nn = 0; nn < 2; ++nn)
            for (int64_t e = 0; e < 2; ++e)
              O[mt][nn][2 * half + e] = arith::MulFOp::create(b, O[mt][nn][2 * half + e], w);
        }
    }
  }
  gpu::BarrierOp::create(b); // scores and decayed values are complete

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
        auto a = ldmatrix(idx(offP), strideP(), addc(ar, 16 * mt), addc(ac, 16 * kk), false);
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
        for (int64_t nn = 0; nn < 2; ++nn) {
          Value x = arith::MulFOp::create(b, O[mt][nn][2 * half], scale);
          Value y = arith::MulFOp::create(b, O[mt][nn][2 * half + 1], scale);
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
  {
    if (decay) {
      Value w = math::ExpOp::create(b, gLast);
      for (Value &s : S)
        s = arith::MulFOp::create(b, s, w);
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
  scf::YieldOp::create(b, S);

  // The final state, as [n, h, d, v].
  b.setInsertionPointAfter(loop);
  if (Value final = op.getFinalState())
    for (int64_t c = 0; c < stateTiles; ++c)
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t e = 0; e < 2; ++e) {
          Value d = add(idx(8 * c + e), tq2);
          Value v = add(addc(v0, 8 * half), gq);
          memref::StoreOp::create(b, loop.getResult(c * 4 + 2 * half + e), final,
                                  ValueRange{n, h, d, v});
        }
}

struct MixerLowerLinearAttentionMma
    : public mixer::impl::MixerLowerLinearAttentionMmaBase<MixerLowerLinearAttentionMma> {
  using Base::Base;
  void runOnOperation() override {
    if (blockV % 16 != 0 || blockV <= 0 || blockV > kChunk) {
      getOperation().emitError() << "mixer-lower-linear-attention-mma: block-v must be a "
                                    "multiple of 16 up to 64, got "
                                 << blockV;
      return signalPassFailure();
    }
    SmallVector<LinearAttentionOp> ops;
    getOperation().walk([&](LinearAttentionOp op) { ops.push_back(op); });
    for (LinearAttentionOp op : ops) {
      std::string why = mmaIneligibility(op, blockV);
      if (!why.empty()) {
        if (require) {
          op.emitOpError() << "cannot take the tensor-core lowering: " << why;
          return signalPassFailure();
        }
        continue; // left for the recurrent lowering
      }
      ImplicitLocOpBuilder b(op.getLoc(), op);
      MmaKernelBuilder kb{op, b, op.getKeyDim(), blockV, blockV / 16};
      kb.build();
      op.erase();
    }
  }
};
} // namespace
