// RUN: mixer-opt %s -split-input-file --mixer-lower-linear-attention-mma | FileCheck %s

!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>

// Simple GLA, K = V = 64: one block of 4 warps per (value tile, head,
// sequence), the chunk loop carries the state as 8 tiles x 4 f32, Q K^T and
// the state products are m16n8k16 bf16 mma.sync on ldmatrix fragments.
// CHECK-LABEL: func.func @simple_gla
// CHECK:       %[[SMEM:.*]] = arith.constant 74496 : i32
// CHECK:       gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c1{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c128{{.*}}, %{{.*}} = %c1{{.*}}, %{{.*}} = %c1{{.*}}) dynamic_shared_memory_size %[[SMEM]]
// CHECK:         gpu.dynamic_shared_memory
// The first chunk is copied before the loop, each next one during the current,
// its log decays included (4 bytes a step: they are strided by the heads).
// CHECK:         nvvm.cp.async.shared.global
// CHECK:         nvvm.cp.async.shared.global {{.*}}, 4, cache = ca
// CHECK:         nvvm.cp.async.commit.group
// CHECK:         scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK:           nvvm.cp.async.shared.global
// CHECK:           nvvm.cp.async.wait.group 1
// The chunk's gamma: a shuffle scan over warp 0.
// CHECK:           gpu.shuffle  up
// CHECK:           gpu.barrier
// CHECK:           nvvm.ldmatrix
// CHECK:           nvvm.mma.sync {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>{{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>
// CHECK:           gpu.barrier
// CHECK:           nvvm.ldmatrix {{.*}}layout = #nvvm.mma_layout<col>
// CHECK:           gpu.barrier
// CHECK:           scf.yield
// CHECK:         memref.store {{.*}} : memref<?x?x64x64xf32>
// CHECK:         gpu.terminator
// CHECK-NOT:   mixer.linear_attention
func.func @simple_gla(%q: !q, %g: memref<?x?x?xf32>, %s: f32, %o: !q,
                      %hT: memref<?x?x64x64xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
      final(%hT : memref<?x?x64x64xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// An f32 output (the backward pass's dq and dk) is stored as f32 pairs,
// not rounded to the input type.
// CHECK-LABEL: func.func @f32_output
// CHECK:       gpu.launch
// CHECK:         vector.store {{.*}} : memref<?x?x?x64xf32, strided<[?, ?, ?, 1], offset: ?>>, vector<2xf32>
// CHECK-NOT:   mixer.linear_attention
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!o = memref<?x?x?x64xf32, strided<[?, ?, ?, 1], offset: ?>>
func.func @f32_output(%q: !q, %s: f32, %o: !o) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%o : !o)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The state pass of a sequence split (no output): K, V and the log decays are
// staged (no Q), the only products are the state update's (4 x 4 x 2 for
// K = V = 64), and nothing but the final state reaches global memory.
// CHECK-LABEL: func.func @state_pass
// CHECK:       gpu.launch
// CHECK-COUNT-10: nvvm.cp.async.shared.global
// CHECK-NOT:   nvvm.cp.async.shared.global
// CHECK:         scf.for
// CHECK-COUNT-10:   nvvm.cp.async.shared.global
// CHECK-NOT:       nvvm.cp.async.shared.global
// CHECK-COUNT-32:  nvvm.mma.sync
// CHECK-NOT:       nvvm.mma.sync
// CHECK:           scf.yield
// CHECK-NOT:     vector.store {{.*}}memref<?x?x?x64xbf16
// CHECK:         memref.store {{.*}} : memref<?x?x64x64xf32>
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @state_pass(%q: !q, %g: memref<?x?x?xf32>, %s: f32, %cu: memref<?xi32>,
                      %hT: memref<?x?x64x64xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) offsets(%cu : memref<?xi32>)
      final(%hT : memref<?x?x64x64xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The gated delta rule: scratch [B, T, H, K + V] for its WY factors, and two
// launches. The first, a block per (chunk, head, sequence), computes A = K K^T
// (mma), solves T = (I + A)^-1 by forward substitution on the first two warps
// (broadcast 4-vector reads of A) and writes W = T K' and U = T V' to the
// scratch. The second is the
// sequential pass: it stages W and U (from column K = 64 on) instead of V and
// corrects the values as U - W S before the scores. Query/key heads are
// value heads divided by the group H / Hq.
// CHECK-LABEL: func.func @gated_delta_rule
// CHECK:       memref.alloc({{.*}}) {mixer.workspace} : memref<?x?x?x128xbf16>
// CHECK:       %[[H:.*]] = memref.dim %arg1, %c2
// CHECK:       %[[HQ:.*]] = memref.dim %arg0, %c2
// CHECK:       %[[GROUP:.*]] = arith.divui %[[H]], %[[HQ]]
// CHECK:       gpu.launch
// CHECK:         arith.divui %{{.*}}, %[[GROUP]]
// CHECK:         nvvm.cp.async.wait.group 0
// CHECK:         nvvm.mma.sync
// CHECK:         vector.load {{.*}} vector<4xf32>
// CHECK:         math.fma
// CHECK:         vector.store {{.*}} : memref<?x?x?x128xbf16>, vector<2xbf16>
// CHECK:         gpu.terminator
// CHECK:       gpu.launch
// CHECK:         scf.for
// CHECK:           nvvm.cp.async.wait.group 1
// CHECK:           nvvm.mma.sync
// CHECK:           arith.subf {{.*}} : vector<2xf32>
// CHECK:           gpu.barrier
// CHECK:           scf.yield
// CHECK-NOT:   mixer.linear_attention
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!v = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @gated_delta_rule(%q: !q, %v: !v, %g: memref<?x?x?xf32>, %b: memref<?x?x?xbf16>,
                            %s: f32, %o: !v) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%v : !v)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !v)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// GLA (a decay per key dimension): scratch [B, T, H, 4K + 64] and two
