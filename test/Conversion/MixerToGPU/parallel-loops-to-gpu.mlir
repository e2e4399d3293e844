// RUN: mixer-opt %s --mixer-parallel-loops-to-gpu | FileCheck %s
// RUN: mixer-opt %s --mixer-parallel-loops-to-gpu --gpu-kernel-outlining --mixer-set-kernel-index-width | FileCheck %s --check-prefix=WIDTH

// A configured outermost scf.parallel becomes one gpu.launch: the loop tiled by
// the config's block (128 threads on x, ceil(n / 128) blocks), a bounds check for
// the partial block. index_bitwidth = 32 names the kernel ..._i32 and records it
// on the function; mixer-set-kernel-index-width then gives the outlined module a
// 32-bit index data layout.
// CHECK-LABEL: func.func @copy
// CHECK-SAME:    mixer.kernel_index_bitwidth = {copy_kernel_i32 = 32 : i64}
// CHECK:         %[[BLOCKS:.*]] = affine.apply #{{.*}}()[%{{.*}}]
// CHECK:         gpu.launch blocks({{.*}}) in ({{.*}} = %[[BLOCKS]], {{.*}} = %c1, {{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c128, {{.*}} = %c1, {{.*}} = %c1) module(@copy_kernel_i32) function(@copy_kernel_i32)
// CHECK:           arith.cmpi ult
// CHECK:           scf.if
// CHECK-NOT:     scf.parallel
// WIDTH:         gpu.module @copy_kernel_i32 attributes {dlti.dl_spec = #dlti.dl_spec<index = 32 : i64>}
func.func @copy(%x: memref<?xf32>, %y: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %v = memref.load %x[%i] : memref<?xf32>
    memref.store %v, %y[%i] : memref<?xf32>
    scf.reduce
  } {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, block = [128, 1, 1], index_bitwidth = 32>}
  return
}
