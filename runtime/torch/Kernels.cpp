//===- Kernels.cpp - calls of compiled mixer ops from torch ops -----------===//
//
// The warm path of a call: facts of the tensors -> kernel-cache lookup ->
// descriptors -> (workspace) -> launch, all in C++. A miss builds the call
// through libmixir_c (dlopen'd: the compiler is a C ABI, never Python) and
// keeps the compiled module's functions for the life of the process.
//
// The cache key is what the compiler may specialise on (Calls.h): the op and
// the flags its attributes depend on, the device, per operand its role, dtype,
// rank, which dimensions have unit stride and its alignment, and whether
// 32-bit offsets suffice. Sizes are not in the key, except those the module
// reports it made static (a scan's channels, head dimensions): entries of one
// key are told apart by them.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "mixir-c/Calls.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <mutex>
#include <unistd.h>
#include <unordered_map>

namespace mixir_torch {
namespace {

// --- The compiler and the runtime, opened by mixir_torch_install -----------

struct Libraries {
  MixirModule *(*compileCall)(const MixirCall *, const char *, char **) = nullptr;
  void *(*lookupPacked)(MixirModule *, const char *) = nullptr;
  size_t (*staticDims)(MixirModule *, const int32_t **) = nullptr;
  int32_t (*stateDtype)(const int32_t *, size_t) = nullptr;
  void (*freeString)(char *) = nullptr;
  void (*setStream)(void *) = nullptr;
  const char *(*takeError)() = nullptr;
  int (*deviceFacts)(int, int *, int *, int64_t *, int64_t *) = nullptr;
  std::string runtimePath;
};

Libraries libs;

template <typename F> void resolve(void *lib, F &fn, const char *name, std::string &missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn && missing.empty())
    missing = name;
}

int32_t dtypeOf(at::ScalarType t) {
  switch (t) {
  case at::kHalf: return MIXIR_F16;
  case at::kBFloat16: return MIXIR_BF16;
  case at::kFloat: return MIXIR_F32;
  case at::kDouble: return MIXIR_F64;
  case at::kComplexFloat: return MIXIR_C64;
  case at::kComplexDouble: return MIXIR_C128;
  case at::kInt: return MIXIR_I32;
  case at::kLong: return MIXIR_I64;
  default: return -1;
  }
}

at::ScalarType scalarTypeOf(int32_t d) {
  switch (d) {
  case MIXIR_F16: return at::kHalf;
  case MIXIR_BF16: return at::kBFloat16;
  case MIXIR_F32: return at::kFloat;
  case MIXIR_F64: return at::kDouble;
  case MIXIR_C64: return at::kComplexFloat;
  case MIXIR_C128: return at::kComplexDouble;
  case MIXIR_I32: return at::kInt;
  default: return at::kLong;
  }
}

// --- Facts --------------------------------------------------------------------

struct Facts {
  MixirOperand operand{};
  int64_t unitMask = 0; // dimensions with stride 1
  int64_t offset = 0;   // of element (0, ..., 0), in elements (time reversed)
  void *data = nullptr;
};

Facts factsOf(const Operand &o, bool &fits32) {
  Facts f;
  f.operand.role = o.role;
  if (!o.tensor) {
    f.operand.dtype = dtypeOf(o.scalarType);
    f.operand.rank = 0;
    return f;
  }
  const at::Tensor &t = *o.tensor;
  TORCH_CHECK(t.dim() <= MIXIR_MAX_RANK, "mixir: operand ", o.role, " has rank ", t.dim());
  int32_t dtype = dtypeOf(t.scalar_type());
  TORCH_CHECK(dtype >= 0, "mixir: operand ", o.role, " has unsupported dtype ", t.scalar_type());
  f.operand.dtype = dtype;
  f.operand.rank = static_cast<int32_t>(t.dim());
  int64_t element = static_cast<int64_t>(t.element_size());
  int64_t extent = 0;
  uint64_t bits = 16; // the alignment cap: what vector moves need
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t size = t.size(d), stride = t.stride(d);
    if (o.reversedTime && d == 1) {
      f.offset = size > 0 ? (size - 1) * stride : 0;
      stride = -stride;
    }
    f.operand.sizes[d] = size;
    f.operand.strides[d] = stride;
    if (stride == 1)
      f.unitMask |= int64_t(1) << d;
    if (size > 1) {
      extent += (size - 1) * std::abs(stride);
      if (stride != 1)
        bits |= static_cast<uint64_t>(std::abs(stride) * element);
    }
  }
  fits32 = fits32 && extent <= INT32_MAX;
  f.data = t.data_ptr();
  bits |= reinterpret_cast<uintptr_t>(f.data) + static_cast<uint64_t>(f.offset * element);
  // The largest power of 2 (at most 16) dividing all of them.
  f.operand.alignment = static_cast<uint32_t>(bits & (~bits + 1));
  if (f.operand.alignment > 16)
    f.operand.alignment = 16;
  return f;
}

