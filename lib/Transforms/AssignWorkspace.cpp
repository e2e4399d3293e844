//===- AssignWorkspace.cpp - scratch into the caller's workspace ----------===//
//
// Lowerings allocate their scratch (Scratch.h); the caller owns the memory.
// Each marked memref.alloc of a function with a `mixer.workspace` argument
// becomes a view of that byte buffer at a 256-byte aligned offset, and
// @<f>_workspace_bytes, generated next to @f with its signature, returns how
// many bytes the buffer needs for the sizes it is called with: the same size
// computations, cloned from @f. So the frontend never restates a layout: it
// asks the compiled module, allocates, and calls.
//
//===----------------------------------------------------------------------===//

#include "mixir/Strategy/Facts.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERASSIGNWORKSPACE
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

constexpr int64_t kAlignment = 256; // cp.async and vector moves need 16; 256 is torch's

/// Bytes of one element of a scratch buffer.
int64_t elementBytes(Type t) { return (t.getIntOrFloatBitWidth() + 7) / 8; }

/// The bytes of `alloc`'s buffer, computed with `b` from its size operands
/// `sizes` (the alloc's own, or their clones).
Value bufferBytes(OpBuilder &b, Location loc, MemRefType type, ValueRange sizes) {
  Value bytes = arith::ConstantIndexOp::create(b, loc, elementBytes(type.getElementType()));
  unsigned next = 0;
  for (int64_t d : type.getShape()) {
    Value extent = ShapedType::isDynamic(d) ? sizes[next++]
                                            : arith::ConstantIndexOp::create(b, loc, d).getResult();
    bytes = arith::MulIOp::create(b, loc, bytes, extent);
  }
  return bytes;
}

/// offset + bytes, rounded up to the alignment.
Value nextOffset(OpBuilder &b, Location loc, Value offset, Value bytes) {
  Value align = arith::ConstantIndexOp::create(b, loc, kAlignment);
  Value end = arith::AddIOp::create(b, loc, offset, bytes);
  return arith::MulIOp::create(b, loc, arith::CeilDivUIOp::create(b, loc, end, align), align);
}

/// Clones into `b` what computes `v` from the function's arguments (mapped in
/// `map`); fails on anything but pure, region-free ops.
LogicalResult cloneSlice(OpBuilder &b, Value v, IRMapping &map) {
  if (map.contains(v))
    return success();
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumRegions() || !isMemoryEffectFree(def))
    return failure();
  for (Value operand : def->getOperands())
    if (failed(cloneSlice(b, operand, map)))
      return failure();
  b.clone(*def, map);
  return success();
}

struct MixerAssignWorkspace
    : public mixer::impl::MixerAssignWorkspaceBase<MixerAssignWorkspace> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<func::FuncOp> functions(getOperation().getOps<func::FuncOp>());
    for (func::FuncOp fn : functions)
      if (!fn.isExternal() && failed(assign(fn)))
        return signalPassFailure();
  }

  LogicalResult assign(func::FuncOp fn) {
    SmallVector<memref::AllocOp> allocs;
    fn.walk([&](memref::AllocOp alloc) {
      if (alloc->hasAttr(kWorkspaceAttr))
        allocs.push_back(alloc);
    });
    if (allocs.empty())
      return success();
    Block &entry = fn.getBody().front();
    for (memref::AllocOp alloc : allocs)
      if (alloc->getBlock() != &entry)
        return alloc.emitOpError("mixer-assign-workspace: scratch must be allocated at the top "
                                 "level of its function");
    std::optional<unsigned> wsIndex;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      if (fn.getArgAttr(i, kWorkspaceAttr))
        wsIndex = i;
    if (!wsIndex) {
      if (gpu)
        return fn.emitError() << "mixer-assign-workspace: @" << fn.getName()
                              << " needs scratch, which on a GPU must be the caller's: give it "
                                 "an argument memref<?xi8> {mixer.workspace}";
      // Host memory, freed before every return.
      for (memref::AllocOp alloc : allocs)
        alloc->removeAttr(kWorkspaceAttr);
      fn.walk([&](func::ReturnOp ret) {
        OpBuilder b(ret);
        for (memref::AllocOp alloc : allocs)
          memref::DeallocOp::create(b, ret.getLoc(), alloc);
      });
      return success();
    }
    Value ws = fn.getArgument(*wsIndex);
    auto wsType = dyn_cast<MemRefType>(ws.getType());
    if (!wsType || wsType.getRank() != 1 || !wsType.getElementType().isInteger(8) ||
        !wsType.getLayout().isIdentity())
      return fn.emitError("mixer-assign-workspace: the mixer.workspace argument must be a "
                          "memref<?xi8>");

    // Views of the byte workspace hold integers and floats only (a fuzzed
    // memref of memrefs crashed the size computation).
    for (memref::AllocOp alloc : allocs)
      if (!alloc.getType().getElementType().isIntOrFloat())
        return alloc.emitOpError() << "mixer-assign-workspace: scratch elements must be "
                                      "integers or floats, got "
                                   << alloc.getType().getElementType();

    // The size function first, while the allocs still hold their sizes.
    if (failed(buildSizeFunction(fn, allocs)))
      return failure();
    Value offset;
    for (memref::AllocOp alloc : allocs) {
      OpBuilder b(alloc);
      Location loc = alloc.getLoc();
      if (!offset)
        offset = arith::ConstantIndexOp::create(b, loc, 0);
      MemRefType type = alloc.getType();
      if (!type.getLayout().isIdentity())
        return alloc.emitOpError("mixer-assign-workspace: scratch must have the identity layout");
      auto view = memref::ViewOp::create(b, loc, type, ws, offset, alloc.getDynamicSizes());
      Value bytes = bufferBytes(b, loc, type, alloc.getDynamicSizes());
      offset = nextOffset(b, loc, offset, bytes);
      alloc.replaceAllUsesWith(view.getResult());
      alloc.erase();
    }
    return success();
  }

  /// func.func @<f>_workspace_bytes(<f's arguments>) -> i64.
  LogicalResult buildSizeFunction(func::FuncOp fn, ArrayRef<memref::AllocOp> allocs) {
    OpBuilder mb(fn);
    mb.setInsertionPointAfter(fn);
    Location loc = fn.getLoc();
    auto type = FunctionType::get(fn.getContext(), fn.getArgumentTypes(), {mb.getI64Type()});
    auto sizeFn = func::FuncOp::create(mb, loc, (fn.getName() + "_workspace_bytes").str(), type);
    if (fn->hasAttr("llvm.emit_c_interface"))
      sizeFn->setAttr("llvm.emit_c_interface", mb.getUnitAttr());
    Block *body = sizeFn.addEntryBlock();
    OpBuilder b = OpBuilder::atBlockBegin(body);
    IRMapping map;
    for (auto [from, to] : llvm::zip(fn.getArguments(), body->getArguments()))
      map.map(from, to);
    Value offset = arith::ConstantIndexOp::create(b, loc, 0);
    for (memref::AllocOp alloc : allocs) {
      SmallVector<Value> sizes;
      for (Value size : alloc.getDynamicSizes()) {
        if (failed(cloneSlice(b, size, map)))
          return alloc.emitOpError("mixer-assign-workspace: the scratch size is not computed "
                                   "from the function's arguments alone");
        sizes.push_back(map.lookup(size));
      }
      offset = nextOffset(b, loc, offset, bufferBytes(b, loc, alloc.getType(), sizes));
    }
    Value total = arith::IndexCastOp::create(b, loc, b.getI64Type(), offset);
    func::ReturnOp::create(b, loc, total);
    return success();
  }
};
} // namespace
