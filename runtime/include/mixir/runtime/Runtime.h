/*===- mixir/runtime/Runtime.h - the GPU runtime's C ABI -----------*- C -*-===*
 *
 * libmixir_runtime.so launches the kernels that the compiler's host code asks
 * for. The host side of every compiled mixer is itself generated (MLIR's
 * gpu-to-llvm lowering), and it calls the `mgpu*` functions defined here:
 *
 *   mgpuModuleLoad / mgpuModuleLoadJIT   (global constructor of the JIT'd code)
 *   mgpuModuleGetFunction, mgpuLaunchKernel, mgpuStream{Create,Synchronize,Destroy}
 *
 * The CUDA driver (libcuda.so.1) is opened at the first launch, so a CPU-only
 * host loads this library and compiles GPU code without error. Modules are
 * loaded lazily per device; kernels run on the stream the caller set with
 * mixir_runtime_set_stream (the caller's current torch stream), which is also
 * why "stream create/synchronize/destroy" are no-ops here: launches stay
 * asynchronous and ordered on that stream, so CUDA graphs can capture them.
 *
 * Launch errors cannot be returned through the generated code; they are kept
 * per thread and read with mixir_runtime_take_error after the call.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MIXIR_RUNTIME_RUNTIME_H
#define MIXIR_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIXIR_RUNTIME_EXPORT __attribute__((visibility("default")))

/* The CUstream the next launches of this thread go to (NULL: legacy default). */
MIXIR_RUNTIME_EXPORT void mixir_runtime_set_stream(void *stream);

/* The first error since the last call (CUDA error name, kernel name), or NULL.
 * The string stays valid until the next call on this thread. */
MIXIR_RUNTIME_EXPORT const char *mixir_runtime_take_error(void);

/* What the compiler's strategy needs to know of CUDA device `ordinal`: its
 * compute capability, multiprocessors and opt-in shared memory per block
 * (bytes). Returns 0 (and sets nothing) without a driver or device. */
MIXIR_RUNTIME_EXPORT int mixir_runtime_device_facts(int ordinal, int *major, int *minor,
                                                    int64_t *smCount, int64_t *sharedMemory);

/* Number of kernel launches issued by this process (for tests). */
MIXIR_RUNTIME_EXPORT uint64_t mixir_runtime_launch_count(void);

/* The ABI of MLIR's GPU host lowering (see mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp). */
MIXIR_RUNTIME_EXPORT void *mgpuModuleLoad(void *data, size_t size);
MIXIR_RUNTIME_EXPORT void *mgpuModuleLoadJIT(void *data, int optLevel);
MIXIR_RUNTIME_EXPORT void mgpuModuleUnload(void *module);
MIXIR_RUNTIME_EXPORT void *mgpuModuleGetFunction(void *module, const char *name);
MIXIR_RUNTIME_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                           intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                                           intptr_t blockZ, int32_t smem, void *stream,
                                           void **params, void **extra, size_t paramsCount);
MIXIR_RUNTIME_EXPORT void *mgpuStreamCreate(void);
MIXIR_RUNTIME_EXPORT void mgpuStreamSynchronize(void *stream);
MIXIR_RUNTIME_EXPORT void mgpuStreamDestroy(void *stream);

#ifdef __cplusplus
}
#endif

#endif /* MIXIR_RUNTIME_RUNTIME_H */
