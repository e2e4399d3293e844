// The shapes are the ops' configs; each RUN line pins its own.
// RUN: sed -e 's/JAGGED/tile = 64/' -e 's/GLOBAL/tile = 0/' %s | mixer-opt -split-input-file --mixer-tile-scan | FileCheck %s
// RUN: sed -e 's/JAGGED/tile = 64/' -e 's/GLOBAL/tile = 32/' %s | mixer-opt -split-input-file --mixer-tile-scan | FileCheck %s --check-prefix=CHUNKED
// RUN: sed -e 's/JAGGED/tile = 64, time_fastest = true/' -e 's/GLOBAL/tile = 0/' %s | mixer-opt -split-input-file --mixer-tile-scan | FileCheck %s --check-prefix=TIME

!seq = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xf32, strided<[?, ?], offset: ?>>

// Jagged k = 2: independent tiles over (channel, batch, tile); the carry of a
// tile is recomputed from the single block before it, with no carry of its own
// (k = 1); the first tile takes initial_state. The last tile writes the final state.
// CHECK-LABEL: func.func @jagged
// CHECK:       %[[T:.*]] = memref.dim %{{.*}}, %c1
// CHECK:       %[[C64:.*]] = arith.constant 64 : index
// CHECK:       %[[NT:.*]] = arith.ceildivui %[[T]], %[[C64]]
// CHECK:       scf.parallel (%[[D:.*]], %[[N:.*]], %[[J:.*]]) = {{.*}} to ({{.*}}, {{.*}}, %[[NT]])
// CHECK:         %[[T0:.*]] = arith.muli %[[J]], %[[C64]]
// CHECK:         %[[C16:.*]] = arith.constant 16 : index
// CHECK:         %[[HAS:.*]] = arith.cmpi ugt, %[[J]], %c0
// CHECK:         %[[PREV:.*]] = arith.subi %[[T0]], %[[C16]]
// CHECK:         %[[CARRY:.*]] = scf.if %[[HAS]] -> (f32) {
// CHECK:           memref.subview %{{.*}}[%[[N]], %[[PREV]], %[[D]]] [1, %[[C16]], 1] [1, 1, 1]
// CHECK:           %[[C:.*]] = mixer.channel_scan jagged<block = 16, k = 1> gates
// CHECK-NOT:       outs
// CHECK:           scf.yield %[[C]]
// CHECK:         } else {
// CHECK:           %[[INIT:.*]] = memref.load %{{.*}}[%[[N]], %[[D]]]
// CHECK:           scf.yield %[[INIT]]
// CHECK:         %[[LAST:.*]] = mixer.channel_scan jagged<block = 16, k = 2> gates({{.*}}) inputs({{.*}}) init(%[[CARRY]] : f32) outs({{.*}}){{.*}} -> f32
// CHECK:         scf.if
// CHECK:           memref.store %[[LAST]], %{{.*}}[%[[N]], %[[D]]]
// CHECK:         scf.reduce
// CHECK-NOT:   mixer.scan
// time-fastest: the same tiles, listed (tile, channel, batch row).
// TIME-LABEL:  func.func @jagged
// TIME:        %[[B:.*]] = memref.dim %{{.*}}, %c0
// TIME:        %[[T:.*]] = memref.dim %{{.*}}, %c1
// TIME:        %[[D:.*]] = memref.dim %{{.*}}, %c2
// TIME:        %[[NT:.*]] = arith.ceildivui %[[T]]
// TIME:        scf.parallel (%[[J:.*]], %[[C:.*]], %[[N:.*]]) = {{.*}} to (%[[NT]], %[[D]], %[[B]])
// TIME:          arith.muli %[[J]], %c64
// TIME:          memref.load %{{.*}}[%[[N]], %[[C]]]
func.func @jagged(%a: !seq, %b: !seq, %h0: !st, %h: !seq, %f: !st) {
  mixer.scan jagged<block = 16, k = 2> gates(%a : !seq) inputs(%b : !seq) init(%h0 : !st)
      outs(%h : !seq) final(%f : !st) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, JAGGED>}
  return
}

// -----

!seq = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>

// Reverse: the carry comes from the (possibly partial) block after the tile.
// CHECK-LABEL: func.func @jagged_reverse
// CHECK:         %[[END:.*]] = arith.addi
// CHECK:         %[[HAS:.*]] = arith.cmpi ult, %[[END]], %{{.*}}
// CHECK:         %[[HLEN:.*]] = arith.minui %c16
// CHECK:         scf.if %[[HAS]] -> (f32) {
// CHECK:           memref.subview %{{.*}}[%{{.*}}, %[[END]], %{{.*}}] [1, %[[HLEN]], 1]
// CHECK:           mixer.channel_scan jagged<block = 16, k = 1> reverse
// CHECK:         } else {
// CHECK:           arith.constant 0.000000e+00 : f32
// CHECK:         mixer.channel_scan jagged<block = 16, k = 2> reverse
func.func @jagged_reverse(%a: !seq, %b: !seq, %h: !seq) {
  mixer.scan jagged<block = 16, k = 2> reverse gates(%a : !seq) inputs(%b : !seq) outs(%h : !seq)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, JAGGED>}
  return
}

// -----

!seq = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xf32, strided<[?, ?], offset: ?>>

// Global: tiles of one channel chain their carry through scf.for; by default
// the whole sequence is one tile.
// CHECK-LABEL: func.func @global
// CHECK:       scf.parallel (%[[D:.*]], %[[N:.*]]) =
// CHECK:         %[[H0:.*]] = memref.load %{{.*}}[%[[N]], %[[D]]]
// CHECK:         %[[R:.*]] = scf.for %{{.*}} = %c0 to %c1 step %c1 iter_args(%[[CARRY:.*]] = %[[H0]]) -> (f32)
// CHECK:           mixer.channel_scan global log_space gates({{.*}}) inputs({{.*}}) init(%[[CARRY]] : f32) outs
// CHECK:         memref.store %[[R]], %{{.*}}[%[[N]], %[[D]]]
// CHUNKED-LABEL: func.func @global
// CHUNKED:       %[[NT:.*]] = arith.ceildivui %{{.*}}, %c32
// CHUNKED:       scf.for %{{.*}} = %c0 to %[[NT]] step %c1 iter_args
func.func @global(%a: !seq, %b: !seq, %h0: !st, %h: !seq, %f: !st) {
  mixer.scan global log_space gates(%a : !seq) inputs(%b : !seq) init(%h0 : !st)
      outs(%h : !seq) final(%f : !st) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, GLOBAL>}
  return
}
