/*===- mixir-c/Calls.h - mixer op calls from facts, compiled -----*- C -*-===*
 *
 * How a frontend (the C++ torch ops, Python) asks for the kernel of one op
 * call without writing IR: it states the op, its operands as the caller's
 * tensors are (dtype, sizes, strides, alignment) and the op's attributes; the
 * compiler builds the `mixer` IR (through the ODS-generated builders), the
 * strategy chooses the kernel from those facts, and the result comes from
 * the compile cache. Nothing here restates a kernel decision.
 *
 * The generated function is named after the op (`scan`, `linear_attention`,
 * ...), with the operands as arguments in the order given (memrefs as strided
 * descriptors, rank-0 operands by value), and for linear attention a last
 * argument `memref<?xi8>`: the workspace, whose size `<op>_workspace_bytes`
 * (same arguments; the workspace may be a null descriptor) returns. A module records which sizes it was specialised on
 * (mixir_module_static_dims): a call whose sizes differ there needs another
 * module; every other size is read at run time.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MIXIR_C_CALLS_H
#define MIXIR_C_CALLS_H

#include "mixir-c/Compiler.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum MixirDType {
  MIXIR_F16 = 0,
  MIXIR_BF16 = 1,
  MIXIR_F32 = 2,
  MIXIR_F64 = 3,
  MIXIR_C64 = 4,
  MIXIR_C128 = 5,
  MIXIR_I32 = 6,
  MIXIR_I64 = 7,
} MixirDType;

#define MIXIR_MAX_RANK 6

typedef struct MixirOperand {
  /* The op's operand name, as in its ODS: "gates", "inputs", "initial_state",
   * "output", "final_state", "states", "output_grad", "query", "key",
   * "value", "log_decay", "beta", "input_gate", "scale", "offsets", ... */
  const char *role;
  int32_t dtype; /* MixirDType */
  int32_t rank;  /* 0: a scalar passed by value (`scale`) */
  int64_t sizes[MIXIR_MAX_RANK];
  int64_t strides[MIXIR_MAX_RANK]; /* in elements; may be negative */
  /* Bytes (a power of 2, at most 16) that divide the address of element
   * (0, ..., 0) and every stride (in bytes) of a dimension longer than 1 whose
   * stride is not 1. */
  uint32_t alignment;
} MixirOperand;

typedef struct MixirCall {
  /* "scan", "scan_adjoint", "linear_attention", "linear_attention_adjoint". */
  const char *op;
  const MixirOperand *operands;
  size_t num_operands;
  /* The op's attributes as an MLIR attribute dictionary, or NULL:
   * "{window = #mixer.window<jagged, block = 16, k = 2>, log_space}",
   * "{epsilon = 1.0e-6 : f64}"; a `mixer.lowering_config` entry overrides
   * the strategy (tests, sweeps). */
  const char *attributes;
  const char *target;    /* "cpu" or a CUDA architecture such as "sm_90a" */
  int64_t sm_count;      /* the GPU's, 0 if unknown */
  int64_t shared_memory; /* opt-in shared memory per block, bytes; 0 if unknown */
  /* Nonzero when every element offset of every operand is below 2^31. */
  int32_t offsets_fit_i32;
} MixirCall;

/* The `mixer` IR of `call` (malloc'd; free with mixir_free_string), or NULL
 * with the reason in *error. */
MIXIR_EXPORT char *mixir_build_call(const MixirCall *call, char **error);

/* The IR of `call` compiled for its target through the compile cache
 * (mixir_compile_cached; GPU targets get their host code, which launches
 * through `runtime_library`). The module belongs to the cache. */
MIXIR_EXPORT MixirModule *mixir_compile_call(const MixirCall *call, const char *runtime_library,
                                             char **error);

/* The sizes a module built from a call was specialised on, as (operand index,
 * dimension) pairs: *pairs points at 2 * n int32 values owned by the module. */
MIXIR_EXPORT size_t mixir_module_static_dims(MixirModule *module, const int32_t **pairs);

/* The dtype in which a recurrence over inputs of these dtypes is carried, as
 * the ops' builders choose it: float32 for 16/32-bit inputs, float64 if any
 * input is 64-bit, complex if any input is complex. */
MIXIR_EXPORT int32_t mixir_state_dtype(const int32_t *dtypes, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* MIXIR_C_CALLS_H */
