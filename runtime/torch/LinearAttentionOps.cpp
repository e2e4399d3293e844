//===- LinearAttentionOps.cpp - linear attention, its adjoint, mLSTM -------===//
//
// torch.ops.mixir.linear_attention, linear_attention_adjoint and mlstm: the
// op's checks of what it was given, the allocation of its outputs in the
// compiler's state dtype, and one call (Kernels.h). The kernel, its splits
// and its scratch are the compiler's; a time-reversed pass (the backward's)
// reads its operands through negative time strides, which memref
// descriptors carry and torch tensors cannot.
//
// Autograd is a C++ kernel on the Autograd key (no graph node when nothing
// needs a gradient); the backwards are CompositeImplicitAutograd ops in
// Python (python/mixir/ops/linear_attention.py and mlstm.py), which run these
// ops again (the additive update's gradients are forward passes) or the
// adjoint op.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <cstring>
#include <functional>

namespace {

using mixir_torch::Call;
using mixir_torch::Operand;
using mixir_torch::present;
using OptTensor = std::optional<at::Tensor>;

/// float64 states for float64 values, else float32 (the compiler's rule).
at::ScalarType stateOf(const at::Tensor &q) { return mixir_torch::stateType({q.scalar_type()}); }

/// A state operand in the state dtype. Only real floating states convert: a
/// complex (or integer) one would lose its imaginary part (or mean something
/// else), so it is an error naming the operand rather than a warning.
at::Tensor inState(const at::Tensor &t, at::ScalarType state, const char *op, const char *name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be a real floating tensor, got ", t.scalar_type());
  return t.scalar_type() == state ? t : t.to(state);
}

int64_t bitsOf(double x) {
  int64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

std::string epsilonAttribute(double eps) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17e : f64", eps);
  return text;
}

/// The [B, T, H, d] operands' shared shape facts, checked.
void checkSequences(const char *fn, const at::Tensor &q, const at::Tensor &k,
                    const at::Tensor &v) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 &&
                  v.size(0) == q.size(0) && v.size(1) == q.size(1) && q.size(2) > 0 &&
                  v.size(2) % q.size(2) == 0,
              fn, ": q, k [batch, time, heads, key_dim] and v [batch, time, value_heads, "
                  "value_dim] (value_heads a multiple of heads), got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(q.device() == k.device() && q.device() == v.device(), fn,
              ": q, k and v must be on one device");
}

/// One mixer.linear_attention; with `corrected` (the delta rule) it also
/// writes every step's update values there.
std::tuple<at::Tensor, at::Tensor>
runLinearAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                   const OptTensor &g, const OptTensor &beta, double scale, const OptTensor &init,
                   const OptTensor &cu, bool outputFinalState,
                   std::optional<at::ScalarType> outDtype, bool reverse, bool valueDecay,
                   std::optional<c10::string_view> config, at::Tensor *corrected) {
  checkSequences("mixir::linear_attention", q, k, v);
  int64_t B = q.size(0), T = q.size(1), K = q.size(3), H = v.size(2), V = v.size(3);
  int64_t N = present(cu) ? cu->size(0) - 1 : B;
  at::ScalarType state = stateOf(q);
  at::Tensor o = at::empty({B, T, H, V}, v.options().dtype(outDtype.value_or(v.scalar_type())));
  at::Tensor final = outputFinalState ? at::empty({N, H, K, V}, v.options().dtype(state))
                                      : at::empty({0}, v.options().dtype(at::kFloat));
  std::optional<at::Tensor> h0;
  if (present(init))
    h0 = inState(*init, state, "mixir::linear_attention", "initial_state");
  if (o.numel() == 0) {
    if (outputFinalState)
      h0 ? final.copy_(*h0) : final.zero_();
    return {o, final};
  }
  Call call{"linear_attention", q.device(), {valueDecay}, "", {}, nullptr};
  std::string attrs;
  if (valueDecay)
    attrs = "value_decay";
  if (config && !config->empty()) {
    call.flags.push_back(static_cast<int64_t>(std::hash<std::string>()(std::string(*config))));
    attrs += std::string(attrs.empty() ? "" : ", ") + "mixer.lowering_config = " +
             std::string(*config);
  }
  if (!attrs.empty())
    call.attributes = "{" + attrs + "}";
  auto seq = [&](const char *role, const at::Tensor *t) {
    if (t)
      call.operands.push_back({role, t, reverse});
  };
  seq("query", &q);
  seq("key", &k);
  seq("value", &v);
  seq("log_decay", present(g));
  seq("beta", present(beta));
  call.operands.push_back({"scale", nullptr, false, scale, state});
  if (h0)
    call.operands.push_back({"initial_state", &*h0});
  if (present(cu))
    call.operands.push_back({"offsets", present(cu)});
  seq("output", &o);
  if (corrected)
    seq("corrected_values", corrected);
  if (outputFinalState)
    call.operands.push_back({"final_state", &final});
  mixir_torch::run(call);
  return {o, final};
}

