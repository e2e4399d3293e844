//===- ScanOps.cpp - torch.ops.mixir.scan / scan_backward in C++ ----------===//
//
// The hot path of the torch integration: checks, output allocation, the
// specialisation key, memref descriptors, the caller's stream, one call of the
// JIT-compiled host function and its launch error, all without Python. Only a
// cache miss calls back into Python (a ctypes callback), which builds the
// `mixer` IR for the specialisation and compiles it (python/mixir/ops/scan.py).
//
// Fake kernels and autograd are registered from Python on these schemas.
// Built against the installed torch's headers and libraries; no CUDA headers:
// the stream comes through c10's device-guard interface.
//
//===----------------------------------------------------------------------===//

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

using CompileFn = void *(*)(const char *spec);
using SetStreamFn = void (*)(void *);
using TakeErrorFn = const char *(*)();

CompileFn compileHook = nullptr;
SetStreamFn setStream = nullptr;
TakeErrorFn takeError = nullptr;
template <int R> struct MemRef {
  void *allocated, *aligned;
  int64_t offset, sizes[R], strides[R];
};

template <int R> MemRef<R> descriptor(const at::Tensor &t) {
  MemRef<R> d;
  d.allocated = d.aligned = t.data_ptr();
  d.offset = 0;
  for (int i = 0; i < R; ++i) {
    d.sizes[i] = t.size(i);
    d.strides[i] = t.stride(i);
  }
  return d;
}

const char *elementName(at::ScalarType t) {
  switch (t) {
  case at::kHalf: return "f16";
  case at::kBFloat16: return "bf16";
  case at::kFloat: return "f32";
  case at::kDouble: return "f64";
  case at::kComplexFloat: return "c64";
  case at::kComplexDouble: return "c128";
  default: return nullptr;
  }
}

at::ScalarType stateType(at::ScalarType a, at::ScalarType b) {
  bool wide = a == at::kDouble || b == at::kDouble || a == at::kComplexDouble ||
              b == at::kComplexDouble;
  bool complex = at::isComplexType(a) || at::isComplexType(b);
  if (complex)
    return wide ? at::kComplexDouble : at::kComplexFloat;
  return wide ? at::kDouble : at::kFloat;
}

/// Channels per thread-block row, as mixir.ops.scan.gpu_config chooses it:
/// the key holds this bucket, not D, so every width in a bucket shares a kernel.
int64_t channelBucket(int64_t channels) {
  int64_t x = 128;
  while (x > 16 && x / 2 >= channels)
    x /= 2;
  return x;
}

bool fitsInt32(std::initializer_list<const at::Tensor *> tensors) {
  for (const at::Tensor *t : tensors) {
    if (!t || !t->defined())
      continue;
    int64_t extent = 0;
    for (int64_t i = 0; i < t->dim(); ++i)
      if (t->size(i) > 0)
        extent += (t->size(i) - 1) * t->stride(i);
    if (extent > INT32_MAX)
      return false;
  }
  return true;
}

/// What selects a compiled specialisation. A plain value (hashed and compared
/// without building a string on a warm call); `str()` is what a cache miss
/// hands to Python (`_compile_spec`), which builds the IR from it.
struct Spec {
  bool adjoint = false;
  c10::Device device{c10::kCPU};
  at::ScalarType a = at::kFloat, b = at::kFloat;
  int64_t block = 0, k = 0;
  bool reverse = false, logSpace = false, hasInit = false;
  int64_t bucket = 0; // CUDA only: channels per thread-block row
  int int32 = -1;     // adjoint on CUDA only: 32-bit indexing (1) or not (0)
  // CUDA jagged scans: which of a (1), b (2), h (4) have time-contiguous,
  // 16-byte aligned blocks (moved as vectors by the kernel); for the adjoint,
  // together with their gradients da, db and dh.
  int timeMajor = 0;

  bool operator==(const Spec &o) const {
    return adjoint == o.adjoint && device == o.device && a == o.a && b == o.b &&
           block == o.block && k == o.k && reverse == o.reverse && logSpace == o.logSpace &&
           hasInit == o.hasInit && bucket == o.bucket && int32 == o.int32 &&
           timeMajor == o.timeMajor;
  }

  std::string str() const {
    std::string s = std::string(adjoint ? "adjoint" : "scan") + ";dev=" + device.str() +
                    ";a=" + elementName(a) + ";b=" + elementName(b) +
                    ";block=" + std::to_string(block) + ";k=" + std::to_string(k) +
                    ";reverse=" + std::to_string(reverse) + ";log=" + std::to_string(logSpace) +
                    ";init=" + std::to_string(hasInit);
    if (device.is_cuda())
      s += ";bucket=" + std::to_string(bucket);
    if (int32 >= 0)
      s += ";int32=" + std::to_string(int32);
    if (timeMajor)
      s += ";tm=" + std::to_string(timeMajor);
    return s;
  }
};

