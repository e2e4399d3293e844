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

LogicalResult LinearAttentionOp::verify() {
  auto typeOf = [](Value v) { return cast<MemRefType>(v.getType()); };
  MemRefType q = typeOf(getQuery());
  if (q.getRank() != 4)
    return emitOpError() << "query must have rank 4 ([batch, time, heads, key_dim]), got rank "
                         << q.getRank();
  ArrayRef<int64_t> qs = q.getShape();
  MemRefType v = typeOf(getValue());
  if (v.getRank() != 4)
    return emitOpError() << "value must have rank 4 ([batch, time, heads, value_dim]), got rank "
                         << v.getRank();
  int64_t K = qs[3], V = v.getShape()[3];
  // Head dimensions change the generated code (register tiles, unrolled
  // loops); they are part of the specialisation.
  if (ShapedType::isDynamic(K) || ShapedType::isDynamic(V))
    return emitOpError("key and value head dimensions must be static");
  // Value heads H may group query/key heads Hq (GVA): H must be a multiple.
  int64_t Hq = qs[2], H = v.getShape()[2];
  if (!ShapedType::isDynamic(Hq) && !ShapedType::isDynamic(H) && (Hq == 0 || H % Hq != 0))
    return emitOpError() << "value heads (" << H << ") must be a multiple of query heads ("
                         << Hq << ")";
  SmallVector<int64_t> seq = {qs[0], qs[1], H};
  SmallVector<int64_t> withV = {qs[0], qs[1], H, V};
  SmallVector<int64_t> withK = {qs[0], qs[1], H, K};
  struct Want {
    StringRef name;
    Value value;
    SmallVector<int64_t> shape;
    StringRef meaning;
  };
  SmallVector<Want> wants = {{"key", getKey(), SmallVector<int64_t>(qs), "like query"},
                             {"value", getValue(), withV, "[batch, time, heads, value_dim]"},
                             {"output", getOutput(), withV, "like value"},
                             {"beta", getBeta(), seq, "[batch, time, heads]"},
                             {"input_gate", getInputGate(), seq, "[batch, time, heads]"}};
  if (Value g = getLogDecay()) {
    bool vector = typeOf(g).getRank() == 4;
    if (getValueDecay()) {
      if (!vector)
        return emitOpError() << "value_decay needs a log_decay of rank 4 ([batch, time, heads, "
                                "value_dim]), got rank "
                             << typeOf(g).getRank();
      wants.push_back({"log_decay", g, withV, "[batch, time, heads, value_dim] (value_decay)"});
    } else {
      wants.push_back({"log_decay", g, vector ? withK : seq,
                       vector ? "[batch, time, heads, key_dim]" : "[batch, time, heads]"});
    }
    if (typeOf(g).getRank() != 3 && !vector)
      return emitOpError() << "log_decay must have rank 3 (a decay per head) or 4 (per key "
                              "dimension), got rank "
                           << typeOf(g).getRank();
  } else if (getValueDecay()) {
    return emitOpError("value_decay without a log_decay");
  }
  // Sequences: batch rows, or the pieces of the single row cut by offsets.
  int64_t N = qs[0];
  if (Value off = getOffsets()) {
    if (!ShapedType::isDynamic(qs[0]) && qs[0] != 1)
      return emitOpError() << "with offsets the batch must be 1 (sequences are concatenated "
                              "along time), got "
                           << qs[0];
    int64_t n1 = typeOf(off).getShape()[0];
    N = ShapedType::isDynamic(n1) ? ShapedType::kDynamic : n1 - 1;
    if (!ShapedType::isDynamic(n1) && n1 < 2)
      return emitOpError() << "offsets must hold at least 2 entries, got " << n1;
  }
  SmallVector<int64_t> stateShape = {N, H, K, V};
  wants.push_back({"initial_state", getInitialState(), stateShape,
                   "[sequences, heads, key_dim, value_dim]"});
  wants.push_back({"final_state", getFinalState(), stateShape,
                   "[sequences, heads, key_dim, value_dim]"});
  for (auto [name, value] : {std::pair<StringRef, Value>{"init_normalizer", getInitialNormalizer()},
                             {"final_normalizer", getFinalNormalizer()}})
    wants.push_back({name, value, {N, H, K}, "[sequences, heads, key_dim]"});
  for (auto [name, value] : {std::pair<StringRef, Value>{"init_stabilizer", getInitialStabilizer()},
                             {"final_stabilizer", getFinalStabilizer()}})
    wants.push_back({name, value, {N, H}, "[sequences, heads]"});
  if (getBeta())
    wants.push_back({"workspace", getWorkspace(), {qs[0], qs[1], H, K + V},
                     "[batch, time, heads, key_dim + value_dim]"});
  else if (hasVectorDecay())
    wants.push_back({"workspace", getWorkspace(), {qs[0], qs[1], H, 4 * K + 64},
                     "[batch, time, heads, 4 key_dim + 64]"});
  for (const Want &w : wants) {
    if (!w.value)
      continue;
    ArrayRef<int64_t> got = typeOf(w.value).getShape();
    if (!compatibleShapes(got, w.shape))
      return emitOpError() << w.name << " must have shape " << shapeString(w.shape) << " ("
                           << w.meaning << "), got " << shapeString(got);
  }

  if (Value ws = getWorkspace()) {
    if (getWorkspaceWidth() == 0)
      return emitOpError("workspace serves the delta rule and per-key decays only: it "
                         "needs beta or a [batch, time, heads, key_dim] log_decay");
    if (typeOf(ws).getElementType() != typeOf(getKey()).getElementType())
      return emitOpError() << "workspace element type " << typeOf(ws).getElementType()
                           << " differs from key's " << typeOf(getKey()).getElementType();
  }
  // The mLSTM cell's extra state exists only with its input gate, and the
  // cell is defined for the additive update with a per-head forget gate.
  if (!isMlstm()) {
    for (auto [name, value] :
         {std::pair<StringRef, Value>{"init_normalizer", getInitialNormalizer()},
          {"init_stabilizer", getInitialStabilizer()},
          {"final_normalizer", getFinalNormalizer()},
          {"final_stabilizer", getFinalStabilizer()}})
      if (value)
        return emitOpError() << name << " is an mLSTM state: it needs input_gate";
    if (getEpsilon())
      return emitOpError("epsilon is the mLSTM denominator's: it needs input_gate");
  } else {
    if (getBeta())
      return emitOpError("input_gate (mLSTM) and beta (delta rule) exclude each other");
    if (Value g = getLogDecay(); g && typeOf(g).getRank() != 3)
      return emitOpError("with input_gate (mLSTM) log_decay must be a per-head forget gate "
                         "[batch, time, heads]");
  }
  if (!getOutput() && !getFinalState() && !getFinalNormalizer() && !getFinalStabilizer())
    return emitOpError("has nothing to write: give outs, final or both");
  Type state = getStateElementType();
  if (!state.isF32() && !state.isF64())
    return emitOpError() << "state element type must be f32 or f64, got " << state;
  if (Value init = getInitialState(); init && typeOf(init).getElementType() != state)
    return emitOpError() << "initial_state element type " << typeOf(init).getElementType()
                         << " differs from final_state's " << state;
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"init_normalizer", getInitialNormalizer()},
        {"init_stabilizer", getInitialStabilizer()}, {"final_normalizer", getFinalNormalizer()},
        {"final_stabilizer", getFinalStabilizer()}})
    if (value && typeOf(value).getElementType() != state)
      return emitOpError() << name << " element type " << typeOf(value).getElementType()
                           << " differs from the state element type " << state;
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"query", getQuery()}, {"key", getKey()}, {"value", getValue()},
        {"log_decay", getLogDecay()}, {"beta", getBeta()}, {"input_gate", getInputGate()},
        {"output", getOutput()}}) {
    if (!value)
      continue;
    Type t = typeOf(value).getElementType();
    if (!isa<FloatType>(t))
      return emitOpError() << name << " element type must be a float, got " << t;
    if (t.getIntOrFloatBitWidth() > state.getIntOrFloatBitWidth())
      return emitOpError() << name << " element type " << t
                           << " is wider than the state element type " << state;
  }
  return success();
}
