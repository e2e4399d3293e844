//===- SelectLoweringConfig.cpp - the one place kernels are chosen --------===//
//
// Every decision about which kernel lowers a mixer op and how it is shaped is
// made here, from facts the IR carries (Facts.h), and recorded on the op as a
// #mixer.lowering_config. The mechanism passes read the config and fail with a
// diagnostic when they cannot obey it; nothing downstream chooses again, and
// the frontends (Python, the C++ torch ops) pass facts, never rules.
//
// The numbers below are measured choices; each cites where it was measured.
//
//===----------------------------------------------------------------------===//

#include "mixir/Conversion/Capabilities.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Strategy/Facts.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERSELECTLOWERINGCONFIG
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

// --- Scans -----------------------------------------------------------------
// Jagged tiles of 256 steps (a multiple of the block): the H100 sweep of tile
// lengths 64..1024 (bench/sweep_scan.py) was flat from 128 up; 256 keeps the
// 16-step halo at 6% of the reads.
constexpr int64_t kJaggedTile = 256;
// Steps per loop iteration, loads first: 8 on the GPU (memory-level
// parallelism of one thread; 66.9% -> 85.4% of copy on the H100, jagged
// forward), 4 on the CPU.
constexpr int64_t kGpuUnroll = 8, kCpuUnroll = 4;
// Threads per block; channels go on threadIdx.x (coalesced), and below 128
// channels batch rows (global) or time tiles (jagged) fill the block.
constexpr int64_t kThreads = 128;
// Vector moves of whole jagged blocks need 16-byte aligned block starts.
constexpr int64_t kVectorBytes = 16;
// Channels-by-time layouts (BTP): one block per thread, tiles on threadIdx.x
// in blocks of 64 (bench/sweep_btp.py, H100: forward 65% -> 97% of copy).
constexpr int64_t kTimeMajorThreads = 64;
constexpr unsigned kScanOutputIndex = 3; // mixer.scan's output (ODS operand index)

// --- Linear attention --------------------------------------------------------
constexpr int64_t kChunk = 64;     // the tensor-core kernels' chunk
constexpr int64_t kMmaMaxK = 128;  // widest key dimension of one tensor-core pass
// Sequence split (H100, bench/results/linear_attention_h100.txt): split only
// when the unsplit kernel fills at most half the SMs, on mean sequences of
// 4096+ steps; pieces aim at about four blocks per SM and are >= 512 steps
// (at least 8 chunks, so that the state pass and the combine amortise).
constexpr int64_t kSplitMinLength = 4096;
constexpr int64_t kSplitMinPiece = 512;

struct Strategy {
  TargetAttr target;
  MLIRContext *ctx;

  bool gpu() const { return target.isGpu(); }

  DenseI64ArrayAttr threads(int64_t x, int64_t y, int64_t z) const {
    return DenseI64ArrayAttr::get(ctx, {x, y, z});
  }

  /// Channels per thread-block row for `channels` (dynamic: the full row).
  static int64_t channelsPerRow(int64_t channels) {
    int64_t x = kThreads;
    while (!ShapedType::isDynamic(channels) && x > 16 && x / 2 >= channels)
      x /= 2;
    return x;
  }

  /// The thread block of a [B, T, D] scan with D = `channels`: channels on x,
  /// then time tiles (jagged: independent) or batch rows (global) on the rest.
  DenseI64ArrayAttr scanBlock(int64_t channels, bool jagged) const {
    int64_t x = channelsPerRow(channels), rest = kThreads / x;
    return jagged ? threads(x, 1, rest) : threads(x, rest, 1);
  }

  /// Whether a [B, T, D] operand's jagged blocks can move as aligned vectors:
  /// a static unit time stride, a block of whole vectors, and the caller's
  /// promise that every block start is aligned.
  static bool blocksMoveAsVectors(Value v, int64_t block) {
    return v && alignmentOf(v) >= kVectorBytes && blockVectorizable(v, block, kVectorBytes);
  }

