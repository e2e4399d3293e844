// RUN: mixer-opt %s --pass-pipeline="builtin.module(gpu.module(mixer-hoist-static-allocas))" | FileCheck %s

// A statically sized alloca nested in a branch moves to the kernel's entry
// block (where LLVM can promote it to registers); a dynamically sized one,
// whose size is computed in the branch, stays.
// CHECK-LABEL: gpu.func @k
// CHECK-NEXT:    memref.alloca() {alignment = 16 : i64} : memref<16xf32>
// CHECK:         scf.if
// CHECK:           memref.alloca(%{{.*}}) : memref<?xf32>
gpu.module @m {
  gpu.func @k(%c: i1, %n: index, %v: vector<16xf32>) kernel {
    scf.if %c {
      %c0 = arith.constant 0 : index
      %buf = memref.alloca() {alignment = 16 : i64} : memref<16xf32>
      vector.store %v, %buf[%c0] : memref<16xf32>, vector<16xf32>
      %dyn = memref.alloca(%n) : memref<?xf32>
    }
    gpu.return
  }
}
