//===- MmaEmitter.h - building blocks of the tensor-core kernels -*- C++ -*-===//
//
// What the chunked linear-attention kernels (the fused pass in
// LowerLinearAttentionMma.cpp, the delta rule's WY preparation in
// DeltaRulePrepare.cpp, a per-key decay's in VectorDecayPrepare.cpp) have in
// common, emitted inside a gpu.launch body:
// lane ids, dynamic shared memory, ldmatrix and mma.sync m16n8k16 fragments,
// cp.async row copies with zero-fill, and the chunk's prefix sums of log
// decays. Operands are 16-bit floats (bf16 or f16), accumulators f32.
//
// Fragment layouts are the PTX ISA's for mma.m16n8k16: lane = 4 gq + tq holds
// accumulator rows gq and gq + 8, columns 2 tq and 2 tq + 1 of an m16n8 tile.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_CONVERSION_MIXERTOGPU_MMAEMITTER_H
#define MIXIR_CONVERSION_MIXERTOGPU_MMAEMITTER_H

#include "../LinearAttentionCommon.h"
#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::mixer {

constexpr int64_t kMmaChunk = 64; // steps per chunk (C)
constexpr int64_t kMmaPad = 8;    // elements of row padding in shared memory

/// Why the delta rule of `op` cannot take the chunked tensor-core path, or "".
std::string deltaRulePrepareIneligibility(LinearAttentionOp op);

/// Emits, before `op`, the gpu.launch that writes every chunk's WY factors
/// W = T diag(beta exp(gamma)) K and U = T diag(beta) V, T = (I + A)^-1, into
/// the op's workspace (see DeltaRulePrepare.cpp).
void emitDeltaRulePrepare(LinearAttentionOp op, Value workspace, ImplicitLocOpBuilder &b);

/// Why the per-key decay of `op` cannot take the chunked tensor-core path, or "".
std::string vectorDecayPrepareIneligibility(LinearAttentionOp op);

/// Emits, before `op`, the gpu.launch that writes every chunk's decayed
/// queries and keys, intra-chunk scores and total decay into the op's
/// workspace (see VectorDecayPrepare.cpp).
void emitVectorDecayPrepare(LinearAttentionOp op, Value workspace, ImplicitLocOpBuilder &b);

/// Names the kernel that `launch` becomes <function>_<role> (profiles then tell
/// the chunk-factor kernels from the sequential one).
inline void nameKernel(Operation *op, gpu::LaunchOp launch, StringRef role) {
  std::string name = role.str();
  if (auto fn = op->getParentOfType<FunctionOpInterface>())
    name = (fn.getName() + "_" + role).str();
  launch.setFunctionAttr(FlatSymbolRefAttr::get(op->getContext(), name));
}

struct MmaEmitter {
  ImplicitLocOpBuilder &b;
  Type elt; // bf16 or f16 operands

  // Set by beginKernel.
  Value tid, lane, warp;
  Value laneRow, laneHi, laneQuad; // lane % 8, (lane / 8) % 2, lane / 16: ldmatrix rows
  Value gq, tq, tq2;               // accumulator fragment: lane / 4, lane % 4, 2 tq
  Value smemBase;                  // !llvm.ptr<3>
  Value smem;                      // memref<?xi8, workgroup>

  MmaEmitter(ImplicitLocOpBuilder &b, Type elt) : b(b), elt(elt) {}

