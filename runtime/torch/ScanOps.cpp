//===- ScanOps.cpp - torch.ops.mixir.scan / scan_backward in C++ ----------===//
//
// The torch ops of mixer.scan and its adjoint: checks, output allocation and
// the call (Kernels.h: facts, kernel cache, launch on the caller's stream),
// all without Python. Which kernel runs and how it is shaped is the
// compiler's (mixer-select-lowering-config), from the facts of the tensors.
//
// Fake kernels and the composite adjoint are registered from Python on these
// schemas. Built against the installed torch's headers and libraries; no CUDA
// headers: the stream comes through c10's device-guard interface.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cstdint>
#include <string>

namespace {

using mixir_torch::Call;
using mixir_torch::Operand;
using mixir_torch::present;

/// Whether a [B, T, D] tensor is laid out channels-by-time (unit time stride,
/// not also unit channel stride).
bool timeContiguous(const at::Tensor &t) {
  return t.size(1) > 1 && t.stride(1) == 1 && (t.size(2) == 1 || t.stride(2) != 1);
}

/// A new [B, T, D] tensor of `dtype` laid out like `like`: channels-by-time
/// when `like` is time-contiguous (BTP's layout, so the kernel can move whole
/// blocks), else contiguous. Used for h (like b) and for the gradients of a
/// and b. The fake kernels (python/mixir/ops/scan.py, _output_like) follow the
/// same rule.
at::Tensor allocateLike(const at::Tensor &like, at::ScalarType dtype) {
  int64_t B = like.size(0), T = like.size(1), D = like.size(2);
  auto opts = like.options().dtype(dtype);
  return timeContiguous(like) ? at::empty({B, D, T}, opts).transpose(1, 2)
                              : at::empty({B, T, D}, opts);
}

void checkSequences(const at::Tensor &a, const at::Tensor &b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.sizes() == b.sizes(),
              "mixir.scan: a and b must be [batch, time, channels] of one shape, got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.device() == b.device(), "mixir.scan: a is on ", a.device(), ", b on ",
              b.device());
}

/// The window and direction of a scan, as the op's attributes.
void describeScan(Call &call) {
  int64_t block = call.flags[0], k = call.flags[1];
  std::string window = block == 0 ? "#mixer.window<global>"
                                  : "#mixer.window<jagged, block = " + std::to_string(block) +
                                        ", k = " + std::to_string(k) + ">";
  call.attributes = "{window = " + window + (call.flags[2] ? ", reverse" : "") +
                    (call.flags[3] ? ", log_space" : "") + "}";
}

Call scanCall(const char *op, const at::Tensor &b, bool reverse, bool logSpace, int64_t block,
              int64_t k) {
  Call call{op, b.device(), {block, k, reverse, logSpace}, "", {}, describeScan};
  return call;
}

std::tuple<at::Tensor, at::Tensor> scan(const at::Tensor &a, const at::Tensor &b,
                                        const std::optional<at::Tensor> &init, bool reverse,
                                        bool logSpace, int64_t block, int64_t k) {
  checkSequences(a, b);
  auto st = mixir_torch::stateType({a.scalar_type(), b.scalar_type()});
  int64_t B = b.size(0), T = b.size(1), D = b.size(2);
  auto opts = b.options().dtype(st);
  at::Tensor h = allocateLike(b, st);
  at::Tensor fin = at::empty({B, D}, opts);
  bool hasInit = init.has_value() && init->defined();
  if (hasInit)
    TORCH_CHECK(init->dim() == 2 && init->size(0) == B && init->size(1) == D &&
                    init->scalar_type() == st && init->device() == b.device(),
                "mixir.scan: initial_state must be [", B, ", ", D, "] of the state dtype on ",
                b.device());
  if (T == 0 || B == 0 || D == 0) {
    if (hasInit && block == 0)
      fin.copy_(*init);
    else
      fin.zero_();
    return {h, fin};
  }
  Call call = scanCall("scan", b, reverse, logSpace, block, k);
  call.operands = {{"gates", &a}, {"inputs", &b}};
  if (hasInit)
    call.operands.push_back({"initial_state", &*init});
  call.operands.push_back({"output", &h});
  call.operands.push_back({"final_state", &fin});
  mixir_torch::run(call);
  return {h, fin};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor>
scanBackward(const at::Tensor &a, const at::Tensor &b, const std::optional<at::Tensor> &init,
             const at::Tensor &h, const at::Tensor &gradH, const at::Tensor &gradFinal,
             bool reverse, bool logSpace, int64_t block, int64_t k) {
  checkSequences(a, b);
  int64_t B = h.size(0), T = h.size(1), D = h.size(2);
  bool hasInit = init.has_value() && init->defined();
  at::Tensor ga = allocateLike(a, a.scalar_type()), gb = allocateLike(b, b.scalar_type());
  at::Tensor g0 = hasInit ? at::empty({B, D}, h.options()) : at::empty({0}, h.options());
  if (T == 0 || B == 0 || D == 0) {
    ga.zero_();
    gb.zero_();
    // As the forward: a global scan's final state is the initial state, a
    // jagged one's is zero (its blocks start from zero).
    if (hasInit && block == 0)
      g0.copy_(gradFinal);
    else if (hasInit)
      g0.zero_();
    return {ga, gb, g0};
  }
  Call call = scanCall("scan_adjoint", b, reverse, logSpace, block, k);
  call.operands = {{"gates", &a}, {"inputs", &b}};
  if (hasInit)
    call.operands.push_back({"initial_state", &*init});
  call.operands.push_back({"states", &h});
  call.operands.push_back({"output_grad", &gradH});
  call.operands.push_back({"final_grad", &gradFinal});
  call.operands.push_back({"gates_grad", &ga});
  call.operands.push_back({"inputs_grad", &gb});
  if (hasInit)
    call.operands.push_back({"initial_state_grad", &g0});
  std::string unsupported;
  if (!mixir_torch::run(call, &unsupported)) {
    // mixer.scan_adjoint does not define this scan's adjoint (its verifier
    // said why: complex, or reverse with a jagged window); the tensor-level
    // form of the same equations does (Python, CompositeImplicitAutograd).
    static auto composite = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("mixir::scan_backward_composite", "")
                                .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                    const at::Tensor &, const at::Tensor &,
                                    const std::optional<at::Tensor> &, const at::Tensor &,
                                    const at::Tensor &, const at::Tensor &, bool, bool, int64_t,
                                    int64_t)>();
    return composite.call(a, b, init, h, gradH, gradFinal, reverse, logSpace, block, k);
  }
  return {ga, gb, g0};
}

