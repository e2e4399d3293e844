//===- Kernels.h - calls of compiled mixer ops from torch ops ---*- C++ -*-===//
//
// What every C++ torch op of mixir shares: it states its call (the op, its
// operands as tensors, the op's attributes), and `run` does the rest without
// Python: the facts of the tensors (mixir-c/Calls.h), the kernel for them
// (cached by those facts; on a miss built and compiled through the
// compiler's C ABI), memref descriptors, the workspace the module asks for,
// and the launch on the caller's stream with its error.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_TORCH_KERNELS_H
#define MIXIR_TORCH_KERNELS_H

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mixir_torch {

/// One operand of a call: a tensor (possibly passed with time, dimension 1,
/// reversed: a negative stride, no copy), or a scalar.
struct Operand {
  const char *role;
  const at::Tensor *tensor = nullptr; // null: a scalar (below)
  bool reversedTime = false;
  double scalar = 0;
  at::ScalarType scalarType = at::kFloat;
};

struct Call {
  const char *op;               // "scan", "scan_adjoint", "linear_attention", ...
  c10::Device device{c10::kCPU};
  std::vector<int64_t> flags;   // everything the attributes depend on (part of the key)
  std::string attributes;       // built by `describe` on a miss: an attribute dictionary
  std::vector<Operand> operands;
  void (*describe)(Call &) = nullptr;
};

/// Runs `call`. Returns false (and runs nothing) when the compiler rejects it
/// as an op it does not define (`unsupported` then holds why); other failures
/// throw.
bool run(Call &call, std::string *unsupported = nullptr);

/// The dtype a recurrence over inputs of these dtypes is carried in (the
/// compiler's rule, mixir_state_dtype).
at::ScalarType stateType(std::initializer_list<at::ScalarType> inputs);

/// A present optional tensor, or null.
inline const at::Tensor *present(const std::optional<at::Tensor> &t) {
  return t.has_value() && t->defined() ? &*t : nullptr;
}

} // namespace mixir_torch

#endif // MIXIR_TORCH_KERNELS_H