  Value idx(int64_t i) { return arith::ConstantIndexOp::create(b, i); }
  Value f32(double x) { return arith::ConstantOp::create(b, b.getF32FloatAttr(x)); }
  Value i32(int64_t x) { return arith::ConstantIntOp::create(b, b.getI32Type(), x); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value addc(Value x, int64_t c) { return c ? add(x, idx(c)) : x; }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y);
  }

  /// Lane ids from the thread id and the dynamic shared memory base.
  void beginKernel(Value threadId) {
    MLIRContext *ctx = b.getContext();
    tid = threadId;
    lane = arith::RemUIOp::create(b, tid, idx(32));
    warp = arith::DivUIOp::create(b, tid, idx(32));
    laneRow = arith::RemUIOp::create(b, lane, idx(8));
    laneHi = arith::RemUIOp::create(b, arith::DivUIOp::create(b, lane, idx(8)), idx(2));
    laneQuad = arith::DivUIOp::create(b, lane, idx(16));
    gq = arith::DivUIOp::create(b, lane, idx(4));
    tq = arith::RemUIOp::create(b, lane, idx(4));
    tq2 = mul(tq, idx(2));
    auto ws = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    smem = gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), MemRefLayoutAttrInterface{},
                           ws));
    Value p = memref::ExtractAlignedPointerAsIndexOp::create(b, smem);
    Value p64 = arith::IndexCastOp::create(b, b.getI64Type(), p);
    smemBase = LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(ctx, 3), p64);
  }

  /// A typed 2-D view of shared memory at a byte offset.
  Value view(Value offset, int64_t rows, int64_t cols, Type t) {
    auto ws = gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
    auto ty = MemRefType::get({rows, cols}, t, MemRefLayoutAttrInterface{}, ws);
    return memref::ViewOp::create(b, ty, smem, offset, ValueRange{});
  }
  Value view(int64_t offset, int64_t rows, int64_t cols, Type t) {
    return view(idx(offset), rows, cols, t);
  }

  /// ldmatrix.x4 at byte offset `bufOffset` + (row, col) of a 16-bit buffer
  /// with `stride` elements per row; `trans` transposes each 8x8 tile.
  SmallVector<Value, 4> ldmatrix(Value bufOffset, int64_t stride, Value row, Value col,
                                 bool trans) {
    Value off = add(add(mul(row, idx(stride * 2)), mul(col, idx(2))), bufOffset);
    Value off64 = arith::IndexCastOp::create(b, b.getI64Type(), off);
    auto ptrTy = LLVM::LLVMPointerType::get(b.getContext(), 3);
    Value ptr = LLVM::GEPOp::create(b, ptrTy, b.getI8Type(), smemBase, ValueRange{off64});
    auto i32Ty = b.getI32Type();
    auto structTy =
        LLVM::LLVMStructType::getLiteral(b.getContext(), {i32Ty, i32Ty, i32Ty, i32Ty});
    Value m = NVVM::LdMatrixOp::create(
        b, structTy, ptr, 4, trans ? NVVM::MMALayout::col : NVVM::MMALayout::row,
        NVVM::LdStMatrixShapeAttr::get(b.getContext(), 8, 8), NVVM::LdStMatrixEltType::B16);
    SmallVector<Value, 4> regs;
    for (int64_t i = 0; i < 4; ++i)
      regs.push_back(LLVM::ExtractValueOp::create(b, m, i));
    return regs;
  }

  /// The lane's row and column inside a 16x16 block for the four ldmatrix
  /// patterns: A from [m][k] storage, B from [n][k], B from [k][n] (trans) and
  /// A from [k][m] (trans).
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

  /// Two f32 values as one register of two 16-bit floats (x in the low half).
  Value pack(Value x, Value y) {
    Value lo = arith::TruncFOp::create(b, elt, x), hi = arith::TruncFOp::create(b, elt, y);
    Value v = vector::FromElementsOp::create(b, VectorType::get({2}, elt), ValueRange{lo, hi});
    return LLVM::BitcastOp::create(b, b.getI32Type(), v);
  }

  /// A global [rows, time, heads, cols] operand as a byte address plus
  /// element strides (for cp.async).
  struct Global {
    Value base, offset;
    SmallVector<Value, 4> strides;
  };
  Global globalOf(Value memref) {
    auto md = memref::ExtractStridedMetadataOp::create(b, memref);
    Global g;
    g.base = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
    g.offset = md.getOffset();
    for (Value st : md.getStrides())
      g.strides.push_back(st);
    return g;
  }

  /// The rows' time steps of one chunk and which of them exist.
  struct ChunkRows {
    Value row;     // batch row
    Value t0;      // time of the chunk's first step
    Value valid;   // steps of the chunk inside the sequence (<= C)
    Value lastRow; // time of the sequence's last step (clamps loads)
  };

  /// Copies `cols` columns (from `colBase`; elements of `eltBytes` bytes, 2
  /// or 4) of the chunk's C rows of `g` at head `head` to shared memory at
  /// byte `dst` (rows `stride` elements apart): 16 bytes per thread and step
  /// of `threads`, issued asynchronously; rows past the sequence are
  /// zero-filled (their source address is clamped to a valid row). With
  /// `lowerBlocks` (the chunk's scores P, [C, C]), a row's columns right of
  /// its 16 x 16 diagonal block are not copied: the prepare kernel does not
  /// write them and the P V product skips those blocks (compute-sanitizer's
  /// initcheck saw the reads of the unwritten workspace).
  void copyRowsAsync(const Global &g, Value dst, int64_t stride, int64_t cols, Value colBase,
                     const ChunkRows &rows, Value head, int64_t threads, int64_t eltBytes = 2,
                     bool lowerBlocks = false) {
    int64_t perVector = 16 / eltBytes;
    int64_t perRow = cols / perVector, total = kMmaChunk * perRow;
    for (int64_t i0 = 0; i0 < total; i0 += threads) {
      Value i = addc(tid, i0);
      auto guard = guardBelow(i, i0 + threads > total ? total : 0);
      Value r = arith::DivUIOp::create(b, i, idx(perRow));
      Value col = mul(arith::RemUIOp::create(b, i, idx(perRow)), idx(perVector));
      std::optional<OpBuilder::InsertionGuard> inLowerBlocks;
      if (lowerBlocks) {
        Value blockEnd = mul(addc(arith::DivUIOp::create(b, r, idx(16)), 1), idx(16));
        auto ifOp = scf::IfOp::create(b, ult(col, blockEnd), /*withElseRegion=*/false);
        inLowerBlocks.emplace(b);
        b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      }
      Value inside = ult(r, rows.valid);
      Value t = arith::MinUIOp::create(b, add(rows.t0, r), rows.lastRow);
      Value src = byteAddress(g, rows.row, t, head, add(colBase, col), eltBytes);
      Value to = add(dst, add(mul(r, idx(stride * eltBytes)), mul(col, idx(eltBytes))));
      copyAsync(to, src, 16, arith::SelectOp::create(b, inside, i32(16), i32(0)));
    }
  }

  /// The chunk's C per-head log decays (f32, `g` [B, T, H], any strides) to
  /// shared memory at byte `dst`, asynchronously, by the lanes of warp 0 that
  /// read them in decayPrefixSums (lane l: steps 2l and 2l + 1): a cp.async's
  /// data is visible after the wait to the thread that issued it only, and
  /// that read comes before any barrier. Steps past the sequence are
  /// zero-filled.
  void copyGatesAsync(const Global &g, Value dst, const ChunkRows &rows, Value head) {
    auto isWarp0 = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, idx(0)), false);
    OpBuilder::InsertionGuard inWarp0(b);
    b.setInsertionPointToStart(&isWarp0.getThenRegion().front());
    for (int64_t step = 0; step < 2; ++step) {
      Value r = addc(mul(lane, idx(2)), step);
      Value t = arith::MinUIOp::create(b, add(rows.t0, r), rows.lastRow);
      Value src = byteAddress(g, rows.row, t, head, Value(), 4);
      copyAsync(add(dst, mul(r, idx(4))), src, 4,
                arith::SelectOp::create(b, ult(r, rows.valid), i32(4), i32(0)));
    }
  }

  /// The byte address of element (row, t, head, col) of a [rows, time, heads,
  /// cols] operand of `eltBytes`-byte elements (no col: the [rows, time,
  /// heads] operand's element).
  Value byteAddress(const Global &g, Value row, Value t, Value head, Value col,
                    int64_t eltBytes) {
    Value inRow = mul(head, g.strides[2]);
    if (col)
      inRow = add(inRow, col);
    Value e = add(g.offset, add(add(mul(row, g.strides[0]), mul(t, g.strides[1])), inRow));
    return add(g.base, mul(e, idx(eltBytes)));
  }

  /// One cp.async of `size` bytes (4, 8 or 16) from global byte address `src`
  /// to shared byte offset `dst`; `bytes` (i32, 0 or size) are read, the rest
  /// zero-filled. 16-byte copies bypass L1 (cg), smaller ones cannot (ca).
  void copyAsync(Value dst, Value src, int64_t size, Value bytes) {
    MLIRContext *ctx = b.getContext();
    Value d64 = arith::IndexCastOp::create(b, b.getI64Type(), dst);
    Value dptr = LLVM::GEPOp::create(b, LLVM::LLVMPointerType::get(ctx, 3), b.getI8Type(),
                                     smemBase, ValueRange{d64});
    Value s64 = arith::IndexCastOp::create(b, b.getI64Type(), src);
    Value generic = LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(ctx), s64);
    Value global = LLVM::AddrSpaceCastOp::create(b, LLVM::LLVMPointerType::get(ctx, 1), generic);
    NVVM::CpAsyncOp::create(b, dptr, global, size,
                            size == 16 ? NVVM::LoadCacheModifierKind::CG
                                       : NVVM::LoadCacheModifierKind::CA,
                            bytes);
  }

  /// With `bound` > 0, the rest of the current block runs only for i < bound
  /// (an scf.if whose guard the caller keeps alive); with 0, unconditionally.
  std::optional<OpBuilder::InsertionGuard> guardBelow(Value i, int64_t bound) {
    if (bound == 0)
      return std::nullopt;
    auto ifOp = scf::IfOp::create(b, ult(i, idx(bound)), /*withElseRegion=*/false);
    std::optional<OpBuilder::InsertionGuard> g(std::in_place, b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    return g;
  }

  /// The chunk's inclusive prefix sums of the per-head log decays `g`
  /// [B, T, H] into gS [1, C] (f32), by one warp: two steps per lane, a
  /// shuffle scan over lanes. Steps past the sequence add 0. The caller
  /// guards it to a single warp and synchronises after it.
  void decayPrefixSums(Value g, const ChunkRows &rows, Value head, Value gS) {
    decayPrefixSums(rows, gS, [&](Value r) -> Value {
      Value t = arith::MinUIOp::create(b, add(rows.t0, r), rows.lastRow);
      Value x = memref::LoadOp::create(b, g, ValueRange{rows.row, t, head});
      if (!x.getType().isF32())
        x = arith::ExtFOp::create(b, b.getF32Type(), x);
      return x;
    });
  }
  /// The same from the chunk's log decays staged in shared memory ([1, C] f32).
  void decayPrefixSumsStaged(Value staged, const ChunkRows &rows, Value gS) {
    decayPrefixSums(rows, gS, [&](Value r) -> Value {
      return memref::LoadOp::create(b, staged, ValueRange{idx(0), r});
    });
  }
  void decayPrefixSums(const ChunkRows &rows, Value gS, llvm::function_ref<Value(Value)> load) {
    Value zero = idx(0);
    auto gate = [&](Value r) {
      return arith::SelectOp::create(b, ult(r, rows.valid), load(r), f32(0.0)).getResult();
    };
    Value r0 = mul(lane, idx(2)), r1 = addc(r0, 1);
    Value a = gate(r0), a1 = gate(r1);
    Value incl = arith::AddFOp::create(b, a, a1);
    Value width = i32(32);
    for (int32_t off = 1; off < 32; off *= 2) {
      auto sh = gpu::ShuffleOp::create(b, incl, i32(off), width, gpu::ShuffleMode::UP);
      Value got = arith::SelectOp::create(b, sh.getValid(), sh.getShuffleResult(), f32(0.0));
      incl = arith::AddFOp::create(b, incl, got);
    }
    auto prev = gpu::ShuffleOp::create(b, incl, i32(1), width, gpu::ShuffleMode::UP);
    Value excl = arith::SelectOp::create(b, prev.getValid(), prev.getShuffleResult(), f32(0.0));
    Value g0 = arith::AddFOp::create(b, excl, a);
    memref::StoreOp::create(b, g0, gS, ValueRange{zero, r0});
    memref::StoreOp::create(b, arith::AddFOp::create(b, g0, a1), gS, ValueRange{zero, r1});
  }

  /// Warp-wide combinations of one f32 per lane (all 32 lanes must take part).
  using Combine = llvm::function_ref<Value(Value, Value)>;
  Value maxF(Value x, Value y) { return arith::MaximumFOp::create(b, x, y); }
  Value addF(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  /// Inclusive scan over lanes: lane l gets lanes 0..l combined, or with
  /// `reverse` lanes l..31.
  Value warpScan(Value x, Combine combine, Value identity, bool reverse) {
    for (int32_t off = 1; off < 32; off *= 2)
      x = combine(x, warpShift(x, identity, reverse, off));
    return x;
  }
  /// Lane l gets lane l - off's `x` (with `reverse`, l + off's), `identity`
  /// where there is none.
  Value warpShift(Value x, Value identity, bool reverse, int32_t off = 1) {
    auto sh = gpu::ShuffleOp::create(b, x, i32(off), i32(32),
                                     reverse ? gpu::ShuffleMode::DOWN : gpu::ShuffleMode::UP);
    return arith::SelectOp::create(b, sh.getValid(), sh.getShuffleResult(), identity);
  }
  /// Every lane gets the lanes that differ from it only in the bits of
  /// `offsets` combined (a butterfly; all 32 lanes by default).
  Value warpReduce(Value x, Combine combine,
                   std::initializer_list<int32_t> offsets = {1, 2, 4, 8, 16}) {
    for (int32_t off : offsets)
      x = combine(x, gpu::ShuffleOp::create(b, x, i32(off), i32(32), gpu::ShuffleMode::XOR)
                         .getShuffleResult());
    return x;
  }
  /// Stores `value` at `indices` of `memref` where `index` is 0 (one lane of a group).
  void storeWhereZero(Value index, Value value, Value memref, ValueRange indices) {
    auto first = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, index, idx(0)), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    memref::StoreOp::create(b, value, memref, indices);
  }

  /// What every kernel of `op` launches over: value heads H, the group H / Hq
  /// of value heads per query/key head, the row length T and the sequences N.
  LinearAttentionSizes opSizes(LinearAttentionOp op) {
    return linearAttentionSizes(b, op.getQuery(), op.getValue(), op.getOffsets());
  }

  /// A block per (chunk of the row, value head, sequence): the launch (`threads`
  /// threads, `bytes` of dynamic shared memory, named <function>_<role>), with
  /// the insertion point left inside it, past a guard that returns the blocks
  /// beyond their sequence's end (packed sequences launch a block per chunk of
  /// the whole row for each). Returns the chunk's rows and its value and
  /// query/key heads.
  struct ChunkBlock {
    ChunkRows rows;
    Value h, hq;
  };
  ChunkBlock beginChunkKernel(LinearAttentionOp op, int64_t threads, int64_t bytes,
                              StringRef role);
};

