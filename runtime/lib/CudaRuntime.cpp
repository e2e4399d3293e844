//===- CudaRuntime.cpp - mgpu* on top of a dlopen'd CUDA driver -----------===//

#include "mixir/runtime/Runtime.h"

#include <dlfcn.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

// The few driver types we use, declared here so the library builds without
// the CUDA toolkit (their ABI is fixed by the driver).
using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

struct Driver {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuCtxGetCurrent)(CUcontext *);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxGetDevice)(CUdevice *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  std::string loadError;
};

thread_local CUstream currentStream = nullptr;
thread_local std::string pendingError, returnedError;
std::atomic<uint64_t> launches{0};

void setError(const std::string &message) {
  if (pendingError.empty())
    pendingError = message;
}

/// Opens libcuda.so.1 once; nullptr (with the reason recorded) if unavailable.
const Driver *driver() {
  static Driver d;
  static bool ok = [] {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *why = dlerror();
      d.loadError = std::string("cannot open libcuda.so.1 (no NVIDIA driver on this host?): ") +
                    (why ? why : "");
      return false;
    }
    std::string missing;
    auto get = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
      if (!fn && missing.empty())
        missing = name;
    };
    get(d.cuInit, "cuInit");
    get(d.cuCtxGetCurrent, "cuCtxGetCurrent");
    get(d.cuCtxSetCurrent, "cuCtxSetCurrent");
    get(d.cuCtxGetDevice, "cuCtxGetDevice");
    get(d.cuDeviceGet, "cuDeviceGet");
    get(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    get(d.cuModuleLoadData, "cuModuleLoadData");
    get(d.cuModuleGetFunction, "cuModuleGetFunction");
    get(d.cuFuncSetAttribute, "cuFuncSetAttribute");
    get(d.cuLaunchKernel, "cuLaunchKernel");
    get(d.cuGetErrorName, "cuGetErrorName");
    get(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    if (!missing.empty()) {
      d.loadError = "libcuda.so.1 lacks the driver API function " + missing;
      return false;
    }
    if (CUresult r = d.cuInit(0); r != CUDA_SUCCESS) {
      d.loadError = "cuInit failed with error " + std::to_string(r);
      return false;
    }
    return true;
  }();
  if (!ok)
    setError(d.loadError);
  return ok ? &d : nullptr;
}

std::string errorName(const Driver *d, CUresult r) {
  const char *name = nullptr;
  if (d && d->cuGetErrorName && d->cuGetErrorName(r, &name) == CUDA_SUCCESS && name)
    return name;
  return "CUDA error " + std::to_string(r);
}

/// The device of the current context; makes device 0's primary context
/// current when the thread has none (as Triton's launcher does).
bool currentDevice(const Driver *d, CUdevice &device) {
  CUcontext ctx = nullptr;
  if (d->cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx) {
    CUdevice dev0;
    if (d->cuDeviceGet(&dev0, 0) != CUDA_SUCCESS ||
        d->cuDevicePrimaryCtxRetain(&ctx, dev0) != CUDA_SUCCESS ||
        d->cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
      setError("mixir runtime: no CUDA context and none could be made current");
      return false;
    }
  }
  return d->cuCtxGetDevice(&device) == CUDA_SUCCESS;
}

/// A binary embedded in JIT'd host code, loaded per device on first use.
struct Module {
  const void *image;
  std::mutex mutex;
  std::map<CUdevice, CUmodule> loaded;
  std::map<std::string, struct Function *> functions;
  // The generated code passes the same constant name on every launch: look it
  // up by address first, without building a string.
  std::map<const char *, struct Function *> byAddress;
};

struct Function {
  Module *module;
  std::string name;
  std::mutex mutex;
  std::map<CUdevice, CUfunction> loaded;
  // Fast path of every launch after the first: the last device and its
  // function, read without the lock (written once per device under it).
  std::atomic<int> lastDevice{-1};
  std::atomic<CUfunction> lastFunction{nullptr};
};