// launches. The first, a block per (chunk, head, sequence), copies Q, K and
// the f32 log decays (16-byte cp.async), sums the decays along the chunk per
// key dimension, writes the decayed queries and keys and the chunk's decay,
// then the ten 16 x 16 score tiles on or below the diagonal: a warp-wide
// shuffle-max of each diagonal block's total decay picks the tensor cores or
// the exact loop over key dimensions. The second is the sequential pass: it
// stages Qd, Kd and P from the scratch, computes no scores (no mma from a
// Q K^T), and decays the state by column before the update.
// CHECK-LABEL: func.func @gla
// CHECK:       memref.alloc({{.*}}) {mixer.workspace} : memref<?x?x?x320xbf16>
// CHECK:       gpu.launch {{.*}} dynamic_shared_memory_size %c35840_i32
// CHECK:         nvvm.cp.async.wait.group 0
// CHECK:         scf.for {{.*}} iter_args({{.*}}) -> (f32)
// CHECK:         vector.store {{.*}} : memref<?x?x?x320xbf16>, vector<8xbf16>
// CHECK:         llvm.store {{.*}} : f32, !llvm.ptr
// CHECK:         nvvm.mma.sync
// CHECK:         gpu.shuffle  xor
// CHECK:         scf.if {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK:           nvvm.mma.sync
// CHECK:         } else {
// CHECK:           scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK:         vector.store {{.*}} : memref<?x?x?x320xbf16>, vector<2xbf16>
// CHECK:         gpu.terminator
// CHECK:       gpu.launch {{.*}} dynamic_shared_memory_size %c74240_i32
// CHECK:         scf.for
// CHECK:           nvvm.cp.async.wait.group 1
// CHECK-COUNT-84:  nvvm.mma.sync
// CHECK-NOT:       nvvm.mma.sync
// CHECK:           scf.yield
// CHECK-NOT:   mixer.linear_attention
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?x64xf32, strided<[?, ?, ?, 1], offset: ?>>
func.func @gla(%q: !q, %g: !g, %s: f32, %o: !q) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) log_decay(%g : !g)
      scale(%s : f32) outs(%o : !q)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The mLSTM cell (input gate, normaliser, stabiliser), K = V = 64: the stage
