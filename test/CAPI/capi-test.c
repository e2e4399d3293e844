/* Exercises the C ABI of libmixir_c the way a foreign caller would: a failing
 * compile returns diagnostics (not an abort), and a CPU module runs a scan
 * whose numbers are checked against a loop written here. */
#include "mixir-c/Compiler.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  float *allocated, *aligned;
  int64_t offset, sizes[3], strides[3];
} Memref3;

static const char *kScan =
    "func.func @scan(%a: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>,\n"
    "                %b: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>,\n"
    "                %h: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)\n"
    "    attributes {llvm.emit_c_interface} {\n"
    "  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)\n"
    "      inputs(%b : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)\n"
    "      outs(%h : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)\n"
    "  return\n"
    "}\n";

static Memref3 view(float *p, int64_t B, int64_t T, int64_t D) {
  Memref3 m = {p, p, 0, {B, T, D}, {T * D, D, 1}};
  return m;
}

int main(void) {
  /* 1. Malformed IR: NULL module and a diagnostic naming the problem. */
  char *error = NULL;
  const char *bad = "func.func @f() { mixer.scan sliding }";
  MixirModule *m = mixir_compile(bad, strlen(bad), "cpu", NULL, &error);
  if (m || !error || !strstr(error, "expected window")) {
    fprintf(stderr, "FAIL: bad IR was not diagnosed: %s\n", error ? error : "(null)");
    return 1;
  }
  printf("diagnostic: %s\n", error);
  mixir_free_string(error);

  /* 1b. Options and targets it cannot honour, and input nested deeper than
   * the parser recurses safely: refused with a diagnostic each. */
  static char deep[200000];
  size_t n = 0;
  n += (size_t)sprintf(deep, "func.func @f(%%a: ");
  for (int i = 0; i < 50000; ++i)
    deep[n++] = '[';
  deep[n] = 0;
  struct {
    const char *ir, *target, *options, *want;
  } refused[] = {
      {kScan, "sm_9999", NULL, "not a CUDA architecture"},
      {kScan, "sm_", NULL, "not a CUDA architecture"},
      {kScan, "sm_90a", "format=xyz", "format must be"},
      {kScan, "sm_90a", "features=ptx80", "features must be"},
      {kScan, "gpu", NULL, "target must be"},
      {deep, "cpu", NULL, "levels deep"},
  };
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
    error = NULL;
    m = mixir_compile(refused[i].ir, strlen(refused[i].ir), refused[i].target,
                      refused[i].options, &error);
    if (m || !error || !strstr(error, refused[i].want)) {
      fprintf(stderr, "FAIL: target %s options %s: want '%s', got: %s\n", refused[i].target,
              refused[i].options ? refused[i].options : "(none)", refused[i].want,
              error ? error : "(a module)");
      return 1;
    }
    printf("refused: %s\n", refused[i].want);
    mixir_free_string(error);
  }

  /* 2. A jagged scan on the CPU against a direct loop (spec 2.1 closed form). */
  enum { B = 2, T = 70, D = 3 };
  float *a = malloc(sizeof(float) * B * T * D), *u = malloc(sizeof(float) * B * T * D),
        *h = malloc(sizeof(float) * B * T * D);
  for (int i = 0; i < B * T * D; ++i) {
    a[i] = 0.5f + 0.45f * sinf(0.37f * i);
    u[i] = cosf(0.11f * i);
    h[i] = NAN;
  }
  m = mixir_compile(kScan, strlen(kScan), "cpu", NULL, &error);
  if (!m) {
    fprintf(stderr, "FAIL: compile: %s\n", error);
    return 1;
  }
  void (*scan)(Memref3 *, Memref3 *, Memref3 *) =
      (void (*)(Memref3 *, Memref3 *, Memref3 *))mixir_module_lookup(m, "_mlir_ciface_scan");
  if (!scan) {
    fprintf(stderr, "FAIL: _mlir_ciface_scan not found\n");
    return 1;
  }
  Memref3 ma = view(a, B, T, D), mu = view(u, B, T, D), mh = view(h, B, T, D);
  scan(&ma, &mu, &mh);
  double worst = 0;
  for (int n = 0; n < B; ++n)
    for (int d = 0; d < D; ++d)
      for (int t = 0; t < T; ++t) {
        /* Exact recurrence restarted at the start of the previous block. */
        int start = (t / 16 - 1) * 16;
        if (start < 0)
          start = 0;
        double y = 0;
        for (int s = start; s <= t; ++s)
          y = a[(n * T + s) * D + d] * y + u[(n * T + s) * D + d];
        /* Error relative to the O(1) scale of the outputs (pointwise relative
         * error is meaningless where y crosses zero). NaN fails. */
        double err = fabs(y - h[(n * T + t) * D + d]) / fmax(fabs(y), 1.0);
        if (!(err <= worst))
          worst = isnan(err) ? INFINITY : err;
      }
  mixir_module_destroy(m);
  free(a);
  free(u);
  free(h);
  if (!(worst <= 1e-5)) {
    fprintf(stderr, "FAIL: max scaled error %g > 1e-5\n", worst);
    return 1;
  }
  printf("PASS: jagged scan max scaled error %.3g (version %s)\n", worst, mixir_version());
  return 0;
}
