//===- MixerDialect.cpp - the mixer dialect and its attributes ------------===//

#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::mixer;

#include "Mixer/MixerDialect.cpp.inc"
#include "Mixer/MixerEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Mixer/MixerAttrs.cpp.inc"

void MixerDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Mixer/MixerAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "Mixer/MixerOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// #mixer.window
//===----------------------------------------------------------------------===//

LogicalResult WindowAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 WindowKind kind, int64_t block, int64_t k) {
  if (kind == WindowKind::Global) {
    if (block != 0 || k != 0)
      return emitError() << "a global window takes no block or k";
    return success();
  }
  if (block <= 0)
    return emitError() << "jagged window block must be positive, got " << block;
  // The lowerings keep a whole block in registers (unrolled over its steps).
  if (block > kMaxJaggedBlock)
    return emitError() << "jagged window block must be at most " << kMaxJaggedBlock
                       << " (the lowerings unroll a block into registers), got " << block;
  if (k != 1 && k != 2)
    return emitError() << "jagged window k must be 1 or 2, got " << k;
  return success();
}

/// Parses `<block = N, k = K>` after the keyword `jagged`.
static ParseResult parseJaggedParams(AsmParser &parser, int64_t &block, int64_t &k) {
  if (parser.parseLess() || parser.parseKeyword("block") || parser.parseEqual() ||
      parser.parseInteger(block) || parser.parseComma() || parser.parseKeyword("k") ||
      parser.parseEqual() || parser.parseInteger(k) || parser.parseGreater())
    return failure();
  return success();
}

// #mixer.window<global> | #mixer.window<jagged, block = 16, k = 2>
Attribute WindowAttr::parse(AsmParser &parser, Type) {
  StringRef kind;
  if (parser.parseLess() || parser.parseKeyword(&kind))
    return {};
  int64_t block = 0, k = 0;
  if (kind == "jagged") {
    if (parser.parseComma() || parser.parseKeyword("block") || parser.parseEqual() ||
        parser.parseInteger(block) || parser.parseComma() || parser.parseKeyword("k") ||
        parser.parseEqual() || parser.parseInteger(k))
      return {};
  } else if (kind != "global") {
    parser.emitError(parser.getCurrentLocation(),
                     "expected window kind 'global' or 'jagged', got '")
        << kind << "'";
    return {};
  }
  if (parser.parseGreater())
    return {};
  return getChecked([&] { return parser.emitError(parser.getNameLoc()); },
                    parser.getContext(),
                    kind == "jagged" ? WindowKind::Jagged : WindowKind::Global, block, k);
}

void WindowAttr::print(AsmPrinter &printer) const {
  printer << "<" << stringifyWindowKind(getKind());
  if (isJagged())
    printer << ", block = " << getBlock() << ", k = " << getK();
  printer << ">";
}

namespace mlir::mixer {
// The op-level spelling drops the attribute wrapper:
//   global | jagged<block = 16, k = 2>
ParseResult parseWindow(OpAsmParser &parser, WindowAttr &window) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef kind;
  if (parser.parseKeyword(&kind))
    return failure();
  MLIRContext *ctx = parser.getContext();
  if (kind == "global") {
    window = WindowAttr::get(ctx);
    return success();
  }
  if (kind != "jagged")
    return parser.emitError(loc, "expected window 'global' or 'jagged<block = N, k = K>', got '")
           << kind << "'";
  int64_t block = 0, k = 0;
  if (parseJaggedParams(parser, block, k))
    return failure();
  window = WindowAttr::getChecked([&] { return parser.emitError(loc); }, ctx,
                                  WindowKind::Jagged, block, k);
  return success(static_cast<bool>(window));
}

void printWindow(OpAsmPrinter &printer, Operation *, WindowAttr window) {
  printer << stringifyWindowKind(window.getKind());
  if (window.isJagged())
    printer << "<block = " << window.getBlock() << ", k = " << window.getK() << ">";
}
} // namespace mlir::mixer

//===----------------------------------------------------------------------===//
// #mixer.target, #mixer.sequence_split, #mixer.lowering_config
//===----------------------------------------------------------------------===//

LogicalResult TargetAttr::verify(function_ref<InFlightDiagnostic()> emitError, StringRef chip,
                                 int64_t smCount, int64_t sharedMemory) {
  // "cpu", or sm_<version> with an optional a/f suffix (sm_90a, sm_100f).
  StringRef version = chip;
  bool wellFormed = chip == "cpu";
  if (!wellFormed && version.consume_front("sm_")) {
    if (version.ends_with("a") || version.ends_with("f"))
      version = version.drop_back();
    wellFormed = !version.empty() && version.size() <= 4 &&
                 llvm::all_of(version, [](char c) { return c >= '0' && c <= '9'; });
  }
  if (!wellFormed)
    return emitError() << "target chip must be \"cpu\" or a CUDA architecture like "
                          "\"sm_90a\", got \""
                       << chip << "\"";
  if (smCount < 0 || sharedMemory < 0)
    return emitError() << "target sm_count and shared_memory must be >= 0 (0: unknown)";
  return success();
}

