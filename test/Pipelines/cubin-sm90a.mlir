// REQUIRES: ptxas
// RUN: mixer-opt %s --mixer-to-nvvm="toolkit=%cuda_toolkit format=bin" | FileCheck %s

// ptxas (format=bin) validates the PTX for sm_90a: registers, ISA, linkage.
// The object is an ELF cubin.
// CHECK: gpu.binary @scan_kernel
// CHECK-SAME: bin = "\7FELF
!seq = memref<?x?x?xcomplex<f32>, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xcomplex<f32>, strided<[?, ?], offset: ?>>
func.func @scan(%a: !seq, %b: !seq, %h: !seq, %f: !st) {
  mixer.scan global log_space reverse gates(%a : !seq) inputs(%b : !seq) outs(%h : !seq) final(%f : !st)
  return
}