std::tuple<at::Tensor, at::Tensor>
linearAttention(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const OptTensor &g,
                const OptTensor &beta, double scale, const OptTensor &init, const OptTensor &cu,
                bool outputFinalState, std::optional<at::ScalarType> outDtype, bool reverse,
                bool valueDecay, std::optional<c10::string_view> config) {
  return runLinearAttention(q, k, v, g, beta, scale, init, cu, outputFinalState, outDtype,
                            reverse, valueDecay, config, nullptr);
}

/// The delta rule with its corrected values (in v's dtype): the backward's
/// first pass (python/mixir/ops/linear_attention.py, _delta_backward).
std::tuple<at::Tensor, at::Tensor, at::Tensor>
linearAttentionCorrectedValues(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                               const OptTensor &g, const at::Tensor &beta, double scale,
                               const OptTensor &init, const OptTensor &cu,
                               bool outputFinalState, std::optional<at::ScalarType> outDtype,
                               bool reverse, std::optional<c10::string_view> config) {
  checkSequences("mixir::linear_attention_corrected_values", q, k, v);
  at::Tensor corrected = at::empty(v.sizes(), v.options());
  auto [o, final] = runLinearAttention(q, k, v, g, beta, scale, init, cu, outputFinalState,
                                       outDtype, reverse, false, config, &corrected);
  return {o, final, corrected};
}

