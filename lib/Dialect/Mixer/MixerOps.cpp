//===- MixerOps.cpp - verifiers and interfaces of mixer ops ---------------===//

#include "mixir/Dialect/Mixer/Mixer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::mixer;

namespace mlir::mixer {
ParseResult parseWindow(OpAsmParser &parser, WindowAttr &window);
void printWindow(OpAsmPrinter &printer, Operation *op, WindowAttr window);
} // namespace mlir::mixer

#define GET_OP_CLASSES
#include "Mixer/MixerOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared checks
//===----------------------------------------------------------------------===//

/// Width of a float, or of the components of a complex number.
static unsigned componentWidth(Type t) {
  if (auto c = dyn_cast<ComplexType>(t))
    return c.getElementType().getIntOrFloatBitWidth();
  return t.getIntOrFloatBitWidth();
}

/// The recurrence is carried in f32, f64 or a complex of them; gates and inputs
/// are extended into it, never truncated.
static LogicalResult verifyElementTypes(Operation *op, Type gate, Type input, Type state) {
  auto isStateType = [](Type t) {
    if (auto c = dyn_cast<ComplexType>(t))
      t = c.getElementType();
    return t.isF32() || t.isF64();
  };
  if (!isStateType(state))
    return op->emitOpError("state element type must be f32, f64, complex<f32> or "
                           "complex<f64>, got ")
           << state;
  for (auto [name, t] : {std::pair<StringRef, Type>{"gates", gate}, {"inputs", input}}) {
    if (!isa<FloatType, ComplexType>(t))
      return op->emitOpError() << name << " element type must be a float or complex, got " << t;
    if (isa<ComplexType>(t) && !isa<ComplexType>(state))
      return op->emitOpError() << name << " are complex (" << t
                               << ") but the state is real (" << state << ")";
    if (componentWidth(t) > componentWidth(state))
      return op->emitOpError() << name << " element type " << t
                               << " is wider than the state element type " << state;
  }
  return success();
}

static LogicalResult verifyWindowUse(Operation *op, WindowAttr window, bool hasInit) {
  if (window.isJagged() && window.getK() == 1 && hasInit)
    return op->emitOpError("a jagged window with k = 1 has no carry; an initial_state "
                           "would be ignored");
  return success();
}

/// Prints a shape as [2, ?, 8].
static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

static bool compatibleShapes(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  if (a.size() != b.size())
    return false;
  for (auto [x, y] : llvm::zip(a, b))
    if (!ShapedType::isDynamic(x) && !ShapedType::isDynamic(y) && x != y)
      return false;
  return true;
}

