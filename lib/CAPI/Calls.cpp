//===- Calls.cpp - mixer op calls from facts (mixir-c/Calls.h) ------------===//
//
// The one builder of frontend IR: a function around one mixer op (named
// after it),
// built through the ODS-generated builders from the facts of the caller's
// tensors. Facts become IR faithfully and nothing else is decided here:
//
// * memref types: static sizes for the dimensions the op specialises on
//   (a scan's channels; linear attention's head dimensions, as its verifier
//   needs), a static unit stride wherever the tensor's stride is 1;
// * `mixer.alignment` on every memref argument, `mixer.offsets_fit_i32` on
//   the function, `mixer.target` on the module;
// * the op's attributes as given (a `mixer.lowering_config` overrides the
//   strategy, for tests and sweeps).
//
// Which kernel runs is mixer-select-lowering-config's business.
//
//===----------------------------------------------------------------------===//

#include "mixir-c/Calls.h"

#include "Module.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/InitAll.h"
#include "mixir/Strategy/Facts.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

using namespace mlir;
using namespace mlir::mixer;

namespace {

Type elementType(MLIRContext *ctx, int32_t dtype) {
  switch (dtype) {
  case MIXIR_F16: return Float16Type::get(ctx);
  case MIXIR_BF16: return BFloat16Type::get(ctx);
  case MIXIR_F32: return Float32Type::get(ctx);
  case MIXIR_F64: return Float64Type::get(ctx);
  case MIXIR_C64: return ComplexType::get(Float32Type::get(ctx));
  case MIXIR_C128: return ComplexType::get(Float64Type::get(ctx));
  case MIXIR_I32: return IntegerType::get(ctx, 32);
  case MIXIR_I64: return IntegerType::get(ctx, 64);
  default: return {};
  }
}

/// Whether the op specialises on dimension `dim` of the operand `role`: a
/// scan's channels (the strategy shapes its thread block by them); a linear
/// attention's head dimensions K and V (static in its verifier), in the
/// sequences' last dimension and the states' trailing ones.
bool isStaticDim(StringRef op, StringRef role, int64_t rank, int64_t dim) {
  if (op.starts_with("scan"))
    return (rank == 3 && dim == 2) || (rank == 2 && dim == 1);
  bool state = role.contains("state") || role == "final_grad";
  bool normalizer = role.contains("normalizer");
  if (normalizer)
    return dim == 2;
  if (state && !role.contains("stabilizer"))
    return dim >= 2;
  return rank == 4 && dim == 3;
}

struct CallBuilder {
  const MixirCall &call;
  MLIRContext *ctx;
  std::string &error;
  std::vector<int32_t> staticDims;
  llvm::StringMap<Value> operands;

  bool fail(const Twine &message) {
    error = ("mixir_build_call: " + message).str();
    return false;
  }

  Type argumentType(const MixirOperand &o, int index, Type elt) {
    if (o.rank == 0)
      return elt;
    SmallVector<int64_t> shape, strides;
    for (int64_t d = 0; d < o.rank; ++d) {
      bool fixed = isStaticDim(call.op, o.role, o.rank, d);
      if (fixed) {
        staticDims.push_back(index);
        staticDims.push_back(static_cast<int32_t>(d));
      }
      shape.push_back(fixed ? o.sizes[d] : ShapedType::kDynamic);
      strides.push_back(o.strides[d] == 1 ? 1 : ShapedType::kDynamic);
    }
    return MemRefType::get(shape, elt,
                           StridedLayoutAttr::get(ctx, ShapedType::kDynamic, strides));
  }

  bool build(ModuleOp module) {
    StringRef op = call.op ? call.op : "";
    if (!llvm::is_contained({"scan", "scan_adjoint", "linear_attention",
                             "linear_attention_adjoint"},
                            op))
      return fail(Twine("unknown op '") + op +
                  "' (scan, scan_adjoint, linear_attention, linear_attention_adjoint)");
    if (!call.target)
      return fail("the target must not be NULL");
    bool linearAttention = StringRef(call.op).starts_with("linear_attention");
    OpBuilder b(ctx);
    Location loc = UnknownLoc::get(ctx);
    SmallVector<Type> types;
    for (size_t i = 0; i < call.num_operands; ++i) {
      const MixirOperand &o = call.operands[i];
      if (!o.role)
        return fail("an operand without a role");
      if (operands.count(o.role))
        return fail(Twine("operand '") + o.role + "' given twice");
      Type elt = elementType(ctx, o.dtype);
      if (!elt)
        return fail(Twine("operand '") + o.role + "' has an unknown dtype " + Twine(o.dtype));
      if (o.rank < 0 || o.rank > MIXIR_MAX_RANK)
        return fail(Twine("operand '") + o.role + "' has rank " + Twine(o.rank));
      types.push_back(argumentType(o, static_cast<int>(i), elt));
      operands[o.role] = Value();
    }
    if (linearAttention)
      types.push_back(MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 8)));

