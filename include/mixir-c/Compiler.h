/*===- mixir-c/Compiler.h - C ABI of the mixir compiler ------------*- C -*-===*
 *
 * The only symbols libmixir_c.so exports. IR text goes in; out comes either a
 * host module (target "cpu") whose functions can be called, or a GPU binary
 * (target "sm_XX[a]") with its kernel metadata. Nothing here aborts the
 * process on bad input: failures return NULL and the MLIR diagnostics as text.
 *
 * CPU calling convention: functions carrying `llvm.emit_c_interface` are
 * reachable as `_mlir_ciface_<name>` and take pointers to strided memref
 * descriptors {void *allocated, void *aligned, int64 offset, int64 sizes[R],
 * int64 strides[R]} (strides in elements), in argument order.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MIXIR_C_COMPILER_H
#define MIXIR_C_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIXIR_EXPORT __attribute__((visibility("default")))

typedef struct MixirModule MixirModule;

/* Compiles `ir` (MLIR text, `ir_len` bytes) for `target`: "cpu", or a CUDA chip
 * such as "sm_90a". `options` is a pass-pipeline option string appended to the
 * pipeline (e.g. "tile-size=128 format=bin"), or NULL. On failure returns NULL
 * and, if `error` is not NULL, stores a malloc'd message there (free it with
 * mixir_free_string). */
MIXIR_EXPORT MixirModule *mixir_compile(const char *ir, size_t ir_len, const char *target,
                                        const char *options, char **error);

/* Like mixir_compile, and host code that launches GPU kernels (option
 * "host=1" of a CUDA target) resolves its mgpu* calls in `runtime_library`
 * (the path of libmixir_runtime.so). */
MIXIR_EXPORT MixirModule *mixir_compile_with_runtime(const char *ir, size_t ir_len,
                                                     const char *target, const char *options,
                                                     const char *runtime_library, char **error);

/* Loads IR that a pipeline already lowered (what mixir_module_ir returned for
 * the same target): no pass runs; host code is JIT-compiled, a GPU binary and
 * its metadata are read back. What a compile cache stores and reloads. */
MIXIR_EXPORT MixirModule *mixir_load_lowered(const char *ir, size_t ir_len, const char *target,
                                            const char *runtime_library, char **error);

/* mixir_compile_with_runtime through the compile cache: memory, then
 * $MIXIR_CACHE_DIR (default ~/.cache/mixir; MIXIR_CACHE_DISABLE=1: memory
 * only), then the compiler. The key covers the compiler build, the target,
 * the options and the IR; disk entries are written atomically. The module
 * belongs to the cache (mixir_module_destroy leaves it) and lives as long as
 * the process. */
MIXIR_EXPORT MixirModule *mixir_compile_cached(const char *ir, size_t ir_len, const char *target,
                                               const char *options, const char *runtime_library,
                                               char **error);

/* The cache key of a compile (hex SHA-256, malloc'd). */
MIXIR_EXPORT char *mixir_cache_key(const char *ir, size_t ir_len, const char *target,
                                   const char *options);

/* Counters since the library was loaded: memory hits, disk hits, compiles. */
MIXIR_EXPORT void mixir_cache_stats(uint64_t out[3]);

/* Forgets the in-memory entries (their modules stay alive): the next lookups
 * go to the disk. */
MIXIR_EXPORT void mixir_cache_clear_memory(void);

/* Frees a module from mixir_compile*, mixir_load_lowered (not a cached one). */
MIXIR_EXPORT void mixir_module_destroy(MixirModule *module);

/* Modules with host code (CPU, or GPU with "host=1"): the address of symbol
 * `name` (e.g. "_mlir_ciface_scan"), or NULL. */
MIXIR_EXPORT void *mixir_module_lookup(MixirModule *module, const char *name);

/* The packed form of host function `name` (e.g. "_mlir_ciface_call"):
 * void f(void **args), args[i] pointing at argument i (a descriptor pointer,
 * or a scalar), and for a function with a result args[n] at where it goes.
 * One calling convention for any signature; NULL if absent. */
MIXIR_EXPORT void *mixir_module_lookup_packed(MixirModule *module, const char *name);

/* GPU modules: the serialized binary (PTX text for format=isa, an ELF cubin for
 * format=bin). Returns its size and points `*data` at bytes owned by the module. */
MIXIR_EXPORT size_t mixir_module_binary(MixirModule *module, const char **data);

/* JSON describing the module: target, format, and for GPU modules every kernel
 * with its name and block size. Owned by the module. */
MIXIR_EXPORT const char *mixir_module_metadata(MixirModule *module);

/* The IR after the pipeline (for debugging and tests). Owned by the module. */
MIXIR_EXPORT const char *mixir_module_ir(MixirModule *module);

/* Compiler version string; part of every cache key. */
MIXIR_EXPORT const char *mixir_version(void);

MIXIR_EXPORT void mixir_free_string(char *s);

#ifdef __cplusplus
}
#endif

#endif /* MIXIR_C_COMPILER_H */
