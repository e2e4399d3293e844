// RUN: mixer-opt %s -split-input-file --mixer-assign-workspace | FileCheck %s
// RUN: mixer-opt %s -split-input-file --mixer-assign-workspace=gpu=1 -verify-diagnostics -o /dev/null

// Marked scratch becomes views of the workspace argument, each at a 256-byte
// aligned offset after the previous one; @f_workspace_bytes gives the caller the
// size from the same arguments (here 256-aligned 4 * 64 * n, then 2 * n bytes).
// CHECK-LABEL: func.func @f(
// CHECK-NOT:     memref.alloc
// CHECK:         memref.view %arg2[%c0][%arg1] : memref<?xi8> to memref<?x64xf32>
// CHECK:         arith.ceildivui
// CHECK:         memref.view %arg2[%{{.*}}][%arg1] : memref<?xi8> to memref<?xbf16>
// CHECK-LABEL: func.func @f_workspace_bytes(
// CHECK-SAME:    -> i64
// CHECK:         arith.index_cast %{{.*}} : index to i64
// CHECK:         return
func.func @f(%x: memref<?xf32>, %n: index, %ws: memref<?xi8> {mixer.workspace}) {
  %a = memref.alloc(%n) {mixer.workspace} : memref<?x64xf32>
  %b = memref.alloc(%n) {mixer.workspace} : memref<?xbf16>
  %c0 = arith.constant 0 : index
  %v = memref.load %a[%c0, %c0] : memref<?x64xf32>
  memref.store %v, %x[%c0] : memref<?xf32>
  return
}

// -----

// On the CPU a function without a workspace argument keeps its scratch as
// allocations, freed before it returns.
// CHECK-LABEL: func.func @cpu_without_workspace(
// CHECK:         %[[A:.*]] = memref.alloc(%arg1) : memref<?xf32>
// CHECK:         memref.dealloc %[[A]]
// CHECK-NEXT:    return
// (With gpu=1 that is an error.)
// expected-error @+1 {{on a GPU must be the caller's: give it an argument memref<?xi8> {mixer.workspace}}}
func.func @cpu_without_workspace(%x: memref<?xf32>, %n: index) {
  %a = memref.alloc(%n) {mixer.workspace} : memref<?xf32>
  %c0 = arith.constant 0 : index
  %v = memref.load %a[%c0] : memref<?xf32>
  memref.store %v, %x[%c0] : memref<?xf32>
  return
}
