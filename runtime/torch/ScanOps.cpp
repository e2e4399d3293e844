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
#include <c10/core/impl/DeviceGuardImplInterface.h>
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
std::mutex cacheMutex;
std::unordered_map<std::string, void *> cache;

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

/// The compiled function for `spec`, compiling it through Python on a miss.
void *lookup(const std::string &spec) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(spec);
    if (it != cache.end())
      return it->second;
  }
  TORCH_CHECK(compileHook, "mixir: the compiler hook is not installed (import mixir first)");
  void *fn = compileHook(spec.c_str());
  TORCH_CHECK(fn, "mixir: compiling the specialisation ", spec, " failed (see the Python error above)");
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
    impl->exchangeDevice(previous);
    if (const char *err = takeError())
      TORCH_CHECK(false, "mixir: ", err);
    return;
  }
  reinterpret_cast<void (*)(Descs *...)>(fn)(descs...);
}

std::string baseSpec(const char *kind, const at::Tensor &a, const at::Tensor &b, bool reverse,
                      bool logSpace, int64_t block, int64_t k, bool hasInit) {
  const char *ea = elementName(a.scalar_type()), *eb = elementName(b.scalar_type());
  TORCH_CHECK(ea && eb, "mixir.scan: unsupported dtypes ", a.scalar_type(), " and ",
              b.scalar_type());
  std::string s = std::string(kind) + ";dev=" + b.device().str() + ";a=" + ea + ";b=" + eb +
                  ";block=" + std::to_string(block) + ";k=" + std::to_string(k) +
                  ";reverse=" + std::to_string(reverse) + ";log=" + std::to_string(logSpace) +
                  ";init=" + std::to_string(hasInit);
  if (b.is_cuda())
    s += ";bucket=" + std::to_string(channelBucket(b.size(2)));
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
  at::Tensor h = at::empty({B, T, D}, opts), fin = at::empty({B, D}, opts);
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
  void *fn = lookup(baseSpec("scan", a, b, reverse, logSpace, block, k, hasInit));
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
  at::Tensor ga = at::empty_like(a), gb = at::empty_like(b);
  at::Tensor g0 = hasInit ? at::empty({B, D}, h.options()) : at::empty({0}, h.options());
  if (T == 0 || B == 0 || D == 0) {
    ga.zero_();
    gb.zero_();
    if (hasInit)
      g0.copy_(gradFinal);
    return {ga, gb, g0};
  }
  std::string spec = baseSpec("adjoint", a, b, reverse, logSpace, block, k, hasInit);
  if (b.is_cuda())
    spec += ";int32=" + std::to_string(block != 0 && fitsInt32({&a, &b, &h, &gradH, &ga, &gb}));
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
}

TORCH_LIBRARY_IMPL(mixir, CPU, m) {
  m.impl("scan", &scan);
  m.impl("scan_backward", &scanBackward);
}

TORCH_LIBRARY_IMPL(mixir, CUDA, m) {
  m.impl("scan", &scan);
  m.impl("scan_backward", &scanBackward);
}
