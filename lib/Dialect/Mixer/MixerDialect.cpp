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
