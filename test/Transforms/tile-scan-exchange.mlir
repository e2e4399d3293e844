// RUN: mixer-opt %s -split-input-file --mixer-tile-scan -verify-diagnostics | FileCheck %s

!tm = memref<?x?x?xbf16, strided<[?, 1, ?], offset: ?>>
!hm = memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>

// exchange-output: tiles padded to whole warps; a full block scans into a
// private 16-float buffer, the partial last block into h; then the 4 threads
// of a group swap 16-byte chunks (3 rounds of 4 xor shuffles over the whole
// warp) and store chunk r of each full block of their group.
// CHECK-LABEL: func.func @exchange
// CHECK:       %[[NT:.*]] = arith.ceildivui %{{.*}}, %c16
// CHECK:       %[[W:.*]] = arith.ceildivui %[[NT]], %c32
// CHECK:       %[[PAD:.*]] = arith.muli %[[W]], %c32
// CHECK:       scf.parallel (%[[J:.*]], %{{.*}}, %{{.*}}) = {{.*}} to (%[[PAD]],
// CHECK:         %[[BUF:.*]] = memref.alloca() {alignment = 16 : i64} : memref<16xf32>
// CHECK:         scf.if
// CHECK:           scf.if
// CHECK:             mixer.channel_scan jagged<block = 16, k = 2> {{.*}} outs(%[[BUF]] : memref<16xf32>)
// CHECK:           } else {
// CHECK:             mixer.channel_scan jagged<block = 16, k = 2> {{.*}} outs(%{{.*}} : memref<?xf32, strided<[1], offset: ?>>)
// CHECK:         vector.load %[[BUF]][%{{.*}}] {alignment = 16 : i64} : memref<16xf32>, vector<16xf32>
// CHECK:         %[[R:.*]] = arith.remui %[[J]], %c4
// CHECK-COUNT-4: gpu.shuffle  xor %{{.*}}, %c1_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK-COUNT-4: gpu.shuffle  xor %{{.*}}, %c2_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK-COUNT-4: gpu.shuffle  xor %{{.*}}, %c3_i32{{.*}}, %c32_i32{{.*}} : f32
// CHECK-COUNT-4: vector.store %{{.*}} {alignment = 16 : i64} : memref<?xf32, strided<[1], offset: ?>>, vector<4xf32>
func.func @exchange(%a: !tm, %b: !tm, %h: !hm) {
  mixer.scan jagged<block = 16, k = 2> gates(%a : !tm) inputs(%b : !tm) outs(%h : !hm)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, time_fastest = true, exchange_output = true, vector_alignment = 16, vector_operands = 11>}
  return
}

// -----

!s = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>

// Without exchange_output each thread stores its own block.
// CHECK-LABEL: func.func @strided_output
// CHECK-NOT:   gpu.shuffle
// CHECK:       return
func.func @strided_output(%a: !s, %b: !s, %h: !s) {
  mixer.scan jagged<block = 16, k = 2> gates(%a : !s) inputs(%b : !s) outs(%h : !s)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, time_fastest = true>}
  return
}
