// RUN: mixer-opt %s --mixer-select-lowering-config --mixer-lower-linear-attention | FileCheck %s

// Gated delta rule, recurrent form: one state column (K = 4 scalars) per
// iteration of the parallel loop over (value channel, head, sequence); the
// sequence comes from the offsets; the column is carried by the time loop.
// CHECK-LABEL: func.func @gdr
// CHECK:       scf.parallel (%[[V:.*]], %[[H:.*]], %[[N:.*]]) =
// CHECK:         %[[START:.*]] = arith.index_cast
// CHECK:         %[[END:.*]] = arith.index_cast
// CHECK:         %[[LEN:.*]] = arith.subi %[[END]], %[[START]]
// CHECK-COUNT-4: memref.load %{{.*}}[%[[N]], %[[H]], %{{.*}}, %[[V]]] : memref<?x?x4x8xf32>
// CHECK:         %[[COL:.*]]:4 = scf.for %{{.*}} = %{{.*}} to %[[LEN]] {{.*}} iter_args(
// The per-head decay is one exp per step, shared by the column.
// CHECK:           math.exp
// CHECK-NOT:       math.exp
// The delta rule: beta (v - S^T k), then the rank-1 update and the readout.
// CHECK:           math.fma
// CHECK:           arith.subf
// CHECK:           arith.mulf
// CHECK:           memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %[[H]], %[[V]]] : memref<1x?x2x8xbf16>
// CHECK:           scf.yield
// CHECK-COUNT-4: memref.store %[[COL]]#{{[0-3]}}, %{{.*}}[%[[N]], %[[H]], %{{.*}}, %[[V]]] : memref<?x?x4x8xf32>
func.func @gdr(%q: memref<1x?x2x4xbf16>, %v: memref<1x?x2x8xbf16>, %g: memref<1x?x2xf32>,
               %b: memref<1x?x2xbf16>, %s: f32, %h0: memref<?x?x4x8xf32>, %cu: memref<?xi64>,
               %o: memref<1x?x2x8xbf16>, %hT: memref<?x?x4x8xf32>) {
  mixer.linear_attention query(%q : memref<1x?x2x4xbf16>) key(%q : memref<1x?x2x4xbf16>)
      value(%v : memref<1x?x2x8xbf16>) log_decay(%g : memref<1x?x2xf32>)
      beta(%b : memref<1x?x2xbf16>) scale(%s : f32) init(%h0 : memref<?x?x4x8xf32>)
      offsets(%cu : memref<?xi64>) outs(%o : memref<1x?x2x8xbf16>)
      final(%hT : memref<?x?x4x8xf32>)
  return
}

// A per-key-dimension decay (GLA) exponentiates one gate per key dimension.
// CHECK-LABEL: func.func @gla
// CHECK:       scf.for
// CHECK-COUNT-2: math.exp
// CHECK-NOT:   math.exp
// CHECK:       scf.yield
func.func @gla(%q: memref<?x?x?x2xf32>, %g: memref<?x?x?x2xf32>, %s: f32) {
  mixer.linear_attention query(%q : memref<?x?x?x2xf32>) key(%q : memref<?x?x?x2xf32>)
      value(%q : memref<?x?x?x2xf32>) log_decay(%g : memref<?x?x?x2xf32>) scale(%s : f32)
      outs(%q : memref<?x?x?x2xf32>)
  return
}

// A per-value-dimension decay (value_decay): the column's own gate, one exp per
// step shared by its K key dimensions.
// CHECK-LABEL: func.func @value_decay
// CHECK:       scf.parallel (%[[V:.*]], %[[H:.*]], %{{.*}}) =
// CHECK:         scf.for
// CHECK:           memref.load %{{.*}}[%{{.*}}, %{{.*}}, %[[H]], %[[V]]] : memref<?x?x?x3xf32>
// CHECK-NEXT:      math.exp
// CHECK-NOT:       math.exp
// CHECK:           scf.yield
func.func @value_decay(%q: memref<?x?x?x2xf32>, %v: memref<?x?x?x3xf32>,
                       %g: memref<?x?x?x3xf32>, %s: f32) {
  mixer.linear_attention query(%q : memref<?x?x?x2xf32>) key(%q : memref<?x?x?x2xf32>)
      value(%v : memref<?x?x?x3xf32>) log_decay(%g : memref<?x?x?x3xf32>) scale(%s : f32)
      outs(%v : memref<?x?x?x3xf32>) value_decay
  return
}