std::vector<at::Tensor>
linearAttentionAdjoint(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                       const OptTensor &g, const OptTensor &beta, double scale,
                       const OptTensor &init, const OptTensor &cu, const at::Tensor &gradO,
                       const OptTensor &gradFinal, const OptTensor &inputGate,
                       const OptTensor &n0, const OptTensor &m0, const OptTensor &gradN,
                       const OptTensor &gradM, std::optional<double> epsilon) {
  checkSequences("mixir::linear_attention_adjoint", q, k, v);
  int64_t B = q.size(0), T = q.size(1), K = q.size(3), H = v.size(2), V = v.size(3);
  int64_t N = present(cu) ? cu->size(0) - 1 : B;
  at::ScalarType state = stateOf(q);
  auto opts = q.options().dtype(state);
  auto asState = [&](const OptTensor &t, const char *name) -> OptTensor {
    if (!present(t))
      return std::nullopt;
    return inState(*t, state, "mixir::linear_attention_adjoint", name);
  };
  OptTensor h0 = asState(init, "initial_state"), n = asState(n0, "initial_normalizer"),
            m = asState(m0, "initial_stabilizer");
  OptTensor dS = asState(gradFinal, "final_grad"), dn = asState(gradN, "final_normalizer_grad"),
            dm = asState(gradM, "final_stabilizer_grad");
  bool mlstm = present(inputGate) != nullptr;
  // The mLSTM's final cotangents are one group of operands: zeros stand in
  // for the absent ones.
  if (mlstm && (dn || dm)) {
    if (!dS)
      dS = at::zeros({N, H, K, V}, opts);
    if (!dn)
      dn = at::zeros({N, H, K}, opts);
    if (!dm)
      dm = at::zeros({N, H}, opts);
  }
  at::Tensor dq = at::empty({B, T, H, K}, opts), dk = at::empty({B, T, H, K}, opts);
  at::Tensor dv = at::empty({B, T, H, V}, opts);
  auto like = [&](const OptTensor &t) {
    return present(t) ? at::empty(t->sizes(), opts) : at::empty({0}, opts);
  };
  at::Tensor dg = like(g), dbeta = like(beta), di = like(inputGate), dh0 = like(h0),
             dn0 = like(n), dm0 = like(m);
  if (dv.numel() == 0 && dq.numel() == 0) {
    for (at::Tensor *t : {&dg, &dbeta, &di})
      t->zero_();
    if (h0)
      dS ? dh0.copy_(*dS) : dh0.zero_();
    if (n)
      dn ? dn0.copy_(*dn) : dn0.zero_();
    if (m)
      dm ? dm0.copy_(*dm) : dm0.zero_();
    return {dq, dk, dv, dg, dbeta, di, dh0, dn0, dm0};
  }
  Call call{"linear_attention_adjoint", q.device(), {}, "", {}, nullptr};
  if (epsilon) {
    call.flags.push_back(bitsOf(*epsilon));
    call.attributes = "{epsilon = " + epsilonAttribute(*epsilon) + "}";
  }
  auto add = [&](const char *role, const at::Tensor *t) {
    if (t)
      call.operands.push_back({role, t});
  };
  add("query", &q);
  add("key", &k);
  add("value", &v);
  add("log_decay", present(g));
  add("beta", present(beta));
  add("input_gate", present(inputGate));
  call.operands.push_back({"scale", nullptr, false, scale, state});
  add("initial_state", h0 ? &*h0 : nullptr);
  add("initial_normalizer", n ? &*n : nullptr);
  add("initial_stabilizer", m ? &*m : nullptr);
  add("offsets", present(cu));
  add("output_grad", &gradO);
  add("final_grad", dS ? &*dS : nullptr);
  add("final_normalizer_grad", dn ? &*dn : nullptr);
  add("final_stabilizer_grad", dm ? &*dm : nullptr);
  add("query_grad", &dq);
  add("key_grad", &dk);
  add("value_grad", &dv);
  add("log_decay_grad", present(g) ? &dg : nullptr);
  add("beta_grad", present(beta) ? &dbeta : nullptr);
  add("input_gate_grad", mlstm ? &di : nullptr);
  add("initial_state_grad", h0 ? &dh0 : nullptr);
  add("initial_normalizer_grad", n ? &dn0 : nullptr);
  add("initial_stabilizer_grad", m ? &dm0 : nullptr);
  mixir_torch::run(call);
  return {dq, dk, dv, dg, dbeta, di, dh0, dn0, dm0};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>
mlstm(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &i,
      const at::Tensor &logF, double scale, const OptTensor &c0, const OptTensor &n0,
      const OptTensor &m0, double eps, bool lastStates) {
  checkSequences("mixir::mlstm", q, k, v);
  int64_t B = q.size(0), T = q.size(1), K = q.size(3), H = v.size(2), V = v.size(3);
  at::ScalarType state = stateOf(q);
  auto opts = v.options().dtype(state);
  at::Tensor h = at::empty({B, T, H, V}, v.options());
  at::Tensor c = lastStates ? at::empty({B, H, K, V}, opts) : at::empty({0}, opts);
  at::Tensor n = lastStates ? at::empty({B, H, K}, opts) : at::empty({0}, opts);
  at::Tensor m = lastStates ? at::empty({B, H}, opts) : at::empty({0}, opts);
  auto asState = [&](const OptTensor &t, const char *name) -> OptTensor {
    if (!present(t))
      return std::nullopt;
    return inState(*t, state, "mixir::mlstm", name);
  };
  OptTensor cs = asState(c0, "c0"), ns = asState(n0, "n0"), ms = asState(m0, "m0");
  if (h.numel() == 0) { // no steps (or no heads): the states pass through
    if (lastStates) {
      cs ? c.copy_(*cs) : c.zero_();
      ns ? n.copy_(*ns) : n.zero_();
      ms ? m.copy_(*ms) : m.zero_();
    }
    return {h, c, n, m};
  }
  Call call{"linear_attention", q.device(), {bitsOf(eps)}, "", {}, nullptr};
  call.attributes = "{epsilon = " + epsilonAttribute(eps) + "}";
  call.operands = {{"query", &q}, {"key", &k}, {"value", &v}, {"log_decay", &logF},
                   {"input_gate", &i}};
  call.operands.push_back({"scale", nullptr, false, scale, state});
  if (cs) {
    call.operands.push_back({"initial_state", &*cs});
    call.operands.push_back({"initial_normalizer", &*ns});
    call.operands.push_back({"initial_stabilizer", &*ms});
  }
  call.operands.push_back({"output", &h});
  if (lastStates) {
    call.operands.push_back({"final_state", &c});
    call.operands.push_back({"final_normalizer", &n});
    call.operands.push_back({"final_stabilizer", &m});
  }
  mixir_torch::run(call);
  return {h, c, n, m};
}

// --- Autograd ------------------------------------------------------------------

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool needsGrad(std::initializer_list<const at::Tensor *> tensors) {
  if (!at::GradMode::is_enabled())
    return false;
  for (const at::Tensor *t : tensors)
    if (t && t->requires_grad())
      return true;
  return false;
}

at::Tensor orUndefined(const OptTensor &t) { return present(t) ? *t : at::Tensor(); }
OptTensor orNull(const at::Tensor &t) {
  return t.defined() ? OptTensor(t) : std::nullopt;
}

const c10::TypedOperatorHandle<decltype(linearAttention)> &linearAttentionOp() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mixir::linear_attention", "")
                       .typed<decltype(linearAttention)>();
  return op;
}