CUfunction resolve(const Driver *d, Function *f, CUdevice device, int32_t smem) {
  if (f->lastDevice.load(std::memory_order_acquire) == device)
    if (CUfunction fn = f->lastFunction.load(std::memory_order_acquire))
      return fn;
  std::lock_guard<std::mutex> lock(f->mutex);
  auto it = f->loaded.find(device);
  if (it != f->loaded.end()) {
    f->lastFunction.store(it->second, std::memory_order_release);
    f->lastDevice.store(device, std::memory_order_release);
    return it->second;
  }
  CUmodule mod;
  {
    Module *m = f->module;
    std::lock_guard<std::mutex> mlock(m->mutex);
    auto mit = m->loaded.find(device);
    if (mit == m->loaded.end()) {
      if (CUresult r = d->cuModuleLoadData(&mod, m->image); r != CUDA_SUCCESS) {
        setError(errorName(d, r) + " loading the module of kernel '" + f->name + "'");
        return nullptr;
      }
      mit = m->loaded.emplace(device, mod).first;
    }
    mod = mit->second;
  }
  CUfunction fn;
  if (CUresult r = d->cuModuleGetFunction(&fn, mod, f->name.c_str()); r != CUDA_SUCCESS) {
    setError(errorName(d, r) + " looking up kernel '" + f->name + "'");
    return nullptr;
  }
  // Above 48 KB, dynamic shared memory must be opted into per function.
  if (smem > 48 * 1024)
    d->cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
  f->loaded.emplace(device, fn);
  f->lastFunction.store(fn, std::memory_order_release);
  f->lastDevice.store(device, std::memory_order_release);
  return fn;
}

} // namespace

extern "C" {

void mixir_runtime_set_stream(void *stream) { currentStream = static_cast<CUstream>(stream); }

const char *mixir_runtime_take_error(void) {
  if (pendingError.empty())
    return nullptr;
  returnedError = std::move(pendingError);
  pendingError.clear();
  return returnedError.c_str();
}

uint64_t mixir_runtime_launch_count(void) { return launches.load(); }

// Loading is deferred to the first launch on each device: the generated code
// runs this from a global constructor, when no GPU need be present.
void *mgpuModuleLoad(void *data, size_t) {
  auto *m = new Module();
  m->image = data;
  return m;
}
void *mgpuModuleLoadJIT(void *data, int optLevel) { return mgpuModuleLoad(data, 0); }

void mgpuModuleUnload(void *module) {
  // Device modules live until process exit: a kernel may still be queued on
  // a stream when the JIT'd code is destroyed.
  (void)module;
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  // Called before every launch by the generated code: return a cached handle.
  auto *m = static_cast<Module *>(module);
  std::lock_guard<std::mutex> lock(m->mutex);
  auto hit = m->byAddress.find(name);
  if (hit != m->byAddress.end())
    return hit->second;
  Function *&f = m->functions[name];
  if (!f) {
    f = new Function();
    f->module = m;
    f->name = name;
  }
  m->byAddress.emplace(name, f);
  return f;
}

void *mgpuStreamCreate(void) { return currentStream; }
void mgpuStreamSynchronize(void *) {}
void mgpuStreamDestroy(void *) {}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY, intptr_t gridZ,
                      intptr_t blockX, intptr_t blockY, intptr_t blockZ, int32_t smem,
                      void *stream, void **params, void **extra, size_t) {
  auto *f = static_cast<Function *>(function);
  // An empty grid (a dimension of size 0) is nothing to do, not an error.
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0)
    return;
  if (gridY > 65535 || gridZ > 65535) {
    setError("mixir runtime: grid (" + std::to_string(gridX) + ", " + std::to_string(gridY) +
             ", " + std::to_string(gridZ) + ") of kernel '" + f->name +
             "' exceeds the 65535 limit of grid y/z");
    return;
  }
  const Driver *d = driver();
  if (!d)
    return;
  CUdevice device;
  if (!currentDevice(d, device))
    return;
  CUfunction fn = resolve(d, f, device, smem);
  if (!fn)
    return;
  CUresult r = d->cuLaunchKernel(fn, gridX, gridY, gridZ, blockX, blockY, blockZ, smem,
                                 static_cast<CUstream>(stream), params, extra);
  if (r != CUDA_SUCCESS)
    setError(errorName(d, r) + " launching kernel '" + f->name + "'");
  else
    launches.fetch_add(1, std::memory_order_relaxed);
}

} // extern "C"

extern "C" MIXIR_RUNTIME_EXPORT int mixir_runtime_device_facts(int ordinal, int *major,
                                                               int *minor, int64_t *smCount,
                                                               int64_t *sharedMemory) {
  // CU_DEVICE_ATTRIBUTE_*: compute capability 75/76, multiprocessors 16,
  // opt-in shared memory per block 97.
  const Driver *d = driver();
  CUdevice device;
  if (!d || d->cuDeviceGet(&device, ordinal) != CUDA_SUCCESS)
    return 0;
  int values[4] = {0, 0, 0, 0};
  const int attributes[4] = {75, 76, 16, 97};
  for (int i = 0; i < 4; ++i)
    if (d->cuDeviceGetAttribute(&values[i], attributes[i], device) != CUDA_SUCCESS)
      return 0;
  *major = values[0];
  *minor = values[1];
  *smCount = values[2];
  *sharedMemory = values[3];
  return 1;
}