// The state pass (no output): the column is carried and stored, query is not read.
// CHECK-LABEL: func.func @state_pass
// CHECK:       scf.for
// CHECK-COUNT-4: memref.load %{{.*}} : memref<2x8x3x4xbf16>
// CHECK-NOT:   memref.load %{{.*}} : memref<2x8x3x4xbf16>
// CHECK:       scf.yield
// CHECK-COUNT-4: memref.store {{.*}} : memref<2x3x4x8xf32>
func.func @state_pass(%k: memref<2x8x3x4xbf16>, %v: memref<2x8x3x8xbf16>, %s: f32,
                      %hT: memref<2x3x4x8xf32>) {
  mixer.linear_attention query(%k : memref<2x8x3x4xbf16>) key(%k : memref<2x8x3x4xbf16>)
      value(%v : memref<2x8x3x8xbf16>) scale(%s : f32) final(%hT : memref<2x3x4x8xf32>)
  return
}

// The mLSTM cell: each column also carries its copy of the normaliser (K) and
// the stabiliser (1): 2K + 1 = 5 values; per step the new stabiliser is a
// maximum, the forget and input factors two exps, the readout is divided by
// max(|n . q|, exp(-m)) + epsilon, and column 0 writes the final n and m.
// CHECK-LABEL: func.func @mlstm
// CHECK:       scf.parallel (%[[V:.*]], %[[H:.*]], %[[N:.*]]) =
// CHECK:         %[[COL:.*]]:5 = scf.for {{.*}} -> (f32, f32, f32, f32, f32) {
// CHECK:           arith.maximumf
// CHECK-COUNT-2:   math.exp
// CHECK:           math.absf
// CHECK:           math.exp
// CHECK:           arith.constant 9.99999{{[0-9]+}}E-7 : f32
// CHECK:           arith.divf
// CHECK:           scf.yield
// CHECK:         arith.cmpi eq, %[[V]]
// CHECK:         scf.if
// CHECK-COUNT-2:   memref.store %[[COL]]#{{[23]}}, %{{.*}}[%[[N]], %[[H]], %{{.*}}] : memref<?x?x2xf32>
// CHECK:           memref.store %[[COL]]#4, %{{.*}}[%[[N]], %[[H]]] : memref<?x?xf32>
func.func @mlstm(%q: memref<?x?x?x2xf32>, %f: memref<?x?x?xf32>, %i: memref<?x?x?xf32>, %s: f32,
                 %n: memref<?x?x2xf32>, %m: memref<?x?xf32>) {
  mixer.linear_attention query(%q : memref<?x?x?x2xf32>) key(%q : memref<?x?x?x2xf32>)
      value(%q : memref<?x?x?x2xf32>) log_decay(%f : memref<?x?x?xf32>)
      input_gate(%i : memref<?x?x?xf32>) scale(%s : f32) outs(%q : memref<?x?x?x2xf32>)
      final_normalizer(%n : memref<?x?x2xf32>) final_stabilizer(%m : memref<?x?xf32>)
  return
}

// The delta rule's corrected values: beta (v - S^T k) stored (in their element
// type) before the rank-1 update that uses them.
// CHECK-LABEL: func.func @corrected_values
// CHECK:         scf.for
// CHECK:           arith.subf
// CHECK:           %[[U:.*]] = arith.mulf
// CHECK:           memref.store %[[U]], %arg6[%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}] : memref<2x?x2x8xf32>
// CHECK:           math.fma %{{.*}}, %[[U]]
// CHECK:           scf.yield
func.func @corrected_values(%q: memref<2x?x2x4xf32>, %v: memref<2x?x2x8xf32>,
                            %b: memref<2x?x2xf32>, %s: f32, %o: memref<2x?x2x8xf32>,
                            %hT: memref<2x2x4x8xf32>, %u: memref<2x?x2x8xf32>) {
  mixer.linear_attention query(%q : memref<2x?x2x4xf32>) key(%q : memref<2x?x2x4xf32>)
      value(%v : memref<2x?x2x8xf32>) beta(%b : memref<2x?x2xf32>) scale(%s : f32)
      outs(%o : memref<2x?x2x8xf32>) corrected(%u : memref<2x?x2x8xf32>)
      final(%hT : memref<2x2x4x8xf32>)
  return
}
