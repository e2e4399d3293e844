// RUN: mixer-opt %s --mixer-scan-adjoint | FileCheck %s

!seq = memref<?x?x?xbf16, strided<[?, ?, ?], offset: ?>>
!out = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xf32, strided<[?, ?], offset: ?>>

// The forward stays; @scan_adjoint takes the forward operands, h, dh and the
// final-state gradient, and writes the gradients of gates, inputs (bf16, like
// them) and the initial state, through one mixer.scan_adjoint.
// CHECK-LABEL: func.func @scan(
// CHECK:         mixer.scan jagged<block = 16, k = 2> log_space
// CHECK-LABEL: func.func @scan_adjoint(
// CHECK-SAME:    %arg0: memref<?x?x?xbf16
// CHECK-SAME:    %arg3: memref<?x?x?xf32
// CHECK-SAME:    %arg6: memref<?x?x?xbf16
// CHECK-SAME:    %arg7: memref<?x?x?xbf16
// CHECK-SAME:    %arg8: memref<?x?xf32
// CHECK-SAME:    attributes {llvm.emit_c_interface}
// CHECK:         mixer.scan_adjoint jagged<block = 16, k = 2> log_space gates(%arg0 : {{.*}}) inputs(%arg1 : {{.*}}) init(%arg2 : {{.*}}) states(%arg3 : {{.*}}) output_grad(%arg4 : {{.*}}) final_grad(%arg5 : {{.*}}) gates_grad(%arg6 : {{.*}}) inputs_grad(%arg7 : {{.*}}) init_grad(%arg8 : {{.*}})
// CHECK-NEXT:    return
func.func @scan(%a: !seq, %b: !seq, %h0: !st, %h: !out, %f: !st) attributes {llvm.emit_c_interface} {
  mixer.scan jagged<block = 16, k = 2> log_space gates(%a : !seq) inputs(%b : !seq) init(%h0 : !st)
      outs(%h : !out) final(%f : !st)
  return
}