  LoweringConfigAttr scanConfig(Operation *op, WindowAttr window, Value gates,
                                ArrayRef<std::pair<unsigned, Value>> vectorCandidates,
                                unsigned inputsIndex, bool forward) const {
    bool jagged = window.isJagged();
    int64_t block = jagged ? window.getBlock() : 0;
    int64_t tile = jagged ? block * std::max<int64_t>(1, kJaggedTile / block) : 0;
    if (!gpu())
      return LoweringConfigAttr::get(ctx, KernelKind::Tiled, tile, kCpuUnroll, {}, false, false,
                                     0, 0, 64, false, 0, 0, 0, {}, 0);
    int64_t channels = cast<ShapedType>(gates.getType()).getShape()[2];
    DenseI64ArrayAttr blockShape = scanBlock(channels, jagged);
    int64_t vectorOperands = 0;
    if (jagged)
      for (auto [index, value] : vectorCandidates)
        if (blocksMoveAsVectors(value, block))
          vectorOperands |= int64_t(1) << index;
    bool timeMajor = (vectorOperands >> inputsIndex) & 1;
    bool fits32 = offsetsFitI32(op);
    // 32-bit indexing (H100, bench/results/README.md): the block-unrolled
    // jagged adjoint fits in registers with it (3x faster); the forward is
    // faster with it only for one-block tiles with a carry; the others slow down.
    int64_t indexBits = 64;
    if (jagged && fits32 && (!forward || (vectorOperands && window.hasCarry())))
      indexBits = 32;
    if (!vectorOperands)
      return LoweringConfigAttr::get(ctx, KernelKind::Tiled, tile, kGpuUnroll, blockShape, false,
                                     false, 0, 0, indexBits, false, 0, 0, 0, {}, 0);
    // Whole blocks as vectors: one block per thread. With channels-by-time
    // inputs (and so outputs), tiles go on threadIdx.x, constants are sunk
    // into the kernel (the exchange indexes its buffer statically) and the
    // forward exchanges output chunks so that stores cover whole sectors.
    bool exchange = false;
    if (timeMajor) {
      blockShape = threads(kTimeMajorThreads, 1, 1);
      // The exchange stores 16-byte chunks of the output: only where the
      // output's blocks are aligned too (a [B, D, T] output with T not a
      // multiple of 4 has rows that are not).
      bool outputAligned = (vectorOperands >> kScanOutputIndex) & 1;
      exchange = forward && outputAligned &&
                 exchangeOutputGroup(cast<ScanOp>(op), kVectorBytes) > 0;
    }
    return LoweringConfigAttr::get(ctx, KernelKind::Tiled, block, kGpuUnroll, blockShape,
                                   timeMajor, exchange, kVectorBytes, vectorOperands, indexBits,
                                   timeMajor, 0, 0, 0, {}, 0);
  }

  LoweringConfigAttr choose(ScanOp op) const {
    // ODS operand indices: gates 0, inputs 1, output 3.
    return scanConfig(op, op.getWindow(), op.getGates(),
                      {{0, op.getGates()}, {1, op.getInputs()}, {kScanOutputIndex, op.getOutput()}}, 1,
                      /*forward=*/true);
  }

  LoweringConfigAttr choose(ScanAdjointOp op) const {
    // ODS operand indices: gates 0, inputs 1, output_grad 4, gates_grad 6,
    // inputs_grad 7 (states are not read by the jagged adjoint).
    return scanConfig(op, op.getWindow(), op.getGates(),
                      {{0, op.getGates()},
                       {1, op.getInputs()},
                       {4, op.getOutputGrad()},
                       {6, op.getGatesGrad()},
                       {7, op.getInputsGrad()}},
                      1, /*forward=*/false);
  }

  /// A channel scan written directly (not tiled from a scan): its loop only.
  LoweringConfigAttr channelScan() const {
    return LoweringConfigAttr::get(ctx, KernelKind::Tiled, 0, gpu() ? kGpuUnroll : kCpuUnroll,
                                   {}, false, false, 0, 0, 64, false, 0, 0, 0, {}, 0);
  }