/// Static sizes the lowerings can index: every operand's static elements, and
/// its furthest static offset, fit in 2^62 bytes. (The lowerings fold static
/// sizes into index arithmetic; a larger product would overflow it, and no
/// target has that much memory.)
static LogicalResult verifyStaticSizes(Operation *op) {
  constexpr uint64_t kLimit = uint64_t(1) << 62;
  auto magnitude = [](int64_t x) { return x < 0 ? uint64_t(0) - uint64_t(x) : uint64_t(x); };
  for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
    auto shaped = dyn_cast<ShapedType>(operand.getType());
    if (!shaped || !shaped.hasRank())
      continue;
    Type element = shaped.getElementType();
    uint64_t bytes = 1;
    if (auto c = dyn_cast<ComplexType>(element))
      bytes = 2 * std::max<uint64_t>(1, c.getElementType().getIntOrFloatBitWidth() / 8);
    else if (element.isIntOrFloat())
      bytes = std::max<uint64_t>(1, element.getIntOrFloatBitWidth() / 8);
    uint64_t total = bytes;
    bool overflow = false;
    for (int64_t d : shaped.getShape())
      if (!ShapedType::isDynamic(d))
        overflow |= __builtin_mul_overflow(total, uint64_t(d), &total) || total > kLimit;
    if (auto memref = dyn_cast<MemRefType>(shaped); memref && !overflow) {
      SmallVector<int64_t> strides;
      int64_t offset;
      if (succeeded(memref.getStridesAndOffset(strides, offset))) {
        uint64_t reach = ShapedType::isDynamic(offset) ? 0 : magnitude(offset);
        for (auto [d, s] : llvm::zip(memref.getShape(), strides)) {
          if (ShapedType::isDynamic(d) || ShapedType::isDynamic(s) || d == 0)
            continue;
          uint64_t term;
          overflow |= __builtin_mul_overflow(uint64_t(d - 1), magnitude(s), &term) ||
                      __builtin_add_overflow(reach, term, &reach);
        }
        overflow |= __builtin_mul_overflow(reach, bytes, &reach) || reach > kLimit;
      }
    }
    if (overflow)
      return op->emitOpError() << "operand #" << i << " of type " << operand.getType()
                               << " spans more than 2^62 bytes: its static sizes or strides "
                                  "cannot be indexed";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// mixer.scan
//===----------------------------------------------------------------------===//

Type ScanOp::getStateElementType() {
  Value dest = getOutput() ? getOutput() : getFinalState();
  return cast<ShapedType>(dest.getType()).getElementType();
}

MutableOperandRange ScanOp::getDpsInitsMutable() {
  // `output` and `final_state` are adjacent operand segments.
  auto [outStart, outLen] = getODSOperandIndexAndLength(3);
  auto [finalStart, finalLen] = getODSOperandIndexAndLength(4);
  (void)finalStart;
  return MutableOperandRange(getOperation(), outStart, outLen + finalLen);
}

LogicalResult ScanOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  if (!getOutput() && !getFinalState())
    return emitOpError("needs an output or a final_state destination (or both)");

  auto gates = cast<ShapedType>(getGates().getType());
  bool tensorForm = isa<RankedTensorType>(gates);
  SmallVector<std::pair<StringRef, Value>> operands = {
      {"gates", getGates()}, {"inputs", getInputs()}, {"initial_state", getInitialState()},
      {"output", getOutput()}, {"final_state", getFinalState()}};
  for (auto [name, v] : operands)
    if (v && isa<RankedTensorType>(v.getType()) != tensorForm)
      return emitOpError() << "operands must be all tensors or all memrefs; " << name
                           << " is " << v.getType() << " but gates are " << gates;

  // [batch, time, channels] sequences, [batch, channels] states.
  auto shapeOf = [](Value v) { return cast<ShapedType>(v.getType()).getShape(); };
  if (gates.getRank() != 3)
    return emitOpError() << "gates must have rank 3 ([batch, time, channels]), got rank "
                         << gates.getRank();
  ArrayRef<int64_t> seq = gates.getShape();
  SmallVector<int64_t> state = {seq[0], seq[2]};
  for (auto [name, v] : ArrayRef(operands).drop_front()) {
    if (!v)
      continue;
    bool isState = name == "initial_state" || name == "final_state";
    ArrayRef<int64_t> want = isState ? ArrayRef<int64_t>(state) : seq;
    if (!compatibleShapes(shapeOf(v), want))
      return emitOpError() << name << " must have shape " << shapeString(want)
                           << (isState ? " ([batch, channels])" : " (like gates)")
                           << ", got " << shapeString(shapeOf(v));
  }

  Type stateTy = getStateElementType();
  if (getOutput() && getFinalState() &&
      cast<ShapedType>(getFinalState().getType()).getElementType() != stateTy)
    return emitOpError() << "output and final_state element types differ: " << stateTy
                         << " vs "
                         << cast<ShapedType>(getFinalState().getType()).getElementType();
  if (getInitialState() &&
      cast<ShapedType>(getInitialState().getType()).getElementType() != stateTy)
    return emitOpError() << "initial_state element type "
                         << cast<ShapedType>(getInitialState().getType()).getElementType()
                         << " differs from the state element type " << stateTy;
  if (failed(verifyElementTypes(*this, gates.getElementType(),
                                cast<ShapedType>(getInputs().getType()).getElementType(),
                                stateTy)))
    return failure();
  return verifyWindowUse(*this, getWindow(), static_cast<bool>(getInitialState()));
}