inline MmaEmitter::ChunkBlock MmaEmitter::beginChunkKernel(LinearAttentionOp op,
                                                           int64_t threads, int64_t bytes,
                                                           StringRef role) {
  Value one = idx(1);
  LinearAttentionSizes sizes = opSizes(op);
  Value chunks = arith::CeilDivUIOp::create(b, sizes.T, idx(kMmaChunk));
  auto launch = gpu::LaunchOp::create(b, chunks, sizes.H, sizes.N, idx(threads), one, one,
                                      i32(bytes));
  nameKernel(op, launch, role);
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b);
  b.setInsertionPointToStart(&launch.getBody().front());

  beginKernel(launch.getThreadIds().x);
  Value chunk = launch.getBlockIds().x, h = launch.getBlockIds().y, n = launch.getBlockIds().z;
  Value hq = arith::DivUIOp::create(b, h, sizes.group);
  auto [row, start, length] = mixer::sequenceRange(b, op.getOffsets(), n, sizes.T);
  Value c0 = mul(chunk, idx(kMmaChunk));
  auto inside = scf::IfOp::create(b, ult(c0, length), /*withElseRegion=*/false);
  b.setInsertionPointToStart(&inside.getThenRegion().front());
  ChunkRows rows{row, add(start, c0),
                 arith::MinUIOp::create(b, idx(kMmaChunk), arith::SubIOp::create(b, length, c0)),
                 arith::SubIOp::create(b, add(start, length), one)};
  return {rows, h, hq};
}

} // namespace mlir::mixer

#endif // MIXIR_CONVERSION_MIXERTOGPU_MMAEMITTER_H