// --- The kernel cache ---------------------------------------------------------

struct Kernel {
  void (*call)(void **) = nullptr;
  void (*workspaceBytes)(void **) = nullptr;
  std::vector<std::array<int64_t, 3>> staticSizes; // (operand, dimension, size)
  bool unsupported = false;
  std::string why;
};

using Key = std::vector<int64_t>;

struct KeyHash {
  size_t operator()(const Key &k) const {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t v : k)
      h = (h ^ static_cast<uint64_t>(v)) * 0x100000001b3ULL;
    return h;
  }
};

std::mutex cacheMutex;
std::unordered_map<Key, std::vector<Kernel *>, KeyHash> cache;

struct Target {
  std::string chip = "cpu";
  int64_t smCount = 0, sharedMemory = 0;
};

const Target &targetOf(const c10::Device &device) {
  static std::mutex mutex;
  static std::unordered_map<int, Target> targets;
  static const Target cpu;
  if (!device.is_cuda())
    return cpu;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, inserted] = targets.try_emplace(device.index());
  if (inserted) {
    int major = 0, minor = 0;
    int64_t sms = 0, smem = 0;
    TORCH_CHECK(libs.deviceFacts && libs.deviceFacts(device.index(), &major, &minor, &sms, &smem),
                "mixir: cannot read the facts of CUDA device ", device.index(),
                " (no driver?)");
    // Hopper's arch-specific features need the "a" target (as Triton does).
    it->second.chip = "sm_" + std::to_string(major) + std::to_string(minor) +
                      (major == 9 ? "a" : "");
    it->second.smCount = sms;
    it->second.sharedMemory = smem;
  }
  return it->second;
}

/// Appends the call to $MIXIR_RECORD (one JSON line per compiled call), from
/// which scripts/precompile.py builds the same kernels ahead of time.
void record(const MixirCall &c) {
  const char *path = std::getenv("MIXIR_RECORD");
  if (!path || !*path)
    return;
  std::string line = std::string("{\"op\": \"") + c.op + "\", \"target\": \"" + c.target +
                     "\", \"sm_count\": " + std::to_string(c.sm_count) +
                     ", \"shared_memory\": " + std::to_string(c.shared_memory) +
                     ", \"offsets_fit_i32\": " + std::to_string(c.offsets_fit_i32) +
                     ", \"attributes\": \"";
  for (const char *p = c.attributes ? c.attributes : ""; *p; ++p) {
    if (*p == '"' || *p == '\\')
      line += '\\';
    line += *p;
  }
  line += "\", \"operands\": [";
  for (size_t i = 0; i < c.num_operands; ++i) {
    const MixirOperand &o = c.operands[i];
    line += std::string(i ? ", " : "") + "{\"role\": \"" + o.role +
            "\", \"dtype\": " + std::to_string(o.dtype) + ", \"sizes\": [";
    for (int d = 0; d < o.rank; ++d)
      line += (d ? ", " : "") + std::to_string(o.sizes[d]);
    line += "], \"strides\": [";
    for (int d = 0; d < o.rank; ++d)
      line += (d ? ", " : "") + std::to_string(o.strides[d]);
    line += "], \"alignment\": " + std::to_string(o.alignment) + "}";
  }
  line += "]}\n";
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    ssize_t ignored = write(fd, line.data(), line.size()); // one write: lines never interleave
    (void)ignored;
    close(fd);
  }
}

