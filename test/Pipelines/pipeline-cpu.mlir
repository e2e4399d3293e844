// RUN: mixer-opt %s --mixer-to-cpu | FileCheck %s --implicit-check-not=mixer. --implicit-check-not=scf. --implicit-check-not=memref. --implicit-check-not=complex.

// The whole CPU pipeline: only the LLVM dialect is left, with the C interface
// wrapper the runtime calls (one memref descriptor pointer per argument).
// CHECK-LABEL: llvm.func @scan
// CHECK:       llvm.intr.exp
// CHECK:       llvm.intr.cos
// CHECK:       llvm.intr.sin
// CHECK-LABEL: llvm.func @_mlir_ciface_scan
// CHECK-SAME:  (%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr)
// CHECK:       llvm.call @scan
!seq = memref<?x?x?xcomplex<f32>, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xcomplex<f32>, strided<[?, ?], offset: ?>>
func.func @scan(%a: !seq, %b: !seq, %h0: !st, %h: !seq, %f: !st) attributes {llvm.emit_c_interface} {
  mixer.scan jagged<block = 16, k = 2> log_space reverse gates(%a : !seq) inputs(%b : !seq)
      init(%h0 : !st) outs(%h : !seq) final(%f : !st)
  return
}