//===----------------------------------------------------------------------===//
// mixer.channel_scan
//===----------------------------------------------------------------------===//

LogicalResult ChannelScanOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  auto gates = cast<MemRefType>(getGates().getType());
  auto inputs = cast<MemRefType>(getInputs().getType());
  if (!compatibleShapes(gates.getShape(), inputs.getShape()))
    return emitOpError() << "gates and inputs must have the same length, got "
                         << shapeString(gates.getShape()) << " and "
                         << shapeString(inputs.getShape());
  Type stateTy = getFinalState().getType();
  if (Value out = getOutput()) {
    auto outTy = cast<MemRefType>(out.getType());
    if (!compatibleShapes(outTy.getShape(), gates.getShape()))
      return emitOpError() << "output must have the length of gates, got "
                           << shapeString(outTy.getShape()) << " and "
                           << shapeString(gates.getShape());
    if (outTy.getElementType() != stateTy)
      return emitOpError() << "output element type " << outTy.getElementType()
                           << " differs from the state type " << stateTy;
  }
  if (Value init = getInitialState(); init && init.getType() != stateTy)
    return emitOpError() << "initial_state type " << init.getType()
                         << " differs from the state type " << stateTy;
  if (failed(verifyElementTypes(*this, gates.getElementType(), inputs.getElementType(),
                                stateTy)))
    return failure();
  return verifyWindowUse(*this, getWindow(), static_cast<bool>(getInitialState()));
}

//===----------------------------------------------------------------------===//
// mixer.scan_adjoint
//===----------------------------------------------------------------------===//

/// The adjoint ops take real element types only (for now).
static LogicalResult verifyRealState(Operation *op, Type state) {
  if (!state.isF32() && !state.isF64())
    return op->emitOpError("the adjoint supports f32 and f64 states only (complex "
                           "scans differentiate through the tensor-level adjoint), got ")
           << state;
  return success();
}

LogicalResult ScanAdjointOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  if (getReverse() && getWindow().isJagged())
    return emitOpError("reverse jagged scans are not supported by the fused adjoint yet");
  Type state = getStateElementType();
  if (failed(verifyRealState(*this, state)))
    return failure();
  auto shapeOf = [](Value v) { return cast<ShapedType>(v.getType()).getShape(); };
  auto gates = cast<MemRefType>(getGates().getType());
  if (gates.getRank() != 3)
    return emitOpError() << "gates must have rank 3 ([batch, time, channels]), got rank "
                         << gates.getRank();
  ArrayRef<int64_t> seq = gates.getShape();
  SmallVector<int64_t> st = {seq[0], seq[2]};
  SmallVector<std::pair<StringRef, Value>> sequences = {
      {"inputs", getInputs()}, {"states", getStates()}, {"output_grad", getOutputGrad()},
      {"gates_grad", getGatesGrad()}, {"inputs_grad", getInputsGrad()}};
  for (auto [name, v] : sequences)
    if (!compatibleShapes(shapeOf(v), seq))
      return emitOpError() << name << " must have shape " << shapeString(seq)
                           << " (like gates), got " << shapeString(shapeOf(v));
  for (auto [name, v] : {std::pair<StringRef, Value>{"initial_state", getInitialState()},
                         {"final_grad", getFinalGrad()},
                         {"initial_state_grad", getInitialStateGrad()}})
    if (v && !compatibleShapes(shapeOf(v), st))
      return emitOpError() << name << " must have shape " << shapeString(st)
                           << " ([batch, channels]), got " << shapeString(shapeOf(v));
  for (Value v : {getOutputGrad(), getFinalGrad(), getInitialState()})
    if (v && cast<ShapedType>(v.getType()).getElementType() != state)
      return emitOpError() << "output_grad, final_grad and initial_state must have the state "
                              "element type "
                           << state;
  if (getInitialStateGrad() && !getInitialState())
    return emitOpError("init_grad needs the initial_state it is the gradient of");
  for (Value v : {getGatesGrad(), getInputsGrad(), getInitialStateGrad()})
    if (v && !isa<FloatType>(cast<ShapedType>(v.getType()).getElementType()))
      return emitOpError("gradients must have float element types");
  if (failed(verifyElementTypes(*this, gates.getElementType(),
                                cast<ShapedType>(getInputs().getType()).getElementType(), state)))
    return failure();
  return verifyWindowUse(*this, getWindow(), static_cast<bool>(getInitialState()));
}