    // Named after the op, so that its kernels are too (<op>_kernel, <op>_chunked).
    auto fn = func::FuncOp::create(b, loc, op, b.getFunctionType(types, {}));
    module.push_back(fn);
    fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
    if (call.offsets_fit_i32)
      fn->setAttr(kOffsetsFitI32Attr, b.getUnitAttr());
    Block *body = fn.addEntryBlock();
    for (size_t i = 0; i < call.num_operands; ++i) {
      operands[call.operands[i].role] = body->getArgument(i);
      if (call.operands[i].rank > 0)
        fn.setArgAttr(i, kAlignmentAttr,
                      b.getI64IntegerAttr(std::max<uint32_t>(call.operands[i].alignment, 1)));
    }
    if (linearAttention)
      fn.setArgAttr(call.num_operands, kWorkspaceAttr, b.getUnitAttr());

    DictionaryAttr attrs = DictionaryAttr::get(ctx);
    if (call.attributes && *call.attributes) {
      Attribute parsed = parseAttribute(call.attributes, ctx);
      attrs = dyn_cast_or_null<DictionaryAttr>(parsed);
      if (!attrs)
        return fail(Twine("attributes must be an attribute dictionary, got '") + call.attributes +
                    "'");
    }
    b.setInsertionPointToStart(body);
    auto get = [&](StringRef role) { return operands.lookup(role); };
    auto window = attrs.getAs<WindowAttr>("window");
    auto unit = [&](StringRef name) { return attrs.getAs<UnitAttr>(name); };
    auto epsilon = attrs.getAs<FloatAttr>("epsilon");
    Operation *built = nullptr;
    // The operands the op cannot do without (its ODS builders take them as given).
    static const llvm::StringMap<std::vector<StringRef>> required = {
        {"scan", {"gates", "inputs"}},
        {"scan_adjoint",
         {"gates", "inputs", "states", "output_grad", "gates_grad", "inputs_grad"}},
        {"linear_attention", {"query", "key", "value", "scale"}},
        {"linear_attention_adjoint",
         {"query", "key", "value", "scale", "output_grad", "query_grad", "key_grad",
          "value_grad"}}};
    for (StringRef role : required.lookup(op))
      if (!get(role))
        return fail(Twine(op) + " needs its '" + role + "' operand");
    if (op.starts_with("scan")) {
      if (!window)
        return fail("a scan needs its `window` attribute");
      if (op == "scan")
        built = ScanOp::create(b, loc, TypeRange{}, get("gates"), get("inputs"),
                               get("initial_state"), get("output"), get("final_state"), window,
                               unit("log_space"), unit("reverse"));
      else
        built = ScanAdjointOp::create(b, loc, get("gates"), get("inputs"), get("initial_state"),
                                      get("states"), get("output_grad"), get("final_grad"),
                                      get("gates_grad"), get("inputs_grad"),
                                      get("initial_state_grad"), window, unit("log_space"),
                                      unit("reverse"));
    } else {
      if (op == "linear_attention")
        built = LinearAttentionOp::create(
            b, loc, get("query"), get("key"), get("value"), get("log_decay"), get("beta"),
            get("input_gate"), get("scale"), get("initial_state"), get("initial_normalizer"),
            get("initial_stabilizer"), get("offsets"), Value(), get("output"),
            get("corrected_values"), get("final_state"), get("final_normalizer"), get("final_stabilizer"),
            unit("value_decay"), epsilon);
      else
        built = LinearAttentionAdjointOp::create(
            b, loc, get("query"), get("key"), get("value"), get("log_decay"), get("beta"),
            get("input_gate"), get("scale"), get("initial_state"), get("initial_normalizer"),
            get("initial_stabilizer"), get("offsets"), get("output_grad"), get("final_grad"),
            get("final_normalizer_grad"), get("final_stabilizer_grad"), get("query_grad"),
            get("key_grad"), get("value_grad"), get("log_decay_grad"), get("beta_grad"),
            get("input_gate_grad"), get("initial_state_grad"), get("initial_normalizer_grad"),
            get("initial_stabilizer_grad"), epsilon);
    }
    // An operand the op did not take has a role it does not know.
    for (size_t i = 0; i < call.num_operands; ++i)
      if (body->getArgument(i).use_empty())
        return fail(Twine("op ") + op + " has no operand '" + call.operands[i].role + "'");
    if (auto config = attrs.getAs<LoweringConfigAttr>(LoweringConfigAttr::getAttrName()))
      built->setAttr(LoweringConfigAttr::getAttrName(), config);
    for (NamedAttribute a : attrs) {
      StringRef name = a.getName().getValue();
      if (!llvm::is_contained({"window", "log_space", "reverse", "value_decay", "epsilon",
                               "mixer.lowering_config"},
                              name))
        return fail(Twine("op ") + op + " takes no attribute '" + name + "'");
    }
    func::ReturnOp::create(b, loc);