  /// Value channels per tensor-core thread block: 16 per warp, the widest
  /// tile that divides V (H100: the widest was fastest at every S1 shape,
  /// bench/results/linear_attention_*; narrower tiles repeat each chunk's
  /// Q K^T per tile).
  static int64_t valueTile(int64_t V) {
    for (int64_t bv : {64, 32, 16})
      if (V % bv == 0)
        return bv;
    return 16;
  }

  /// Whether the rows the tensor-core kernels copy with 16-byte cp.async are
  /// aligned (a fact of the call; the kernels cannot check it).
  static bool rowsAligned(LinearAttentionOp op) {
    for (Value v : {op.getQuery(), op.getKey(), op.getValue(), op.getOutput(),
                    op.getCorrectedValues()})
      if (v && alignmentOf(v) < kVectorBytes)
        return false;
    if (op.hasVectorDecay() && alignmentOf(op.getLogDecay()) < kVectorBytes)
      return false;
    return true;
  }

  bool chunkedEligible(LinearAttentionOp op, int64_t blockV, int64_t keyDim) const {
    if (!gpu() || !rowsAligned(op))
      return false;
    // The chunk-factor kernels of the delta rule and of per-key decays have
    // been validated on the GPU for V a multiple of 64 only: narrower values
    // take the recurrent kernel until they are.
    if ((op.getBeta() || op.hasVectorDecay()) && op.getValueDim() % 64 != 0)
      return false;
    return chunkedKernelIneligibility(op, blockV, keyDim).empty();
  }

  LoweringConfigAttr recurrent(bool gpuKernel) const {
    return LoweringConfigAttr::get(ctx, KernelKind::Recurrent, 0, 1,
                                   gpuKernel ? threads(kThreads, 1, 1) : DenseI64ArrayAttr(),
                                   false, false, 0, 0, 64, gpuKernel, 0, 0, 0, {}, 0);
  }

  LoweringConfigAttr choose(LinearAttentionOp op) const {
    if (!gpu())
      return recurrent(false);
    int64_t K = op.getKeyDim(), V = op.getValueDim();
    int64_t blockV = valueTile(V);
    // Keys wider than one pass: with a decay that is diagonal over keys (the
    // additive update), blocks of key dimensions evolve independently.
    int64_t keySplit = 0;
    bool eligible = false;
    if (K > kMmaMaxK && !op.getBeta() && !op.isMlstm() && !op.hasValueDecay()) {
      eligible = chunkedEligible(op, blockV, kMmaMaxK);
      keySplit = eligible ? kMmaMaxK : 0;
    } else {
      eligible = chunkedEligible(op, blockV, K);
    }
    if (!eligible)
      return recurrent(true);
    SequenceSplitAttr split;
    int64_t sms = target.getSmCountOrDefault();
    if (!op.getBeta() && !op.isMlstm() && op.getOutput())
      split = SequenceSplitAttr::get(ctx, 0, sms / 2, kSplitMinLength, 4 * sms, kSplitMinPiece,
                                     kChunk);
    // The delta rule and the mLSTM do not split into pieces (their pieces do not
    // combine through a scan); with few fused blocks they run chunk-parallel
    // instead (the state pass, then every chunk's outputs). Where it paid on the
    // H200 (bench/results/sweep_chunk_parallel_h200_2026-12-04.json): the delta
    // rule at 16 and 32 blocks (up to 14% faster), not at 64 or more (up to 50%
    // slower); the mLSTM (K = 128, V = 256) at 64 blocks (6.60 -> 5.64 ms).
    int64_t chunkParallel = 0;
    if (chunkParallelIneligibility(op).empty() && (op.getBeta() || op.isMlstm()))
      chunkParallel = op.isMlstm() ? sms / 2 : sms / 4;
    return LoweringConfigAttr::get(ctx, KernelKind::Chunked, 0, 1, {}, false, false, 0, 0, 64,
                                   /*sink_constants=*/true, kChunk, blockV, keySplit, split,
                                   chunkParallel);
  }