// also holds the chunk's input gates; warp 0 scans the log forget gates (up),
// the row stabilisers (a max scan, up), the suffix sums of the forget gates
// (down) and the chunk's largest key weight (xor); the chunk loop carries the
// state and the stabiliser m; the denominators divide the outputs; the first
// value tile writes the final normaliser and stabiliser.
// CHECK-LABEL: func.func @mlstm
// CHECK:       %[[SMEM:.*]] = arith.constant 76560 : i32
// CHECK:       gpu.launch {{.*}} dynamic_shared_memory_size %[[SMEM]]
// CHECK:         memref.load %{{.*}} : memref<?x?xf32>
// CHECK:         scf.for {{.*}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK:           gpu.shuffle  up
// CHECK:           arith.maximumf
// CHECK:           gpu.shuffle  down
// CHECK:           gpu.shuffle  idx
// CHECK:           gpu.shuffle  xor
// CHECK:           gpu.barrier
// CHECK:           nvvm.mma.sync
// CHECK:           math.absf
// CHECK:           arith.divf
// CHECK:           scf.yield
// CHECK:         memref.store {{.*}} : memref<?x?x64x64xf32>
// CHECK:         memref.store {{.*}} : memref<?x?x64xf32>
// CHECK:         memref.store {{.*}} : memref<?x?xf32>
// CHECK-NOT:   mixer.linear_attention
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
func.func @mlstm(%q: !q, %f: !g, %i: !g, %s: f32, %m0: memref<?x?xf32>,
                 %n0: memref<?x?x64xf32>, %c0: memref<?x?x64x64xf32>, %o: !q,
                 %c: memref<?x?x64x64xf32>, %n: memref<?x?x64xf32>, %m: memref<?x?xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%f : !g) input_gate(%i : !g) scale(%s : f32)
      init(%c0 : memref<?x?x64x64xf32>) init_normalizer(%n0 : memref<?x?x64xf32>)
      init_stabilizer(%m0 : memref<?x?xf32>) outs(%o : !q)
      final(%c : memref<?x?x64x64xf32>) final_normalizer(%n : memref<?x?x64xf32>)
      final_stabilizer(%m : memref<?x?xf32>)
      {epsilon = 1.0e-06 : f64, mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The chunk-parallel schedule (the delta rule): the WY factors, then, where the
// fused kernel would launch at most 132 blocks (N H V / 64, at run time), the
// state pass keeping every chunk's initial state (scratch [N or 0, chunks, H, V,
// K] of bf16, sized by the same decision) and the chunk outputs; else the
// fused kernel.
// CHECK-LABEL: func.func @gdr_chunk_parallel
// CHECK:       memref.alloc({{.*}}) {mixer.workspace} : memref<?x?x?x128xbf16>
// CHECK:       gpu.launch {{.*}} function(@gdr_chunk_parallel_wy_prepare)
// CHECK:       %[[SEL:.*]] = arith.select {{.*}} : index
// CHECK:       memref.alloc(%[[SEL]], {{.*}}) {mixer.workspace} : memref<?x?x?x64x64xbf16>
// CHECK:       %[[USE:.*]] = arith.cmpi ule, %{{.*}}, %c132{{.*}} : index
// CHECK:       scf.if %[[USE]] {
// CHECK:         gpu.launch {{.*}} function(@gdr_chunk_parallel_chunk_states)
// CHECK:           vector.store {{.*}} : memref<?x?x?x64x64xbf16>, vector<2xbf16>
// CHECK:         gpu.launch {{.*}} function(@gdr_chunk_parallel_chunk_outputs)
// CHECK:           memref.load {{.*}} : memref<?x?x?x64x64xbf16>
// CHECK:       } else {
// CHECK:         gpu.launch {{.*}} function(@gdr_chunk_parallel_chunked)
// CHECK:       }
// CHECK-NOT:   mixer.linear_attention
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @gdr_chunk_parallel(%q: !q, %g: memref<?x?x?xf32>, %bt: memref<?x?x?xbf16>, %s: f32,
                              %o: !q, %hT: memref<?x?x64x64xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) beta(%bt : memref<?x?x?xbf16>) scale(%s : f32) outs(%o : !q)
      final(%hT : memref<?x?x64x64xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true, chunk_parallel = 132>}
  return
}

// -----

// The delta rule's corrected values (corrected(...)): the sequential pass
// writes each chunk's, 16 bytes a thread, from the shared tile it computed
// them in, after the barrier that completes it.
// CHECK-LABEL: func.func @gated_delta_rule_corrected
// CHECK:       gpu.launch
// CHECK:       gpu.launch
// CHECK:         scf.for
// CHECK:           gpu.barrier
// CHECK:           vector.store %{{.*}}, %arg6[{{.*}}] {alignment = 16 : i64} : memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>, vector<8xbf16>
// CHECK:           scf.yield
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!v = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @gated_delta_rule_corrected(%q: !q, %v: !v, %g: memref<?x?x?xf32>,
                                      %b: memref<?x?x?xbf16>, %s: f32, %o: !v, %u: !v) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%v : !v)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !v) corrected(%u : !v)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}