LogicalResult ChannelScanAdjointOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  Type state = getResult().getType();
  if (failed(verifyRealState(*this, state)))
    return failure();
  if (getWindow().isJagged() && !getInputs())
    return emitOpError("a jagged window recomputes the local states: it needs inputs");
  if (getWindow().isGlobal() && !getStates())
    return emitOpError("a global window needs the forward states");
  if (getReverse() && getWindow().isJagged())
    return emitOpError("reverse jagged scans are not supported by the fused adjoint yet");
  if (static_cast<bool>(getGatesGrad()) != static_cast<bool>(getInputsGrad()))
    return emitOpError("gates_grad and inputs_grad come together (or neither, for a halo)");
  for (Value v : {getCarry(), getGradCarry()})
    if (v && v.getType() != state)
      return emitOpError() << "carry and grad_carry must have the result type " << state;
  auto len = cast<MemRefType>(getGates().getType()).getShape();
  for (Value v : {getInputs(), getStates(), getOutputGrad(), getGatesGrad(), getInputsGrad()})
    if (v && !compatibleShapes(cast<MemRefType>(v.getType()).getShape(), len))
      return emitOpError("every series must have the length of gates");
  // Every series is real, like the state: read into it, gradients written
  // from it (the lowering converts between floats only).
  auto elementOf = [](Value v) { return cast<MemRefType>(v.getType()).getElementType(); };
  Type inputTy = getInputs() ? elementOf(getInputs()) : elementOf(getGates());
  if (failed(verifyElementTypes(*this, elementOf(getGates()), inputTy, state)))
    return failure();
  for (auto [name, v] : {std::pair<StringRef, Value>{"states", getStates()},
                         {"output_grad", getOutputGrad()},
                         {"gates_grad", getGatesGrad()},
                         {"inputs_grad", getInputsGrad()}})
    if (v && !isa<FloatType>(elementOf(v)))
      return emitOpError() << name << " element type must be a float, got " << elementOf(v);
  return success();
}

//===----------------------------------------------------------------------===//
// mixer.linear_attention
//===----------------------------------------------------------------------===//

Type LinearAttentionOp::getStateElementType() {
  if (Value final = getFinalState())
    return cast<MemRefType>(final.getType()).getElementType();
  if (Value init = getInitialState())
    return cast<MemRefType>(init.getType()).getElementType();
  Type in = cast<MemRefType>(getValue().getType()).getElementType();
  return in.isF64() ? Type(Float64Type::get(getContext())) : Float32Type::get(getContext());
}

/// Inputs and gradients are extended into the state type, never the reverse.
static LogicalResult verifyNotWiderThanState(Operation *op, StringRef name, Value value,
                                             Type state) {
  Type t = cast<MemRefType>(value.getType()).getElementType();
  if (!isa<FloatType>(t))
    return op->emitOpError() << name << " element type must be a float, got " << t;
  if (t.getIntOrFloatBitWidth() > state.getIntOrFloatBitWidth())
    return op->emitOpError() << name << " element type " << t
                             << " is wider than the state element type " << state;
  return success();
}

