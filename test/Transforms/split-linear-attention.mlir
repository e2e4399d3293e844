// RUN: mixer-opt %s --mixer-select-lowering-config=chip=sm_90a --mixer-split-linear-attention | FileCheck %s

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// The sequence split of simple GLA under the strategy's run-time rule: scratch
// marked for the workspace, a branch on the rule, in it the state pass (pieces,
// no output), the chunk sums of the per-head decay once per (chunk, head x
// sequence) with the threads over the chunks (three loop dimensions: a GPU grid
// has three, a fourth would run inside each thread), the piece sums broadcast
// over the 128 keys, the initial state copied to row 0, the scan over pieces,
// the output pass, the final state copied out; the unsplit op in the else.
// CHECK-LABEL: func.func @simple_gla
// CHECK-COUNT-4: memref.alloc({{.*}}) {mixer.workspace}
// CHECK:       scf.if
// CHECK:         mixer.linear_attention {{.*}} pieces(
// CHECK:         scf.parallel ({{.*}}, {{.*}}, {{.*}}) = ({{.*}}) to (%{{.*}}, %c1{{.*}}, %{{.*}})
// CHECK:           scf.for
// CHECK:         scf.parallel ({{.*}}, {{.*}}, {{.*}}) = ({{.*}}) to (%{{.*}}, %c128{{.*}}, %{{.*}})
// CHECK:           scf.for
// CHECK:         scf.parallel
// CHECK:         mixer.scan global log_space
// CHECK:         mixer.linear_attention {{.*}} pieces({{.*}}) outs(
// CHECK:         scf.parallel
// CHECK:       } else {
// CHECK:         mixer.linear_attention
// CHECK-NOT:     pieces
// CHECK:       }
func.func @simple_gla(%q: !q {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>, %s: f32,
                      %o: !q {mixer.alignment = 16 : i64}, %hT: memref<?x?x128x128xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
      final(%hT : memref<?x?x128x128xf32>)
  return
}
