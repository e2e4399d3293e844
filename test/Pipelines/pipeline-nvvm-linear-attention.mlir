// REQUIRES: cuda-toolkit
// RUN: mixer-opt %s -split-input-file --mixer-to-nvvm="toolkit=%cuda_toolkit" | FileCheck %s

// The arguments' facts (16-byte aligned rows) make the tensor cores eligible;
// the strategy chooses them.

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// Simple GLA at K = V = 128 becomes the tensor-core kernel: 2 value tiles of
// 64 per head, 4 warps, 107264 bytes (two stages of Q, K, V and the log decays) of dynamic shared memory; in the PTX,
// bf16 m16n8k16 mma.sync on ldmatrix fragments (plain and transposed) and no
// local memory (the state stays in registers). The sequence split's rule is
// evaluated at run time: its branch (a state pass, the scan over pieces, the
// pass from the pieces' states) and the unsplit kernel, on the sizes of the call.
// CHECK-LABEL: func.func @simple_gla
// CHECK:       scf.if
// CHECK:       gpu.launch_func @simple_gla_chunked::@simple_gla_chunked
// CHECK:       gpu.launch_func @simple_gla_kernel
// CHECK:       gpu.launch_func @simple_gla_chunked_{{[0-9]+}}::@simple_gla_chunked blocks
// CHECK:       } else {
// CHECK:       gpu.launch_func @[[UNSPLIT:simple_gla_chunked_[0-9]+]]::@simple_gla_chunked blocks in (%c2{{.*}}, %{{.*}}, %{{.*}}) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %c107264_i32
// CHECK:       gpu.binary @[[UNSPLIT]]
// CHECK-NOT:   __local_depot
// CHECK-DAG:   ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG:   ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-DAG:   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-DAG:   cp.async.cg.shared.global [%rd{{[0-9+]+}}], [%rd{{[0-9]+}}], 16, %r{{[0-9]+}};
// CHECK-DAG:   cp.async.wait_group {{(\\09)?}}1;
func.func @simple_gla(%q: !q {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>, %s: f32,
                      %o: !q {mixer.alignment = 16 : i64}, %hT: memref<?x?x128x128xf32>,
                      %ws: memref<?xi8> {mixer.workspace}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
      final(%hT : memref<?x?x128x128xf32>)
  return
}

// -----

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// Without the caller's promise of 16-byte aligned rows the gated delta rule
// takes the recurrent kernel: threads over the value channels of a head, no
// tensor-core instructions, no scratch.
// CHECK-LABEL: func.func @gated_delta_rule_unaligned
// CHECK:       gpu.launch_func @gated_delta_rule_unaligned_kernel::@gated_delta_rule_unaligned_kernel
// CHECK:       gpu.binary @gated_delta_rule_unaligned_kernel
// CHECK-NOT:   mma.sync
// CHECK:       ex2.approx
func.func @gated_delta_rule_unaligned(%q: !q, %g: memref<?x?x?xf32>, %b: memref<?x?x?xbf16>,
                                      %s: f32, %o: !q) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !q)
  return
}

// -----

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// With it: the WY-factor kernel into scratch [B, T, H, K + V] (a view of the
// workspace argument), then the sequential tensor-core kernel; no split.
// CHECK-LABEL: func.func @gated_delta_rule
// CHECK:       memref.view %{{.*}}[%{{.*}}][%{{.*}}, %{{.*}}, %{{.*}}] : memref<?xi8> to memref<?x?x?x256xbf16>
// CHECK-NOT:   scf.if
// CHECK:       gpu.launch_func @gated_delta_rule_wy_prepare::@gated_delta_rule_wy_prepare
// CHECK:       gpu.launch_func @gated_delta_rule_chunked::@gated_delta_rule_chunked
// CHECK-LABEL: func.func @gated_delta_rule_workspace_bytes
// CHECK:       return %{{.*}} : i64
func.func @gated_delta_rule(%q: !q {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>,
                            %b: memref<?x?x?xbf16>, %s: f32, %o: !q {mixer.alignment = 16 : i64},
                            %ws: memref<?xi8> {mixer.workspace}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !q)
  return
}

// -----

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?x128xf32, strided<[?, ?, ?, 1], offset: ?>>

// GLA at K = V = 128, unsplit (a config pins it): the chunk-factor kernel (a block
// per chunk and head) and the sequential kernel (107520 bytes: two stages of Qd,
// Kd, V, P and the chunk decay); neither spills to local memory.
// CHECK-LABEL: func.func @gla
// CHECK:       gpu.launch_func  @gla_gla_prepare::@gla_gla_prepare blocks
// CHECK:       gpu.launch_func  @gla_chunked::@gla_chunked blocks in (%c2{{.*}}, %{{.*}}, %{{.*}}) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c107520_i32
// CHECK:       gpu.binary @gla_gla_prepare
// CHECK-NOT:   __local_depot
// CHECK:       gpu.binary @gla_chunked
// CHECK-NOT:   __local_depot
func.func @gla(%q: !q {mixer.alignment = 16 : i64}, %g: !g {mixer.alignment = 16 : i64}, %s: f32,
               %o: !q {mixer.alignment = 16 : i64}, %hT: memref<?x?x128x128xf32>,
               %ws: memref<?xi8> {mixer.workspace}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) log_decay(%g : !g)
      scale(%s : f32) outs(%o : !q) final(%hT : memref<?x?x128x128xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}