namespace {
/// An operand that must have a given shape, for the error message's sake.
struct ShapeWant {
  StringRef name;
  Value value;
  SmallVector<int64_t> shape;
  StringRef meaning;
};

/// The sizes of a linear attention, from its operands' types (dynamic where
/// the types do not say).
struct LinearAttentionShapes {
  int64_t K, V, N;
  SmallVector<int64_t> seq, withK, withV, state;
};
} // namespace

static MemRefType memrefTypeOf(Value v) { return cast<MemRefType>(v.getType()); }

/// What mixer.linear_attention and its adjoint share: ranks, static head
/// dimensions, grouped heads, the shapes of the forward inputs (pushed to
/// `wants` for checkInputShapes), the mLSTM operands' exclusions and the
/// element types of the inputs against `state`.
template <typename OpTy>
static FailureOr<LinearAttentionShapes>
verifyLinearAttentionInputs(OpTy op, Type state, SmallVectorImpl<ShapeWant> &wants) {
  MemRefType q = memrefTypeOf(op.getQuery());
  if (q.getRank() != 4)
    return op.emitOpError() << "query must have rank 4 ([batch, time, heads, key_dim]), got rank "
                            << q.getRank();
  ArrayRef<int64_t> qs = q.getShape();
  MemRefType v = memrefTypeOf(op.getValue());
  if (v.getRank() != 4)
    return op.emitOpError()
           << "value must have rank 4 ([batch, time, heads, value_dim]), got rank "
           << v.getRank();
  int64_t K = qs[3], V = v.getShape()[3];
  // Head dimensions change the generated code (register tiles, unrolled
  // loops); they are part of the specialisation.
  if (ShapedType::isDynamic(K) || ShapedType::isDynamic(V))
    return op.emitOpError("key and value head dimensions must be static");
  // Every lowering carries a state column of K values per thread, unrolled
  // over K (the recurrent and checkpointed kernels; the tensor-core ones split
  // keys into passes of 128): the key dimension bounds the code's size.
  if (K > kMaxKeyDim)
    return op.emitOpError() << "key_dim " << K << " exceeds " << kMaxKeyDim
                            << ", the widest the lowerings unroll";
  // Value heads H may group query/key heads Hq (GVA): H must be a multiple.
  int64_t Hq = qs[2], H = v.getShape()[2];
  if (!ShapedType::isDynamic(Hq) && !ShapedType::isDynamic(H) && (Hq == 0 || H % Hq != 0))
    return op.emitOpError() << "value heads (" << H << ") must be a multiple of query heads ("
                            << Hq << ")";
  LinearAttentionShapes s{K, V, qs[0], {qs[0], qs[1], H}, {qs[0], qs[1], H, K},
                          {qs[0], qs[1], H, V}, {}};
  wants.push_back({"key", op.getKey(), SmallVector<int64_t>(qs), "like query"});
  wants.push_back({"value", op.getValue(), s.withV, "[batch, time, heads, value_dim]"});
  wants.push_back({"beta", op.getBeta(), s.seq, "[batch, time, heads]"});
  wants.push_back({"input_gate", op.getInputGate(), s.seq, "[batch, time, heads]"});
  if (Value g = op.getLogDecay()) {
    int64_t rank = memrefTypeOf(g).getRank();
    if (op.hasValueDecay()) {
      if (rank != 4)
        return op.emitOpError() << "value_decay needs a log_decay of rank 4 ([batch, time, "
                                   "heads, value_dim]), got rank "
                                << rank;
      wants.push_back({"log_decay", g, s.withV, "[batch, time, heads, value_dim] (value_decay)"});
    } else if (rank == 3 || rank == 4) {
      wants.push_back({"log_decay", g, rank == 4 ? s.withK : s.seq,
                       rank == 4 ? "[batch, time, heads, key_dim]" : "[batch, time, heads]"});
    } else {
      return op.emitOpError() << "log_decay must have rank 3 (a decay per head) or 4 (per key "
                                 "dimension), got rank "
                              << rank;
    }
  }
  // Sequences: batch rows, or the pieces of the single row cut by offsets.
  if (Value off = op.getOffsets()) {
    if (!ShapedType::isDynamic(qs[0]) && qs[0] != 1)
      return op.emitOpError() << "with offsets the batch must be 1 (sequences are concatenated "
                                 "along time), got "
                              << qs[0];
    int64_t n1 = memrefTypeOf(off).getShape()[0];
    s.N = ShapedType::isDynamic(n1) ? ShapedType::kDynamic : n1 - 1;
    if (!ShapedType::isDynamic(n1) && n1 < 2)
      return op.emitOpError() << "offsets must hold at least 2 entries, got " << n1;
  }
  s.state = {s.N, H, K, V};
  if constexpr (std::is_same_v<OpTy, LinearAttentionOp>) {
    // With pieces, a state per (sequence, piece).
    if (op.getPieces())
      s.state = {s.N, ShapedType::kDynamic, H, K, V};
  }
  wants.push_back({"initial_state", op.getInitialState(), s.state,
                   s.state.size() == 5 ? "[sequences, pieces, heads, key_dim, value_dim]"
                                       : "[sequences, heads, key_dim, value_dim]"});
  wants.push_back({"init_normalizer", op.getInitialNormalizer(), {s.N, H, K},
                   "[sequences, heads, key_dim]"});
  wants.push_back({"init_stabilizer", op.getInitialStabilizer(), {s.N, H}, "[sequences, heads]"});

  // The mLSTM cell's extra state exists only with its input gate, and the
  // cell is defined for the additive update with a per-head forget gate.
  if (!op.isMlstm()) {
    for (auto [name, value] :
         {std::pair<StringRef, Value>{"init_normalizer", op.getInitialNormalizer()},
          {"init_stabilizer", op.getInitialStabilizer()}})
      if (value)
        return op.emitOpError() << name << " is an mLSTM state: it needs input_gate";
    if (op.getEpsilon())
      return op.emitOpError("epsilon is the mLSTM denominator's: it needs input_gate");
  } else {
    if (op.getBeta())
      return op.emitOpError("input_gate (mLSTM) and beta (delta rule) exclude each other");
    if (Value g = op.getLogDecay(); g && memrefTypeOf(g).getRank() != 3)
      return op.emitOpError("with input_gate (mLSTM) log_decay must be a per-head forget gate "
                            "[batch, time, heads]");
  }

  if (!state.isF32() && !state.isF64())
    return op.emitOpError() << "state element type must be f32 or f64, got " << state;
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"initial_state", op.getInitialState()},
        {"init_normalizer", op.getInitialNormalizer()},
        {"init_stabilizer", op.getInitialStabilizer()}})
    if (value && memrefTypeOf(value).getElementType() != state)
      return op.emitOpError() << name << " element type " << memrefTypeOf(value).getElementType()
                              << " differs from the state element type " << state;
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"query", op.getQuery()}, {"key", op.getKey()},
        {"value", op.getValue()}, {"log_decay", op.getLogDecay()}, {"beta", op.getBeta()},
        {"input_gate", op.getInputGate()}})
    if (value && failed(verifyNotWiderThanState(op, name, value, state)))
      return failure();
  return s;
}