struct SpecHash {
  size_t operator()(const Spec &s) const {
    uint64_t h = std::hash<c10::Device>()(s.device);
    for (int64_t v : {int64_t(s.adjoint), int64_t(s.a), int64_t(s.b), s.block, s.k,
                      int64_t(s.reverse), int64_t(s.logSpace), int64_t(s.hasInit), s.bucket,
                      int64_t(s.int32), int64_t(s.timeMajor)})
      h = (h ^ uint64_t(v)) * 0x100000001b3ULL; // FNV-1a style mixing
    return h;
  }
};

std::mutex cacheMutex;
std::unordered_map<Spec, void *, SpecHash> cache;

/// Whether a [B, T, D] tensor is laid out channels-by-time (unit time stride,
/// not also unit channel stride).
bool timeContiguous(const at::Tensor &t) {
  return t.size(1) > 1 && t.stride(1) == 1 && (t.size(2) == 1 || t.stride(2) != 1);
}

/// A new [B, T, D] tensor of `dtype` laid out like `like`: channels-by-time
/// when `like` is time-contiguous (BTP's layout, so the kernel moves whole
/// blocks), else contiguous. Used for h (like b) and for the gradients of a
/// and b. The fake kernels (python/mixir/ops/scan.py, _output_like) follow the
/// same rule.
at::Tensor allocateLike(const at::Tensor &like, at::ScalarType dtype) {
  int64_t B = like.size(0), T = like.size(1), D = like.size(2);
  auto opts = like.options().dtype(dtype);
  return timeContiguous(like) ? at::empty({B, D, T}, opts).transpose(1, 2)
                              : at::empty({B, T, D}, opts);
}

/// Whether every jagged block of a [B, T, D] operand is contiguous in time and
/// starts on a 16-byte boundary, so the kernel may move each block with aligned
/// vector accesses. Blocks start at multiples of `block` steps from t = 0
/// (tiles are block-aligned).
bool blocksAligned(const at::Tensor &t, int64_t block) {
  constexpr int64_t alignment = 16;
  int64_t element = t.element_size();
  if (!timeContiguous(t) || (block * element) % alignment ||
      reinterpret_cast<uintptr_t>(t.data_ptr()) % alignment)
    return false;
  for (int64_t d : {0, 2})
    if (t.size(d) > 1 && (t.stride(d) * element) % alignment)
      return false;
  return true;
}

/// The compiled function for `spec`, compiling it through Python on a miss.
void *lookup(const Spec &spec) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(spec);
    if (it != cache.end())
      return it->second;
  }
  TORCH_CHECK(compileHook, "mixir: the compiler hook is not installed (import mixir first)");
  std::string text = spec.str();
  void *fn = compileHook(text.c_str());
  TORCH_CHECK(fn, "mixir: compiling the specialisation ", text,
              " failed (see the Python error above)");
  std::lock_guard<std::mutex> lock(cacheMutex);
  cache.emplace(spec, fn);
  return fn;
}

/// Calls a compiled host function with memref descriptors, on the caller's
/// stream for CUDA tensors, and turns a launch error into a torch error.
template <typename... Descs> void call(void *fn, const at::Device &device, Descs *...descs) {
  if (device.is_cuda()) {
    TORCH_CHECK(setStream && takeError, "mixir: the GPU runtime is not installed");
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    c10::Device previous = impl->exchangeDevice(device);
    setStream(impl->getStream(device).native_handle());
    reinterpret_cast<void (*)(Descs *...)>(fn)(descs...);
    if (previous != device)
      impl->exchangeDevice(previous);
    if (const char *err = takeError())
      TORCH_CHECK(false, "mixir: ", err);
    return;
  }
  reinterpret_cast<void (*)(Descs *...)>(fn)(descs...);
}

Spec baseSpec(bool adjoint, const at::Tensor &a, const at::Tensor &b, bool reverse,
              bool logSpace, int64_t block, int64_t k, bool hasInit) {
  TORCH_CHECK(elementName(a.scalar_type()) && elementName(b.scalar_type()),
              "mixir.scan: unsupported dtypes ", a.scalar_type(), " and ", b.scalar_type());
  Spec s;
  s.adjoint = adjoint;
  s.device = b.device();
  s.a = a.scalar_type();
  s.b = b.scalar_type();
  s.block = block;
  s.k = k;
  s.reverse = reverse;
  s.logSpace = logSpace;
  s.hasInit = hasInit;
  if (b.is_cuda())
    s.bucket = channelBucket(b.size(2));
  return s;
}

void checkSequences(const at::Tensor &a, const at::Tensor &b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.sizes() == b.sizes(),
              "mixir.scan: a and b must be [batch, time, channels] of one shape, got ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.device() == b.device(), "mixir.scan: a is on ", a.device(), ", b on ",
              b.device());
}