struct LinearAttentionFunction : torch::autograd::Function<LinearAttentionFunction> {
  static variable_list forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                               const at::Tensor &v, const OptTensor &g, const OptTensor &beta,
                               double scale, const OptTensor &init, const OptTensor &cu,
                               bool outputFinalState, std::optional<at::ScalarType> outDtype,
                               bool reverse, bool valueDecay,
                               std::optional<c10::string_view> config) {
    TORCH_CHECK(!reverse && !valueDecay,
                "mixir::linear_attention: no gradient through a time-reversed pass or a "
                "per-value-dimension decay (the backward's own)");
    at::AutoDispatchBelowADInplaceOrView below;
    auto [o, final] = linearAttentionOp().call(q, k, v, g, beta, scale, init, cu,
                                               outputFinalState, outDtype, reverse, valueDecay,
                                               config);
    ctx->save_for_backward({q, k, v, orUndefined(g), orUndefined(beta), orUndefined(init),
                            orUndefined(cu), outputFinalState ? final : at::Tensor()});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["output_final_state"] = outputFinalState;
    // Which of q, k, v, g, beta and the initial state want a gradient.
    int64_t needs = 0, bit = 0;
    for (const at::Tensor *t : {&q, &k, &v, present(g), present(beta), present(init)}) {
      if (t && t->requires_grad())
        needs |= int64_t(1) << bit;
      ++bit;
    }
    ctx->saved_data["needs"] = needs;
    // The backward's passes take the same override (tests force splits so).
    if (config)
      ctx->saved_data["config"] = std::string(*config);
    return {o, final};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    std::array<bool, 6> needs;
    int64_t mask = ctx->saved_data["needs"].toInt();
    for (int i = 0; i < 6; ++i)
      needs[i] = (mask >> i) & 1;
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mixir::linear_attention_backward", "")
                         .typed<std::vector<at::Tensor>(
                             const at::Tensor &, const at::Tensor &, const at::Tensor &,
                             const OptTensor &, const OptTensor &, double, const OptTensor &,
                             const OptTensor &, const OptTensor &, const OptTensor &,
                             const OptTensor &, bool, c10::ArrayRef<bool>,
                             std::optional<c10::string_view>)>();
    std::optional<std::string> config;
    if (ctx->saved_data.count("config"))
      config = ctx->saved_data["config"].toStringRef();
    auto g = op.call(saved[0], saved[1], saved[2], orNull(saved[3]), orNull(saved[4]),
                     ctx->saved_data["scale"].toDouble(), orNull(saved[5]), orNull(saved[6]),
                     orNull(saved[7]), orNull(grads[0]), orNull(grads[1]),
                     ctx->saved_data["output_final_state"].toBool(),
                     c10::ArrayRef<bool>(needs.data(), needs.size()),
                     config ? std::optional<c10::string_view>(*config) : std::nullopt);
    // What the forward's inputs asked for (the composite returns empty tensors
    // for the rest).
    auto grad = [&](size_t i) { return needs[i] ? g[i] : at::Tensor(); };
    return {grad(0),     grad(1),     grad(2),     grad(3),     grad(4),     at::Tensor(),
            grad(5),     at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor>
linearAttentionAutograd(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                        const OptTensor &g, const OptTensor &beta, double scale,
                        const OptTensor &init, const OptTensor &cu, bool outputFinalState,
                        std::optional<at::ScalarType> outDtype, bool reverse, bool valueDecay,
                        std::optional<c10::string_view> config) {
  if (!needsGrad({&q, &k, &v, present(g), present(beta), present(init)})) {
    at::AutoDispatchBelowADInplaceOrView below;
    return linearAttentionOp().call(q, k, v, g, beta, scale, init, cu, outputFinalState,
                                    outDtype, reverse, valueDecay, config);
  }
  auto out = LinearAttentionFunction::apply(q, k, v, g, beta, scale, init, cu, outputFinalState,
                                            outDtype, reverse, valueDecay, config);
  return {out[0], out[1]};
}

const c10::TypedOperatorHandle<decltype(mlstm)> &mlstmOp() {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mixir::mlstm", "").typed<decltype(mlstm)>();
  return op;
}

struct MlstmFunction : torch::autograd::Function<MlstmFunction> {
  static variable_list forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k,
                               const at::Tensor &v, const at::Tensor &i, const at::Tensor &logF,
                               double scale, const OptTensor &c0, const OptTensor &n0,
                               const OptTensor &m0, double eps, bool lastStates) {
    at::AutoDispatchBelowADInplaceOrView below;
    auto [h, c, n, m] = mlstmOp().call(q, k, v, i, logF, scale, c0, n0, m0, eps, lastStates);
    ctx->save_for_backward({q, k, v, i, logF, orUndefined(c0), orUndefined(n0), orUndefined(m0)});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["last_states"] = lastStates;
    int64_t needs = 0, bit = 0;
    for (const at::Tensor *t : {&q, &k, &v, &i, &logF, present(c0), present(n0), present(m0)}) {
      if (t && t->requires_grad())
        needs |= int64_t(1) << bit;
      ++bit;
    }
    ctx->saved_data["needs"] = needs;
    return {h, c, n, m};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mixir::mlstm_backward", "")
                         .typed<std::vector<at::Tensor>(
                             const at::Tensor &, const at::Tensor &, const at::Tensor &,
                             const at::Tensor &, const at::Tensor &, double, const OptTensor &,
                             const OptTensor &, const OptTensor &, double, bool,
                             const OptTensor &, const OptTensor &, const OptTensor &,
                             const OptTensor &)>();
    auto g = op.call(s[0], s[1], s[2], s[3], s[4], ctx->saved_data["scale"].toDouble(),
                     orNull(s[5]), orNull(s[6]), orNull(s[7]), ctx->saved_data["eps"].toDouble(),
                     ctx->saved_data["last_states"].toBool(), orNull(grads[0]), orNull(grads[1]),
                     orNull(grads[2]), orNull(grads[3]));
    int64_t needs = ctx->saved_data["needs"].toInt();
    auto grad = [&](size_t i) { return (needs >> i) & 1 ? g[i] : at::Tensor(); };
    return {grad(0), grad(1), grad(2), grad(3), grad(4), at::Tensor(),
            grad(5), grad(6), grad(7), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>
mlstmAutograd(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, const at::Tensor &i,
              const at::Tensor &logF, double scale, const OptTensor &c0, const OptTensor &n0,
              const OptTensor &m0, double eps, bool lastStates) {
  if (!needsGrad({&q, &k, &v, &i, &logF, present(c0), present(n0), present(m0)})) {
    at::AutoDispatchBelowADInplaceOrView below;
    return mlstmOp().call(q, k, v, i, logF, scale, c0, n0, m0, eps, lastStates);
  }
  auto out = MlstmFunction::apply(q, k, v, i, logF, scale, c0, n0, m0, eps, lastStates);
  return {out[0], out[1], out[2], out[3]};
}

} // namespace

TORCH_LIBRARY_FRAGMENT(mixir, m) {
  m.def("linear_attention(Tensor q, Tensor k, Tensor v, Tensor? g, Tensor? beta, float scale, "
        "Tensor? initial_state, Tensor? cu_seqlens, bool output_final_state, "
        "ScalarType? out_dtype, bool reverse, bool value_decay, str? lowering_config) "
        "-> (Tensor, Tensor)");
  // The backward of linear_attention (Python, CompositeImplicitAutograd):
  // gradients of q, k, v, g, beta, initial_state (empty where not needed).
  m.def("linear_attention_backward(Tensor q, Tensor k, Tensor v, Tensor? g, Tensor? beta, "
        "float scale, Tensor? initial_state, Tensor? cu_seqlens, Tensor? final_state, "
        "Tensor? grad_o, Tensor? grad_final, bool output_final_state, bool[] needs, "
        "str? lowering_config) -> Tensor[]");
  // The delta rule (beta given) that also returns its corrected values
  // beta_t (v_t - S^T k_t), [B, T, H, V] in v's dtype. No autograd: a building
  // block of linear_attention_backward.
  m.def("linear_attention_corrected_values(Tensor q, Tensor k, Tensor v, Tensor? g, "
        "Tensor beta, float scale, Tensor? initial_state, Tensor? cu_seqlens, "
        "bool output_final_state, ScalarType? out_dtype, bool reverse, str? lowering_config) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("linear_attention_adjoint(Tensor q, Tensor k, Tensor v, Tensor? g, Tensor? beta, "
        "float scale, Tensor? initial_state, Tensor? cu_seqlens, Tensor grad_o, "
        "Tensor? grad_final, Tensor? input_gate, Tensor? n0, Tensor? m0, Tensor? grad_n, "
        "Tensor? grad_m, float? epsilon) -> Tensor[]");
  m.def("mlstm(Tensor q, Tensor k, Tensor v, Tensor i, Tensor log_f, float scale, Tensor? c0, "
        "Tensor? n0, Tensor? m0, float eps, bool last_states) -> (Tensor, Tensor, Tensor, Tensor)");
  // The backward of mlstm (Python, CompositeImplicitAutograd): gradients of
  // q, k, v, i, log_f, c0, n0, m0.
  m.def("mlstm_backward(Tensor q, Tensor k, Tensor v, Tensor i, Tensor log_f, float scale, "
        "Tensor? c0, Tensor? n0, Tensor? m0, float eps, bool last_states, Tensor? grad_h, "
        "Tensor? grad_c, Tensor? grad_n, Tensor? grad_m) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(mixir, CPU, m) {
  m.impl("linear_attention", &linearAttention);
  m.impl("linear_attention_corrected_values", &linearAttentionCorrectedValues);
  m.impl("linear_attention_adjoint", &linearAttentionAdjoint);
  m.impl("mlstm", &mlstm);
}

TORCH_LIBRARY_IMPL(mixir, CUDA, m) {
  m.impl("linear_attention", &linearAttention);
  m.impl("linear_attention_corrected_values", &linearAttentionCorrectedValues);
  m.impl("linear_attention_adjoint", &linearAttentionAdjoint);
  m.impl("mlstm", &mlstm);
}

TORCH_LIBRARY_IMPL(mixir, Autograd, m) {
  m.impl("linear_attention", &linearAttentionAutograd);
  m.impl("mlstm", &mlstmAutograd);
}
