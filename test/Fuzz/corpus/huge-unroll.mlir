// mixer-fuzz finding (seed: test/Conversion/MixerToSCF/lower-channel-scan-adjoint.mlir):
// a lowering_config unroll of 2^32 ran the channel scan lowering out of memory.

!v = memref<?xf32, strided<[?], offset: ?>>

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
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v) inputs_grad(%db : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 4294967296>} -> f32
  return %r : f32
}