LogicalResult SequenceSplitAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                        int64_t piece, int64_t maxPrograms, int64_t minLength,
                                        int64_t targetPrograms, int64_t minPiece,
                                        int64_t granule) {
  if (granule <= 0)
    return emitError() << "sequence_split granule must be positive, got " << granule;
  if (piece < 0 || maxPrograms < 0 || minLength < 0 || targetPrograms < 0 || minPiece < 0)
    return emitError() << "sequence_split parameters must be >= 0";
  if (piece % granule)
    return emitError() << "sequence_split piece " << piece << " is not a multiple of the granule "
                       << granule;
  if (piece == 0 && (maxPrograms == 0 || targetPrograms == 0))
    return emitError() << "sequence_split without a fixed piece needs max_programs and "
                          "target_programs";
  return success();
}

LogicalResult LoweringConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                         KernelKind, int64_t tile, int64_t unroll,
                                         DenseI64ArrayAttr block, bool, bool,
                                         int64_t vectorAlignment, int64_t vectorOperands,
                                         int64_t indexBitwidth, bool, int64_t chunk,
                                         int64_t blockV, int64_t keySplit, SequenceSplitAttr,
                                         int64_t chunkParallel) {
  if (chunkParallel < -1)
    return emitError() << "lowering_config: chunk_parallel must be -1 (never), 0 (unset) or a "
                          "number of thread blocks";
  if (tile < 0 || unroll < 1 || chunk < 0 || blockV < 0 || keySplit < 0)
    return emitError() << "lowering_config: tile, chunk, block_v and key_split must be >= 0 "
                          "and unroll >= 1";
  // Bounds of what the mechanisms build in bounded time and what a GPU
  // launches (a fuzzed unroll of 2^32 ran a lowering out of memory).
  if (unroll > kMaxUnroll)
    return emitError() << "lowering_config: unroll must be at most " << kMaxUnroll << ", got "
                       << unroll;
  if (tile > kMaxTile || chunk > kMaxTile || blockV > kMaxTile || keySplit > kMaxKeyDim)
    return emitError() << "lowering_config: tile, chunk and block_v must be at most " << kMaxTile
                       << " and key_split at most " << kMaxKeyDim;
  if (block && (block.size() != 3 || llvm::any_of(block.asArrayRef(),
                                                  [](int64_t x) { return x <= 0; })))
    return emitError() << "lowering_config: block must be three positive thread counts";
  if (block && (block[0] > 1024 || block[1] > 1024 || block[2] > 64 ||
                block[0] * block[1] * block[2] > 1024))
    return emitError() << "lowering_config: block must launch on a GPU: x, y <= 1024, z <= 64, "
                          "at most 1024 threads in all";
  if (vectorAlignment < 0 || vectorAlignment > 256 ||
      (vectorAlignment && !llvm::isPowerOf2_64(vectorAlignment)))
    return emitError() << "lowering_config: vector_alignment must be 0 or a power of 2 up to "
                          "256, got "
                       << vectorAlignment;
  if (vectorOperands < 0)
    return emitError() << "lowering_config: vector_operands is a bit mask (>= 0)";
  if (indexBitwidth != 32 && indexBitwidth != 64)
    return emitError() << "lowering_config: index_bitwidth must be 32 or 64, got "
                       << indexBitwidth;
  return success();
}

LoweringConfigAttr LoweringConfigAttr::of(Operation *op) {
  return op->getAttrOfType<LoweringConfigAttr>(getAttrName());
}

LoweringConfigAttr LoweringConfigAttr::overriddenBy(LoweringConfigAttr o) const {
  auto pick = [](auto mine, auto theirs, auto unset) { return theirs != unset ? theirs : mine; };
  return LoweringConfigAttr::get(
      getContext(), pick(getKernel(), o.getKernel(), KernelKind::Auto),
      pick(getTile(), o.getTile(), int64_t(0)), pick(getUnroll(), o.getUnroll(), int64_t(1)),
      o.getBlock() ? o.getBlock() : getBlock(), getTimeFastest() || o.getTimeFastest(),
      getExchangeOutput() || o.getExchangeOutput(),
      pick(getVectorAlignment(), o.getVectorAlignment(), int64_t(0)),
      pick(getVectorOperands(), o.getVectorOperands(), int64_t(0)),
      pick(getIndexBitwidth(), o.getIndexBitwidth(), int64_t(64)),
      getSinkConstants() || o.getSinkConstants(), pick(getChunk(), o.getChunk(), int64_t(0)),
      pick(getBlockV(), o.getBlockV(), int64_t(0)),
      pick(getKeySplit(), o.getKeySplit(), int64_t(0)),
      o.getSequenceSplit() ? o.getSequenceSplit() : getSequenceSplit(),
      pick(getChunkParallel(), o.getChunkParallel(), int64_t(0)));
}