    auto target = TargetAttr::getChecked(
        [&] { return emitError(loc); }, ctx, StringRef(call.target), call.sm_count,
        call.shared_memory);
    if (!target)
      return fail(Twine("bad target '") + call.target + "'");
    module->setAttr(TargetAttr::getAttrName(), target);
    return true;
  }
};

/// The module of `call` in `ctx`, verified; null and `error` on failure.
OwningOpRef<ModuleOp> buildModule(const MixirCall &call, MLIRContext &ctx, std::string &error,
                                  std::vector<int32_t> &staticDims) {
  OwningOpRef<ModuleOp> module = ModuleOp::create(UnknownLoc::get(&ctx));
  std::string diagnostics;
  {
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
      llvm::raw_string_ostream os(diagnostics);
      os << d << "\n";
      return success();
    });
    CallBuilder builder{call, &ctx, error, {}, {}};
    if (!builder.build(*module)) {
      if (!diagnostics.empty())
        error += ": " + diagnostics;
      return {};
    }
    if (failed(verify(*module))) {
      error = "mixir_build_call: the call does not make a valid op: " + diagnostics;
      return {};
    }
    staticDims = std::move(builder.staticDims);
  }
  return module;
}

std::string buildText(const MixirCall &call, std::string &error,
                      std::vector<int32_t> &staticDims) {
  DialectRegistry registry;
  mixer::registerAllDialects(registry);
  MLIRContext ctx(registry, MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();
  OwningOpRef<ModuleOp> module = buildModule(call, ctx, error, staticDims);
  if (!module)
    return "";
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  return text;
}

} // namespace

extern "C" {

char *mixir_build_call(const MixirCall *call, char **error) {
  std::string message;
  std::vector<int32_t> dims;
  std::string text = call ? buildText(*call, message, dims) : "";
  if (!call)
    message = "mixir_build_call: call must not be NULL";
  if (text.empty()) {
    if (error)
      *error = mixir::copyString(message);
    return nullptr;
  }
  return mixir::copyString(text);
}

MixirModule *mixir_compile_call(const MixirCall *call, const char *runtime_library,
                                char **error) {
  std::string message;
  std::vector<int32_t> dims;
  std::string text = call ? buildText(*call, message, dims) : "";
  if (text.empty()) {
    if (error)
      *error = mixir::copyString(call ? message : "mixir_compile_call: call must not be NULL");
    return nullptr;
  }
  bool gpu = std::strcmp(call->target, "cpu") != 0;
  return mixir::compileCached(text, call->target, gpu ? "host=1" : nullptr, runtime_library,
                              error, [&](MixirModule &m) { m.staticDims = dims; });
}

size_t mixir_module_static_dims(MixirModule *module, const int32_t **pairs) {
  if (!module) {
    if (pairs)
      *pairs = nullptr;
    return 0;
  }
  if (pairs)
    *pairs = module->staticDims.data();
  return module->staticDims.size() / 2;
}

int32_t mixir_state_dtype(const int32_t *dtypes, size_t n) {
  bool wide = false, complex = false;
  for (size_t i = 0; i < n; ++i) {
    wide |= dtypes[i] == MIXIR_F64 || dtypes[i] == MIXIR_C128;
    complex |= dtypes[i] == MIXIR_C64 || dtypes[i] == MIXIR_C128;
  }
  if (complex)
    return wide ? MIXIR_C128 : MIXIR_C64;
  return wide ? MIXIR_F64 : MIXIR_F32;
}

} // extern "C"