Kernel *compile(Call &call, std::vector<Facts> &facts, bool fits32) {
  const Target &target = targetOf(call.device);
  if (call.describe)
    call.describe(call);
  std::vector<MixirOperand> operands;
  for (const Facts &f : facts)
    operands.push_back(f.operand);
  MixirCall c{call.op,
              operands.data(),
              operands.size(),
              call.attributes.c_str(),
              target.chip.c_str(),
              target.smCount,
              target.sharedMemory,
              fits32 ? 1 : 0};
  TORCH_CHECK(libs.compileCall, "mixir: the compiler is not installed (import mixir first)");
  record(c);
  char *error = nullptr;
  MixirModule *module = libs.compileCall(&c, libs.runtimePath.c_str(), &error);
  auto *kernel = new Kernel();
  if (!module) {
    std::string message = error ? error : "unknown error";
    if (error)
      libs.freeString(error);
    // The compiler rejects calls of ops it does not define (their verifiers);
    // the caller may then take another way. Anything else is an error.
    if (message.find("does not make a valid op") == std::string::npos) {
      delete kernel;
      TORCH_CHECK(false, "mixir: compiling ", call.op, " failed: ", message);
    }
    kernel->unsupported = true;
    kernel->why = message;
    return kernel;
  }
  std::string name = std::string("_mlir_ciface_") + call.op;
  kernel->call = reinterpret_cast<void (*)(void **)>(libs.lookupPacked(module, name.c_str()));
  kernel->workspaceBytes = reinterpret_cast<void (*)(void **)>(
      libs.lookupPacked(module, (name + "_workspace_bytes").c_str()));
  TORCH_CHECK(kernel->call, "mixir: the compiled module of ", call.op, " has no call function");
  const int32_t *pairs = nullptr;
  size_t n = libs.staticDims(module, &pairs);
  for (size_t i = 0; i < n; ++i) {
    int32_t o = pairs[2 * i], d = pairs[2 * i + 1];
    kernel->staticSizes.push_back({o, d, facts[o].operand.sizes[d]});
  }
  return kernel;
}

/// A memref descriptor of any rank up to MIXIR_MAX_RANK: {allocated, aligned,
/// offset, sizes[rank], strides[rank]} laid out as the ciface expects.
struct Descriptor {
  void *allocated = nullptr, *aligned = nullptr;
  int64_t offset = 0;
  int64_t sizesAndStrides[2 * MIXIR_MAX_RANK] = {};
};

Descriptor descriptorOf(const Facts &f) {
  Descriptor d;
  d.allocated = d.aligned = f.data;
  d.offset = f.offset;
  for (int i = 0; i < f.operand.rank; ++i) {
    d.sizesAndStrides[i] = f.operand.sizes[i];
    d.sizesAndStrides[f.operand.rank + i] = f.operand.strides[i];
  }
  return d;
}

/// Calls `fn` (packed) with `args`, on the stream of `device`.
void launch(void (*fn)(void **), void **args, const c10::Device &device) {
  if (!device.is_cuda()) {
    fn(args);
    return;
  }
  TORCH_CHECK(libs.setStream && libs.takeError, "mixir: the GPU runtime is not installed");
  auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
  c10::Device previous = impl->exchangeDevice(device);
  libs.setStream(impl->getStream(device).native_handle());
  fn(args);
  if (previous != device)
    impl->exchangeDevice(previous);
  if (const char *err = libs.takeError())
    TORCH_CHECK(false, "mixir: ", err);
}

} // namespace

at::ScalarType stateType(std::initializer_list<at::ScalarType> inputs) {
  std::array<int32_t, 8> dtypes{};
  size_t n = 0;
  for (at::ScalarType t : inputs)
    dtypes[n++] = dtypeOf(t);
  TORCH_CHECK(libs.stateDtype, "mixir: the compiler is not installed (import mixir first)");
  return scalarTypeOf(libs.stateDtype(dtypes.data(), n));
}