// ---------------------------------------------------------------------------
// Autograd, in C++ so that a warm call spends no time in Python. The backward
// is mixir::scan_backward: mixer.scan_adjoint where the op defines it, else
// (its verifier says so) mixir::scan_backward_composite, the same adjoint
// equations as compiled scans plus pointwise ops (Python).
// ---------------------------------------------------------------------------

using ScanSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &,
                                                   const std::optional<at::Tensor> &, bool,
                                                   bool, int64_t, int64_t);
using BackwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor &, const at::Tensor &, const std::optional<at::Tensor> &,
    const at::Tensor &, const at::Tensor &, const at::Tensor &, bool, bool, int64_t, int64_t);

const c10::TypedOperatorHandle<ScanSig> &scanOp() {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("mixir::scan", "").typed<ScanSig>();
  return op;
}

const c10::TypedOperatorHandle<BackwardSig> &backwardOp() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mixir::scan_backward", "")
                       .typed<BackwardSig>();
  return op;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct ScanFunction : torch::autograd::Function<ScanFunction> {
  static variable_list forward(AutogradContext *ctx, const at::Tensor &a, const at::Tensor &b,
                               const std::optional<at::Tensor> &init, bool reverse,
                               bool logSpace, int64_t block, int64_t k) {
    at::AutoDispatchBelowADInplaceOrView below;
    auto [h, fin] = scanOp().call(a, b, init, reverse, logSpace, block, k);
    ctx->save_for_backward({a, b, init.value_or(at::Tensor()), h});
    // One entry, not four: each is a string-keyed map insertion on every call.
    ctx->saved_data["flags"] = std::vector<int64_t>{reverse, logSpace, block, k};
    return {h, fin};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1], &init = saved[2], &h = saved[3];
    auto flags = ctx->saved_data["flags"].toIntVector();
    bool reverse = flags[0], logSpace = flags[1];
    int64_t block = flags[2], k = flags[3];
    auto st = h.scalar_type();
    at::Tensor gradH = grads[0].defined() ? grads[0].to(st) : at::zeros_like(h);
    at::Tensor gradFinal = grads[1].defined()
                               ? grads[1].to(st)
                               : at::zeros({h.size(0), h.size(2)}, h.options());
    std::optional<at::Tensor> h0;
    if (init.defined())
      h0 = init;
    auto [ga, gb, g0] =
        backwardOp().call(a, b, h0, h, gradH, gradFinal, reverse, logSpace, block, k);
    return {ga, gb, init.defined() ? g0 : at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

/// The Autograd kernel. With nothing to differentiate it goes straight to the
/// device kernel: no graph node, no saved tensors (the common inference call).
std::tuple<at::Tensor, at::Tensor> scanAutograd(const at::Tensor &a, const at::Tensor &b,
                                                const std::optional<at::Tensor> &init,
                                                bool reverse, bool logSpace, int64_t block,
                                                int64_t k) {
  bool hasInit = init.has_value() && init->defined();
  bool needsGrad = at::GradMode::is_enabled() &&
                   (a.requires_grad() || b.requires_grad() || (hasInit && init->requires_grad()));
  if (!needsGrad) {
    at::AutoDispatchBelowADInplaceOrView below;
    return scanOp().call(a, b, init, reverse, logSpace, block, k);
  }
  auto out = ScanFunction::apply(a, b, init, reverse, logSpace, block, k);
  return {out[0], out[1]};
}

} // namespace

TORCH_LIBRARY(mixir, m) {
  m.def("scan(Tensor a, Tensor b, Tensor? initial_state, bool reverse, bool log_space, "
        "int block, int k) -> (Tensor, Tensor)");
  m.def("scan_backward(Tensor a, Tensor b, Tensor? initial_state, Tensor h, Tensor grad_h, "
        "Tensor grad_final, bool reverse, bool log_space, int block, int k) "
        "-> (Tensor, Tensor, Tensor)");
  // The tensor-level adjoint for what mixer.scan_adjoint does not define;
  // implemented in Python (python/mixir/ops/scan.py), CompositeImplicitAutograd.
  m.def("scan_backward_composite(Tensor a, Tensor b, Tensor? initial_state, Tensor h, "
        "Tensor grad_h, Tensor grad_final, bool reverse, bool log_space, int block, int k) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(mixir, CPU, m) {
  m.impl("scan", &scan);
  m.impl("scan_backward", &scanBackward);
}

TORCH_LIBRARY_IMPL(mixir, CUDA, m) {
  m.impl("scan", &scan);
  m.impl("scan_backward", &scanBackward);
}

TORCH_LIBRARY_IMPL(mixir, Autograd, m) { m.impl("scan", &scanAutograd); }