  /// The plain parallel loops mechanisms leave (a key split's sum, a sequence
  /// split's piece sums and state copies): elementwise, their first dimension
  /// the contiguous one; a block of 128 threads over it.
  LoweringConfigAttr loop() const {
    return LoweringConfigAttr::get(ctx, KernelKind::Tiled, 0, 1, threads(kThreads, 1, 1), false,
                                   false, 0, 0, 64, false, 0, 0, 0, {}, 0);
  }

  LoweringConfigAttr choose(LinearAttentionAdjointOp) const {
    // chunk 0: the checkpoint interval follows the sequence lengths at run
    // time (near the square root of the mean length).
    return LoweringConfigAttr::get(ctx, KernelKind::Checkpointed, 0, 1,
                                   gpu() ? threads(kThreads, 1, 1) : DenseI64ArrayAttr(), false,
                                   false, 0, 0, 64, gpu(), 0, 0, 0, {}, 0);
  }
};

/// `config` without its sequence split (or its key split).
LoweringConfigAttr withoutSplits(LoweringConfigAttr c, bool keys) {
  return LoweringConfigAttr::get(c.getContext(), c.getKernel(), c.getTile(), c.getUnroll(),
                                 c.getBlock(), c.getTimeFastest(), c.getExchangeOutput(),
                                 c.getVectorAlignment(), c.getVectorOperands(),
                                 c.getIndexBitwidth(), c.getSinkConstants(), c.getChunk(),
                                 c.getBlockV(), keys ? 0 : c.getKeySplit(),
                                 keys ? c.getSequenceSplit() : SequenceSplitAttr(), c.getChunkParallel());
}

struct MixerSelectLoweringConfig
    : public mixer::impl::MixerSelectLoweringConfigBase<MixerSelectLoweringConfig> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    TargetAttr target = targetOf(module);
    if (!target) {
      std::string name = chip.empty() ? std::string("cpu") : std::string(chip);
      target = TargetAttr::getChecked([&] { return module.emitError(); }, ctx, StringRef(name),
                                      int64_t(0), int64_t(0));
      if (!target)
        return signalPassFailure();
    } else if (!chip.empty() && chip != target.getChip()) {
      module.emitError() << "mixer-select-lowering-config: the pipeline compiles for " << chip
                         << " but the module's mixer.target is " << target.getChip();
      return signalPassFailure();
    }
    Strategy strategy{target, ctx};
    auto configure = [&](Operation *op, LoweringConfigAttr chosen) {
      LoweringConfigAttr given = LoweringConfigAttr::of(op);
      if (given && given.getKernel() != KernelKind::Auto)
        return; // a complete config from the caller is kept as it is
      if (given) {
        // Overrides: a split applies only where the op can be split (a caller
        // forcing splits on every pass of a backward reaches its per-value
        // decay passes too).
        if (auto la = dyn_cast<LinearAttentionOp>(op)) {
          if (given.getSequenceSplit() && !splitIneligibility(la, false).empty())
            given = withoutSplits(given, /*keys=*/false);
          if (given.getKeySplit() && !splitIneligibility(la, true, given.getKeySplit()).empty())
            given = withoutSplits(given, /*keys=*/true);
        }
        chosen = chosen.overriddenBy(given);
      }
      op->setAttr(LoweringConfigAttr::getAttrName(), chosen);
    };
    module.walk([&](Operation *op) {
      if (auto scan = dyn_cast<ScanOp>(op))
        configure(op, strategy.choose(scan));
      else if (auto adjoint = dyn_cast<ScanAdjointOp>(op))
        configure(op, strategy.choose(adjoint));
      else if (isa<ChannelScanOp, ChannelScanAdjointOp>(op))
        configure(op, strategy.channelScan());
      else if (auto la = dyn_cast<LinearAttentionOp>(op))
        configure(op, strategy.choose(la));
      else if (auto laAdjoint = dyn_cast<LinearAttentionAdjointOp>(op))
        configure(op, strategy.choose(laAdjoint));
      else if (auto loop = dyn_cast<scf::ParallelOp>(op);
               loop && strategy.gpu() && !loop->getParentOfType<scf::ParallelOp>())
        configure(op, strategy.loop());
    });
  }
};
} // namespace
