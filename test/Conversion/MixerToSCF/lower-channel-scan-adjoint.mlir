// RUN: mixer-opt %s -split-input-file --mixer-lower-channel-scan | FileCheck %s

!v = memref<?xf32, strided<[?], offset: ?>>

// Global: one pass against time (2 steps per iteration, loads first):
// lam = dh + g, da = lam * h_{t-1}, db = lam, g = a * lam.
// CHECK-LABEL: func.func @global
// CHECK:       %[[MAIN:.*]] = scf.for {{.*}} step %c2 iter_args(%[[G:.*]] = %{{.*}}) -> (f32)
// CHECK-COUNT-6: memref.load
// CHECK:         %[[LAM:.*]] = arith.addf %{{.*}}, %[[G]]
// CHECK:         arith.mulf %[[LAM]]
// CHECK-COUNT-4: memref.store
// CHECK:       scf.for {{.*}} iter_args(%{{.*}} = %[[MAIN]])
func.func @global(%a: !v, %h: !v, %dh: !v, %c: f32, %g: f32, %da: !v, %db: !v) -> f32 {
  %r = mixer.channel_scan_adjoint global gates(%a : !v) states(%h : !v) output_grad(%dh : !v)
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v) inputs_grad(%db : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 2>} -> f32
  return %r : f32
}

// -----

!v = memref<?xf32, strided<[?], offset: ?>>

// Jagged: one block per iteration, last block first; the carry into a block is
// recomputed from the block before it (4 gate and 4 input loads), a full block
// runs straight-line code, the partial last block a masked copy of it.
// CHECK-LABEL: func.func @jagged
// CHECK:       %[[NB:.*]] = arith.ceildivui %{{.*}}, %c4
// CHECK:       scf.for %{{.*}} = %c0 to %[[NB]] step %c1 iter_args
// CHECK:         scf.if %{{.*}} -> (f32) {
// CHECK-COUNT-8:   memref.load
// CHECK:         } else {
// CHECK:         %[[FULL:.*]] = arith.cmpi ule
// CHECK:         scf.if %[[FULL]] -> (f32) {
// CHECK-COUNT-12:  memref.load
// CHECK-COUNT-8:   memref.store
// CHECK:         } else {
// CHECK:           arith.minui
// CHECK:           scf.if
// CHECK:             memref.store
func.func @jagged(%a: !v, %b: !v, %dh: !v, %c: f32, %g: f32, %da: !v, %db: !v) -> f32 {
  %r = mixer.channel_scan_adjoint jagged<block = 4, k = 2> gates(%a : !v) inputs(%b : !v)
      output_grad(%dh : !v) carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v)
      inputs_grad(%db : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 2>} -> f32
  return %r : f32
}