std::tuple<at::Tensor, at::Tensor> scan(const at::Tensor &a, const at::Tensor &b,
                                        const std::optional<at::Tensor> &init, bool reverse,
                                        bool logSpace, int64_t block, int64_t k) {
  checkSequences(a, b);
  auto st = stateType(a.scalar_type(), b.scalar_type());
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
  Spec spec = baseSpec(false, a, b, reverse, logSpace, block, k, hasInit);
  if (b.is_cuda() && block > 0) {
    spec.timeMajor = blocksAligned(a, block) | blocksAligned(b, block) << 1 |
                     blocksAligned(h, block) << 2;
    // Measured on H100 (bench/sweep_btp.py): with a carry, 32-bit indexing is
    // faster for the time-major kernel (one-block tiles).
    if (spec.timeMajor)
      spec.int32 = k == 2 && fitsInt32({&a, &b, &h});
  }
  void *fn = lookup(spec);
  auto da = descriptor<3>(a), db = descriptor<3>(b), dh = descriptor<3>(h);
  auto df = descriptor<2>(fin);
  if (hasInit) {
    auto di = descriptor<2>(*init);
    call(fn, b.device(), &da, &db, &di, &dh, &df);
  } else {
    call(fn, b.device(), &da, &db, &dh, &df);
  }
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
    if (hasInit)
      g0.copy_(gradFinal);
    return {ga, gb, g0};
  }
  Spec spec = baseSpec(true, a, b, reverse, logSpace, block, k, hasInit);
  if (b.is_cuda())
    spec.int32 = block != 0 && fitsInt32({&a, &b, &h, &gradH, &ga, &gb});
  if (b.is_cuda() && block > 0) {
    // The adjoint's gradient of an operand has the operand's memref type, and
    // dh has h's: a bit is set only when both tensors qualify.
    auto both = [&](const at::Tensor &x, const at::Tensor &y) {
      return int(blocksAligned(x, block) && blocksAligned(y, block));
    };
    spec.timeMajor = both(a, ga) | both(b, gb) << 1 | both(h, gradH) << 2;
  }
  void *fn = lookup(spec);
  auto da = descriptor<3>(a), db = descriptor<3>(b), dh = descriptor<3>(h);
  auto dgh = descriptor<3>(gradH);
  auto dgf = descriptor<2>(gradFinal);
  auto dga = descriptor<3>(ga), dgb = descriptor<3>(gb);
  if (hasInit) {
    auto di = descriptor<2>(*init), dg0 = descriptor<2>(g0);
    call(fn, b.device(), &da, &db, &di, &dh, &dgh, &dgf, &dga, &dgb, &dg0);
  } else {
    call(fn, b.device(), &da, &db, &dh, &dgh, &dgf, &dga, &dgb);
  }
  return {ga, gb, g0};
}

// ---------------------------------------------------------------------------
// Autograd, in C++ so that a warm call spends no time in Python. The backward
// is the compiler-derived adjoint (mixir::scan_backward, from the
// mixer-scan-adjoint pass) where it exists: real scans except reverse jagged
// ones. The others call mixir::scan_backward_composite, whose implementation
// (Python, CompositeImplicitAutograd) runs the same adjoint equations as
// compiled scans plus pointwise ops.
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

const c10::TypedOperatorHandle<BackwardSig> &backwardOp(bool fused) {
  static auto fusedOp = c10::Dispatcher::singleton()
                            .findSchemaOrThrow("mixir::scan_backward", "")
                            .typed<BackwardSig>();
  static auto compositeOp = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("mixir::scan_backward_composite", "")
                                .typed<BackwardSig>();
  return fused ? fusedOp : compositeOp;
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
    bool fused = !(a.is_complex() || b.is_complex() || (reverse && block != 0));
    auto [ga, gb, g0] =
        backwardOp(fused).call(a, b, h0, h, gradH, gradFinal, reverse, logSpace, block, k);
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

extern "C" __attribute__((visibility("default"))) void
mixir_torch_install(CompileFn compile, SetStreamFn stream, TakeErrorFn error) {
  compileHook = compile;
  setStream = stream;
  takeError = error;
}

TORCH_LIBRARY(mixir, m) {
  m.def("scan(Tensor a, Tensor b, Tensor? initial_state, bool reverse, bool log_space, "
        "int block, int k) -> (Tensor, Tensor)");
  m.def("scan_backward(Tensor a, Tensor b, Tensor? initial_state, Tensor h, Tensor grad_h, "
        "Tensor grad_final, bool reverse, bool log_space, int block, int k) "
        "-> (Tensor, Tensor, Tensor)");
  // The tensor-level adjoint for what scan_backward does not cover; implemented
  // in Python (python/mixir/ops/scan.py) as a CompositeImplicitAutograd kernel.
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