/// Every operand of `wants` that is present has its shape.
static LogicalResult checkShapes(Operation *op, ArrayRef<ShapeWant> wants) {
  for (const ShapeWant &w : wants) {
    if (!w.value)
      continue;
    ArrayRef<int64_t> got = memrefTypeOf(w.value).getShape();
    if (!compatibleShapes(got, w.shape))
      return op->emitOpError() << w.name << " must have shape " << shapeString(w.shape) << " ("
                               << w.meaning << "), got " << shapeString(got);
  }
  return success();
}

LogicalResult LinearAttentionOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  Type state = getStateElementType();
  SmallVector<ShapeWant> wants;
  FailureOr<LinearAttentionShapes> shapes = verifyLinearAttentionInputs(*this, state, wants);
  if (failed(shapes))
    return failure();
  if (getValueDecay() && !getLogDecay())
    return emitOpError("value_decay without a log_decay");
  auto [K, V, N, seq, withK, withV, stateShape] = *shapes;
  wants.push_back({"output", getOutput(), withV, "like value"});
  wants.push_back({"corrected_values", getCorrectedValues(), withV, "like value"});
  wants.push_back({"final_state", getFinalState(), stateShape,
                   getPieces() ? "[sequences, pieces, heads, key_dim, value_dim]"
                               : "[sequences, heads, key_dim, value_dim]"});
  wants.push_back({"final_normalizer", getFinalNormalizer(), {N, seq[2], K},
                   "[sequences, heads, key_dim]"});
  wants.push_back({"final_stabilizer", getFinalStabilizer(), {N, seq[2]}, "[sequences, heads]"});
  if (failed(checkShapes(*this, wants)))
    return failure();

  if (!isMlstm())
    for (auto [name, value] :
         {std::pair<StringRef, Value>{"final_normalizer", getFinalNormalizer()},
          {"final_stabilizer", getFinalStabilizer()}})
      if (value)
        return emitOpError() << name << " is an mLSTM state: it needs input_gate";
  if (!getOutput() && !getFinalState() && !getFinalNormalizer() && !getFinalStabilizer())
    return emitOpError("has nothing to write: give outs, final or both");
  if (getPieces()) {
    if (isMlstm())
      return emitOpError("pieces are not defined for the mLSTM cell (input_gate)");
    if (!getInitialState() && !getFinalState())
      return emitOpError("pieces need an init or a final state [sequences, pieces, heads, "
                         "key_dim, value_dim]: its dimension 1 counts the pieces");
    if (getInitialState() && getFinalState()) {
      int64_t a = memrefTypeOf(getInitialState()).getShape()[1];
      int64_t b = memrefTypeOf(getFinalState()).getShape()[1];
      if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
        return emitOpError() << "initial_state and final_state count different pieces: " << a
                             << " and " << b;
    }
  }
  for (auto [name, value] : {std::pair<StringRef, Value>{"final_normalizer", getFinalNormalizer()},
                             {"final_stabilizer", getFinalStabilizer()}})
    if (value && memrefTypeOf(value).getElementType() != state)
      return emitOpError() << name << " element type " << memrefTypeOf(value).getElementType()
                           << " differs from the state element type " << state;
  if (Value o = getOutput(); o && failed(verifyNotWiderThanState(*this, "output", o, state)))
    return failure();
  if (Value u = getCorrectedValues()) {
    if (!getBeta())
      return emitOpError("corrected_values are the delta rule's: they need beta");
    if (getPieces())
      return emitOpError("corrected_values are not defined with pieces (each piece would "
                         "correct against its own state)");
    if (failed(verifyNotWiderThanState(*this, "corrected_values", u, state)))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// mixer.linear_attention_adjoint
//===----------------------------------------------------------------------===//

Type LinearAttentionAdjointOp::getStateElementType() {
  if (Value dT = getFinalGrad())
    return cast<MemRefType>(dT.getType()).getElementType();
  if (Value init = getInitialState())
    return cast<MemRefType>(init.getType()).getElementType();
  Type in = cast<MemRefType>(getValue().getType()).getElementType();
  return in.isF64() ? Type(Float64Type::get(getContext())) : Float32Type::get(getContext());
}

LogicalResult LinearAttentionAdjointOp::verify() {
  if (failed(verifyStaticSizes(*this)))
    return failure();
  Type state = getStateElementType();
  SmallVector<ShapeWant> wants;
  FailureOr<LinearAttentionShapes> shapes = verifyLinearAttentionInputs(*this, state, wants);
  if (failed(shapes))
    return failure();
  auto [K, V, N, seq, withK, withV, stateShape] = *shapes;
  int64_t H = seq[2];
  // Each gradient exists exactly when its forward operand does.
  for (auto [name, primal, grad] :
       {std::tuple<StringRef, Value, Value>{"log_decay_grad", getLogDecay(), getLogDecayGrad()},
        {"beta_grad", getBeta(), getBetaGrad()},
        {"input_gate_grad", getInputGate(), getInputGateGrad()},
        {"init_grad", getInitialState(), getInitialStateGrad()},
        {"init_normalizer_grad", getInitialNormalizer(), getInitialNormalizerGrad()},
        {"init_stabilizer_grad", getInitialStabilizer(), getInitialStabilizerGrad()}})
    if (static_cast<bool>(primal) != static_cast<bool>(grad))
      return emitOpError() << name << " must be given exactly when its forward operand is";
  if (!isMlstm())
    for (auto [name, value] :
         {std::pair<StringRef, Value>{"final_normalizer_grad", getFinalNormalizerGrad()},
          {"final_stabilizer_grad", getFinalStabilizerGrad()}})
      if (value)
        return emitOpError() << name << " is an mLSTM state's: it needs input_gate";
  SmallVector<int64_t> decayShape =
      getLogDecay() ? SmallVector<int64_t>(memrefTypeOf(getLogDecay()).getShape()) : seq;
  wants.push_back({"output_grad", getOutputGrad(), withV, "like value"});
  wants.push_back({"final_grad", getFinalGrad(), stateShape,
                   "[sequences, heads, key_dim, value_dim]"});
  wants.push_back({"final_normalizer_grad", getFinalNormalizerGrad(), {N, H, K},
                   "[sequences, heads, key_dim]"});
  wants.push_back({"final_stabilizer_grad", getFinalStabilizerGrad(), {N, H},
                   "[sequences, heads]"});
  wants.push_back({"query_grad", getQueryGrad(), withK,
                   "[batch, time, value heads, key_dim]: per value head"});
  wants.push_back({"key_grad", getKeyGrad(), withK,
                   "[batch, time, value heads, key_dim]: per value head"});
  wants.push_back({"value_grad", getValueGrad(), withV, "like value"});
  wants.push_back({"log_decay_grad", getLogDecayGrad(), decayShape, "like log_decay"});
  wants.push_back({"beta_grad", getBetaGrad(), seq, "like beta"});
  wants.push_back({"input_gate_grad", getInputGateGrad(), seq, "like input_gate"});
  wants.push_back({"init_grad", getInitialStateGrad(), stateShape, "like initial_state"});
  wants.push_back({"init_normalizer_grad", getInitialNormalizerGrad(), {N, H, K},
                   "like init_normalizer"});
  wants.push_back({"init_stabilizer_grad", getInitialStabilizerGrad(), {N, H},
                   "like init_stabilizer"});
  if (failed(checkShapes(*this, wants)))
    return failure();
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"output_grad", getOutputGrad()},
        {"final_grad", getFinalGrad()}, {"final_normalizer_grad", getFinalNormalizerGrad()},
        {"final_stabilizer_grad", getFinalStabilizerGrad()}, {"query_grad", getQueryGrad()},
        {"key_grad", getKeyGrad()}, {"value_grad", getValueGrad()},
        {"log_decay_grad", getLogDecayGrad()}, {"beta_grad", getBetaGrad()},
        {"input_gate_grad", getInputGateGrad()}, {"init_grad", getInitialStateGrad()},
        {"init_normalizer_grad", getInitialNormalizerGrad()},
        {"init_stabilizer_grad", getInitialStabilizerGrad()}})
    if (value && failed(verifyNotWiderThanState(*this, name, value, state)))
      return failure();
  return success();
}