bool run(Call &call, std::string *unsupported) {
  bool fits32 = true;
  std::vector<Facts> facts;
  facts.reserve(call.operands.size());
  for (const Operand &o : call.operands)
    facts.push_back(factsOf(o, fits32));
  Key key;
  key.reserve(8 + 4 * facts.size());
  for (const char *p = call.op; *p; ++p)
    key.push_back(*p);
  key.push_back(static_cast<int64_t>(call.device.type()));
  key.push_back(call.device.index());
  key.insert(key.end(), call.flags.begin(), call.flags.end());
  key.push_back(fits32);
  for (const Facts &f : facts) {
    // The role too: a plain delta rule's beta [B, T, H] has the facts of a
    // simple GLA's gate g, so without it one's kernel ran the other's calls.
    for (const char *p = f.operand.role; *p; ++p)
      key.push_back(*p);
    key.push_back(-1);
    key.push_back(f.operand.dtype);
    key.push_back(f.operand.rank);
    key.push_back(f.unitMask);
    key.push_back(f.operand.alignment);
  }
  Kernel *kernel = nullptr;
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(key);
    if (it != cache.end())
      for (Kernel *k : it->second) {
        bool same = true;
        for (const auto &[o, d, size] : k->staticSizes)
          same = same && facts[o].operand.sizes[d] == size;
        if (same) {
          kernel = k;
          break;
        }
      }
  }
  if (!kernel) {
    kernel = compile(call, facts, fits32);
    std::lock_guard<std::mutex> lock(cacheMutex);
    cache[key].push_back(kernel);
  }
  if (kernel->unsupported) {
    if (unsupported)
      *unsupported = kernel->why;
    TORCH_CHECK(unsupported, "mixir: ", kernel->why);
    return false;
  }

  // Arguments: a pointer to each descriptor pointer or scalar, then (linear
  // attention) the workspace.
  size_t n = facts.size();
  std::vector<Descriptor> descriptors(n + 1);
  std::vector<void *> pointers(n + 1);
  std::vector<double> doubles(n);
  std::vector<float> floats(n);
  std::vector<void *> args(n + 2);
  for (size_t i = 0; i < n; ++i) {
    const Operand &o = call.operands[i];
    if (!o.tensor) {
      if (o.scalarType == at::kDouble) {
        doubles[i] = o.scalar;
        args[i] = &doubles[i];
      } else {
        floats[i] = static_cast<float>(o.scalar);
        args[i] = &floats[i];
      }
      continue;
    }
    descriptors[i] = descriptorOf(facts[i]);
    pointers[i] = &descriptors[i];
    args[i] = &pointers[i];
  }
  at::Tensor workspace;
  size_t nargs = n;
  if (std::strncmp(call.op, "linear_attention", 16) == 0) {
    // The workspace: a null descriptor first, then as many bytes as the
    // module's size function asks for.
    descriptors[n] = Descriptor{};
    descriptors[n].sizesAndStrides[1] = 1;
    pointers[n] = &descriptors[n];
    args[n] = &pointers[n];
    nargs = n + 1;
    if (kernel->workspaceBytes) {
      int64_t bytes = 0;
      args[nargs] = &bytes;
      kernel->workspaceBytes(args.data());
      if (bytes > 0) {
        workspace = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).device(call.device));
        descriptors[n].allocated = descriptors[n].aligned = workspace.data_ptr();
        descriptors[n].sizesAndStrides[0] = bytes;
      }
    }
  }
  // MIXIR_TRACE_OPERANDS=1: each operand's byte range and its storage's, to
  // attribute a compute-sanitizer report's address to an operand.
  static const bool trace = std::getenv("MIXIR_TRACE_OPERANDS") != nullptr;
  if (trace) {
    for (size_t i = 0; i < n; ++i) {
      const Operand &o = call.operands[i];
      if (!o.tensor || !o.tensor->defined())
        continue;
      const at::Tensor &t = *o.tensor;
      auto *base = static_cast<const char *>(t.storage().data());
      fprintf(stderr, "mixir-trace %s %s data %p storage [%p, %p) sizes %s strides %s\n",
              call.op, o.role, t.data_ptr(), static_cast<const void *>(base),
              static_cast<const void *>(base + t.storage().nbytes()),
              c10::str(t.sizes()).c_str(), c10::str(t.strides()).c_str());
    }
    if (workspace.defined())
      fprintf(stderr, "mixir-trace %s workspace [%p, %p)\n", call.op, workspace.data_ptr(),
              static_cast<const void *>(static_cast<char *>(workspace.data_ptr()) +
                                        workspace.nbytes()));
  }
  launch(kernel->call, args.data(), call.device);
  return true;
}

} // namespace mixir_torch

extern "C" __attribute__((visibility("default"))) const char *
mixir_torch_install(const char *compilerPath, const char *runtimePath) {
  using namespace mixir_torch;
  static std::string error;
  void *compiler = dlopen(compilerPath, RTLD_NOW | RTLD_LOCAL);
  if (!compiler)
    return (error = std::string("cannot open ") + compilerPath + ": " + dlerror()).c_str();
  void *runtime = dlopen(runtimePath, RTLD_NOW | RTLD_LOCAL);
  if (!runtime)
    return (error = std::string("cannot open ") + runtimePath + ": " + dlerror()).c_str();
  std::string missing;
  resolve(compiler, libs.compileCall, "mixir_compile_call", missing);
  resolve(compiler, libs.lookupPacked, "mixir_module_lookup_packed", missing);
  resolve(compiler, libs.staticDims, "mixir_module_static_dims", missing);
  resolve(compiler, libs.stateDtype, "mixir_state_dtype", missing);
  resolve(compiler, libs.freeString, "mixir_free_string", missing);
  resolve(runtime, libs.setStream, "mixir_runtime_set_stream", missing);
  resolve(runtime, libs.takeError, "mixir_runtime_take_error", missing);
  resolve(runtime, libs.deviceFacts, "mixir_runtime_device_facts", missing);
  if (!missing.empty())
    return (error = "the libraries lack " + missing).c_str();
  libs.runtimePath = runtimePath;
  return nullptr;
}
