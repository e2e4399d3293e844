// RUN: mixer-opt %s --mixer-lower-linear-attention-adjoint | FileCheck %s

// Gated delta rule, K = 2, V = 3, checkpoints every 8 steps. One sequential
// program per (head, sequence) over scratch [1, H, slots, K, V]: per head the
// checkpoints of all sequences (sequence n from slot floor(p_n / 8) + n, p_n
// its first packed position), then per sequence its 8 recomputed states and
// the state gradient.
// CHECK-LABEL: func.func @gdr(
// CHECK-SAME:    %[[DQ:arg[0-9]+]]: memref<1x?x2x2xf32>, %[[DK:arg[0-9]+]]: memref<1x?x2x2xf32>, %[[DV:arg[0-9]+]]: memref<1x?x2x3xf32>, %[[DG:arg[0-9]+]]: memref<1x?x2xf32>, %[[DB:arg[0-9]+]]: memref<1x?x2xf32>)
// CHECK:       %[[WS:.*]] = memref.alloc(%{{.*}}, %{{.*}}) {mixer.workspace} : memref<1x?x?x2x3xf32>
// CHECK:       scf.parallel (%[[H:.*]], %[[N:.*]]) =
// CHECK:         %[[CHUNKS:.*]] = arith.ceildivui %{{.*}}, %{{.*}} : index
// CHECK:         %[[BASE:.*]] = arith.addi %{{.*}}, %[[N]] : index
// The initial state (zero: no init) into checkpoint 0, a value column at a time.
// CHECK:         scf.for %[[J0:.*]] = %{{.*}} to %{{.*}} step
// CHECK-COUNT-2:   memref.store %{{.*}}, %[[WS]][%{{.*}}, %[[H]], %{{.*}}, %{{.*}}, %[[J0]]]
// 1. Checkpoints 1 .. chunks - 1: each from the previous one, through 8 forward
//    steps (the recurrent lowering's: decay, delta correction, update).
// CHECK:         scf.for %[[C:.*]] = %{{.*}} to %[[CHUNKS]]
// CHECK:           %[[SLOT:.*]] = arith.addi %[[BASE]], %[[C]]
// CHECK:           scf.for
// CHECK:             arith.select
// CHECK:             scf.for
// CHECK:               math.exp
// CHECK:               arith.subf
// CHECK-COUNT-2:       memref.store %{{.*}}, %[[WS]][%{{.*}}, %[[H]], %[[SLOT]], %{{.*}}, %{{.*}}]
// 2. The state gradient from final_grad, then the chunks, last first: recompute
//    the chunk's states, then the adjoint of its steps, last first, summing dq, dk,
//    dg and dbeta over the value columns.
// CHECK:         scf.for
// CHECK-COUNT-2:   memref.load %{{.*}}[%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x2x3xf32>
// CHECK:         scf.for %{{.*}} = %{{.*}} to %[[CHUNKS]]
// CHECK:           arith.minui
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:           scf.for
// CHECK:             %[[SUMS:.*]]:6 = scf.for {{.*}} iter_args({{.*}}) -> (f32, f32, f32, f32, f32, f32)
// CHECK:               memref.store %{{.*}}, %[[DV]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}]
// CHECK:               arith.negf
// CHECK:               scf.yield
// CHECK:             memref.store %{{.*}}, %[[DQ]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}]
// CHECK:             memref.store %[[SUMS]]#2, %[[DK]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}]
// CHECK:             memref.store %{{.*}}, %[[DQ]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}]
// CHECK:             memref.store %[[SUMS]]#3, %[[DK]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}]
// CHECK:             memref.store %[[SUMS]]#4, %[[DG]][%{{.*}}, %{{.*}}, %[[H]]]
// CHECK:             memref.store %[[SUMS]]#5, %[[DB]][%{{.*}}, %{{.*}}, %[[H]]]
// CHECK-NOT:     mixer.linear_attention_adjoint
func.func @gdr(%q: memref<1x?x2x2xbf16>, %v: memref<1x?x2x3xbf16>, %g: memref<1x?x2xf32>,
               %b: memref<1x?x2xbf16>, %s: f32, %cu: memref<?xi64>, %do: memref<1x?x2x3xbf16>,
               %hT: memref<?x?x2x3xf32>, %dq: memref<1x?x2x2xf32>,
               %dk: memref<1x?x2x2xf32>, %dv: memref<1x?x2x3xf32>, %dg: memref<1x?x2xf32>,
               %db: memref<1x?x2xf32>) {
  mixer.linear_attention_adjoint query(%q : memref<1x?x2x2xbf16>) key(%q : memref<1x?x2x2xbf16>)
      value(%v : memref<1x?x2x3xbf16>) log_decay(%g : memref<1x?x2xf32>)
      beta(%b : memref<1x?x2xbf16>) scale(%s : f32) offsets(%cu : memref<?xi64>)
      output_grad(%do : memref<1x?x2x3xbf16>) final_grad(%hT : memref<?x?x2x3xf32>)
      query_grad(%dq : memref<1x?x2x2xf32>)
      key_grad(%dk : memref<1x?x2x2xf32>) value_grad(%dv : memref<1x?x2x3xf32>)
      log_decay_grad(%dg : memref<1x?x2xf32>) beta_grad(%db : memref<1x?x2xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = checkpointed, chunk = 8>}
  return
}

// The mLSTM cell: the stabiliser's gradient is carried by the chunk and step
// loops, and reaches init_grad's stabiliser at the end; the normaliser lives in
// the scratch's column V = 3, the stabiliser at (K, 0) = (2, 0). The checkpoint
// interval is chosen at run time (chunk = 0).
// CHECK-LABEL: func.func @mlstm
// CHECK:       memref.alloc({{.*}}) {mixer.workspace} : memref<1x?x?x3x4xf32>
// CHECK:       scf.parallel
// CHECK:         %[[MU:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f32)
// CHECK:           scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f32)
// The denominator's max and both of the stabiliser's maxima are differentiated.
// CHECK:             math.absf
// CHECK:             arith.maximumf
// CHECK:             arith.cmpf oge
// CHECK:             math.copysign
// CHECK:             arith.cmpf oge
// CHECK:         memref.store %[[MU]], %{{.*}} : memref<?x?xf32>
func.func @mlstm(%q: memref<?x?x?x2xf32>, %v: memref<?x?x?x3xf32>, %g: memref<?x?x?xf32>,
                 %s: f32, %c: memref<?x?x2x3xf32>, %n: memref<?x?x2xf32>, %m: memref<?x?xf32>) {
  mixer.linear_attention_adjoint query(%q : memref<?x?x?x2xf32>) key(%q : memref<?x?x?x2xf32>)
      value(%v : memref<?x?x?x3xf32>) log_decay(%g : memref<?x?x?xf32>)
      input_gate(%g : memref<?x?x?xf32>) scale(%s : f32) init(%c : memref<?x?x2x3xf32>)
      init_normalizer(%n : memref<?x?x2xf32>) init_stabilizer(%m : memref<?x?xf32>)
      output_grad(%v : memref<?x?x?x3xf32>)
      query_grad(%q : memref<?x?x?x2xf32>) key_grad(%q : memref<?x?x?x2xf32>)
      value_grad(%v : memref<?x?x?x3xf32>) log_decay_grad(%g : memref<?x?x?xf32>)
      input_gate_grad(%g : memref<?x?x?xf32>) init_grad(%c : memref<?x?x2x3xf32>)
      init_normalizer_grad(%n : memref<?x?x2xf32>) init_stabilizer_grad(%m : memref<?x?xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = checkpointed>}
  return
}
