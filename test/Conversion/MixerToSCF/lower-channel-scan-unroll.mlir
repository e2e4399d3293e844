// RUN: mixer-opt %s --mixer-lower-channel-scan | FileCheck %s

!v = memref<?xf32, strided<[?], offset: ?>>

// Main loop of 4 steps: all 8 loads, then the arithmetic, then the 4 stores;
// a one-step loop handles the remaining len mod 4 steps.
// CHECK-LABEL: func.func @global
// CHECK:       %[[LEN:.*]] = memref.dim
// CHECK:       %[[REM:.*]] = arith.remui %[[LEN]], %c4
// CHECK:       %[[END:.*]] = arith.subi %[[LEN]], %[[REM]]
// CHECK:       %[[MAIN:.*]] = scf.for %{{.*}} = %c0 to %[[END]] step %c4 iter_args
// CHECK-COUNT-8: memref.load
// CHECK-NOT:     memref.store
// CHECK-COUNT-4: arith.addf
// CHECK-COUNT-4: memref.store
// CHECK:         scf.yield
// CHECK:       scf.for %{{.*}} = %[[END]] to %[[LEN]] step %c1 iter_args(%{{.*}} = %[[MAIN]])
// CHECK:         memref.load
// CHECK:         memref.store
func.func @global(%a: !v, %b: !v, %h: !v) -> f32 {
  %r = mixer.channel_scan global gates(%a : !v) inputs(%b : !v) outs(%h : !v)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 4>} -> f32
  return %r : f32
}
