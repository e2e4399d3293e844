// RUN: mixer-opt %s -split-input-file --mixer-lower-channel-scan | FileCheck %s

!v = memref<?xf32, strided<[?], offset: ?>>

// Global: one scf.for carrying h; h = a * h + b; every step stored.
// CHECK-LABEL: func.func @global
// CHECK-SAME:  (%[[A:.*]]: memref{{.*}}, %[[B:.*]]: memref{{.*}}, %[[H0:.*]]: f32, %[[H:.*]]: memref
// CHECK:       %[[LEN:.*]] = memref.dim %[[A]], %c0
// CHECK:       %[[R:.*]] = scf.for %[[I:[a-z0-9_]+]] = %c0 to %[[LEN]] step %c1 iter_args(%[[S:.*]] = %[[H0]]) -> (f32) {
// CHECK:         %[[G:.*]] = memref.load %[[A]][%[[I]]]
// CHECK:         %[[U:.*]] = memref.load %[[B]][%[[I]]]
// CHECK:         %[[M:.*]] = arith.mulf %[[G]], %[[S]]
// CHECK:         %[[N:.*]] = arith.addf %[[M]], %[[U]]
// CHECK:         memref.store %[[N]], %[[H]][%[[I]]]
// CHECK:         scf.yield %[[N]]
// CHECK:       return %[[R]]
func.func @global(%a: !v, %b: !v, %h0: f32, %h: !v) -> f32 {
  %r = mixer.channel_scan global gates(%a : !v) inputs(%b : !v) init(%h0 : f32) outs(%h : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled>} -> f32
  return %r : f32
}

// -----

!v = memref<?xf32, strided<[?], offset: ?>>
!vh = memref<?xbf16, strided<[?], offset: ?>>

// Reverse, log space, narrow inputs: t = len - 1 - i, gates exponentiated and
// inputs extended to the f32 state before any arithmetic.
// CHECK-LABEL: func.func @reverse_log_bf16
// CHECK-SAME:  (%[[A:.*]]: memref<?xbf16{{.*}}>, %[[B:.*]]: memref<?xbf16
// CHECK:       scf.for %[[I:[a-z0-9_]+]] =
// CHECK:         %[[T:.*]] = arith.subi %{{.*}}, %[[I]]
// CHECK-DAG:     %[[G:.*]] = memref.load %[[A]][%[[T]]] : memref<?xbf16
// CHECK-DAG:     %[[U:.*]] = memref.load %[[B]][%[[T]]] : memref<?xbf16
// CHECK-DAG:     %[[GF:.*]] = arith.extf %[[G]] : bf16 to f32
// CHECK-DAG:     %[[UF:.*]] = arith.extf %[[U]] : bf16 to f32
// CHECK-DAG:     %[[E:.*]] = math.exp %[[GF]] : f32
// CHECK:         arith.mulf %[[E]],
func.func @reverse_log_bf16(%a: !vh, %b: !vh, %h: !v) -> f32 {
  %r = mixer.channel_scan global log_space reverse gates(%a : !vh) inputs(%b : !vh) outs(%h : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled>} -> f32
  return %r : f32
}

// -----

!v = memref<?xf32, strided<[?], offset: ?>>

// Jagged k = 2: state (local, gate product, carry); block starts reset local
// and product and hand the finished local state over as the carry.
// CHECK-LABEL: func.func @jagged
// CHECK-DAG:   %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG:   %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG:   %[[BL:.*]] = arith.constant 16 : index
// CHECK:       scf.for %[[I:[a-z0-9_]+]] = {{.*}} iter_args(%[[L:.*]] = %[[ZERO]], %[[P:.*]] = %[[ONE]], %[[C:.*]] = %{{.*}}) -> (f32, f32, f32)
// CHECK:         %[[OFF:.*]] = arith.remui %[[I]], %[[BL]]
// CHECK:         %[[FIRST:.*]] = arith.cmpi eq, %[[OFF]], %c0
// CHECK:         %[[L0:.*]] = arith.select %[[FIRST]], %[[ZERO]], %[[L]]
// CHECK:         %[[HAND:.*]] = arith.andi %[[FIRST]]
// CHECK:         %[[C1:.*]] = arith.select %[[HAND]], %[[L]], %[[C]]
// CHECK:         %[[P0:.*]] = arith.select %[[FIRST]], %[[ONE]], %[[P]]
// CHECK:         scf.yield %{{.*}}, %{{.*}}, %[[C1]]
func.func @jagged(%a: !v, %b: !v, %c: f32, %h: !v) -> f32 {
  %r = mixer.channel_scan jagged<block = 16, k = 2> gates(%a : !v) inputs(%b : !v) init(%c : f32)
      outs(%h : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled>} -> f32
  return %r : f32
}

// -----

!v = memref<?xcomplex<f32>, strided<[?], offset: ?>>

// Complex log gates: exp(x + iy) = e^x (cos y + i sin y), complex multiply-add.
// CHECK-LABEL: func.func @complex_log
// CHECK:         math.exp
// CHECK:         math.cos
// CHECK:         math.sin
// CHECK:         complex.create
// CHECK:         complex.mul
// CHECK:         complex.add
func.func @complex_log(%a: !v, %b: !v, %h: !v) -> complex<f32> {
  %r = mixer.channel_scan global log_space gates(%a : !v) inputs(%b : !v) outs(%h : !v) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled>} -> complex<f32>
  return %r : complex<f32>
}

