// RUN: mixer-opt %s -split-input-file --mixer-lower-channel-scan | FileCheck %s

!vu = memref<?xbf16, strided<[1], offset: ?>>
!hu = memref<?xf32, strided<[1], offset: ?>>

// Time-contiguous operands of a jagged scan: one aligned vector load per
// operand and block, one aligned vector store of the block's outputs.
// CHECK-LABEL: func.func @time_major
// CHECK:       scf.for %[[I:.*]] = %{{.*}} step %c4
// CHECK:         vector.load %{{.*}}[%[[I]]] {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK:         vector.load %{{.*}}[%[[I]]] {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK-COUNT-4: vector.extract
// CHECK-NOT:     memref.store
// CHECK:         %[[Y:.*]] = vector.from_elements
// CHECK:         vector.store %[[Y]], %{{.*}}[%[[I]]] {alignment = 8 : i64} : memref<?xf32, strided<[1], offset: ?>>, vector<4xf32>
// The partial last block: scalar steps.
// CHECK:       scf.for
// CHECK:         memref.load
// CHECK:         memref.store
func.func @time_major(%a: !vu, %b: !vu, %h: !hu) -> f32 {
  %r = mixer.channel_scan jagged<block = 4, k = 2> gates(%a : !vu) inputs(%b : !vu) outs(%h : !hu) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 8, vector_alignment = 8, vector_operands = 11>} -> f32
  return %r : f32
}

// -----

!vu = memref<?xbf16, strided<[1], offset: ?>>
!hu = memref<?xf32, strided<[1], offset: ?>>

// Reverse: the block is read from its first position in memory and its
// elements taken last to first (step 0 is the block's last element).
// CHECK-LABEL: func.func @reverse
// CHECK:       scf.for %[[I:.*]] = %{{.*}} step %c4
// CHECK:         %[[END:.*]] = arith.addi %[[I]], %c3
// CHECK:         %[[START:.*]] = arith.subi %{{.*}}, %[[END]]
// CHECK:         %[[G:.*]] = vector.load %{{.*}}[%[[START]]]
// CHECK:         vector.extract %[[G]][3]
// CHECK:         vector.store %{{.*}}, %{{.*}}[%[[START]]]
func.func @reverse(%a: !vu, %b: !vu, %h: !hu) -> f32 {
  %r = mixer.channel_scan jagged<block = 4, k = 1> reverse gates(%a : !vu) inputs(%b : !vu) outs(%h : !hu) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 8, vector_alignment = 8, vector_operands = 11>} -> f32
  return %r : f32
}

// -----

!v = memref<?xbf16, strided<[?], offset: ?>>
!h = memref<?xf32, strided<[?], offset: ?>>

// Operands the config does not name keep scalar accesses.
// CHECK-LABEL: func.func @strided
// CHECK-NOT:   vector.
// CHECK:       return
func.func @strided(%a: !v, %b: !v, %h: !h) -> f32 {
  %r = mixer.channel_scan jagged<block = 4, k = 2> gates(%a : !v) inputs(%b : !v) outs(%h : !h) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 8, vector_alignment = 8>} -> f32
  return %r : f32
}

// -----

!vu = memref<?xbf16, strided<[1], offset: ?>>
!hu = memref<?xf32, strided<[1], offset: ?>>

// The jagged adjoint: a full block loads its gates, inputs and output gradient
// with one aligned vector each (also the block before it, for the carry), and
// stores both gradients as vectors after its sweep. The partial last block
// keeps masked scalar accesses.
// CHECK-LABEL: func.func @adjoint
// CHECK:       scf.for
// CHECK:         scf.if %{{.*}} -> (f32) {
// CHECK-COUNT-2:   vector.load %{{.*}} {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK:         } else {
// CHECK:         scf.if %{{.*}} -> (f32) {
// CHECK-COUNT-2:   vector.load %{{.*}} {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK:           vector.load %{{.*}} {alignment = 8 : i64} : memref<?xf32, strided<[1], offset: ?>>, vector<4xf32>
// CHECK-NOT:       memref.store
// CHECK:           vector.store %{{.*}} {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK:           vector.store %{{.*}} {alignment = 8 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<4xbf16>
// CHECK:         } else {
// CHECK-NOT:       vector.
// CHECK:           memref.store
func.func @adjoint(%a: !vu, %b: !vu, %dh: !hu, %c: f32, %g: f32, %da: !vu, %db: !vu) -> f32 {
  %r = mixer.channel_scan_adjoint jagged<block = 4, k = 2> gates(%a : !vu) inputs(%b : !vu)
      output_grad(%dh : !hu) carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !vu)
      inputs_grad(%db : !vu) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 8, vector_alignment = 8, vector_operands = 203>} -> f32
  return %r : f32
}
