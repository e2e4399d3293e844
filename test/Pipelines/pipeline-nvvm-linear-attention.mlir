// REQUIRES: cuda-toolkit
// RUN: mixer-opt %s -split-input-file --mixer-to-nvvm="toolkit=%cuda_toolkit sink-constants=1" | FileCheck %s

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// Simple GLA at K = V = 128 becomes the tensor-core kernel: 2 value tiles of
// 64 per head, 4 warps, 107264 bytes (two stages of Q, K, V and the log decays) of dynamic shared memory; in the PTX,
// bf16 m16n8k16 mma.sync on ldmatrix fragments (plain and transposed) and no
// local memory (the state stays in registers).
// CHECK-LABEL: func.func @simple_gla
// CHECK:       gpu.launch_func @simple_gla_chunked::@simple_gla_chunked blocks in (%c2{{.*}}, %{{.*}}, %{{.*}}) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %c107264_i32
// CHECK:       gpu.binary @simple_gla_chunked
// CHECK-NOT:   __local_depot
// CHECK-DAG:   ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG:   ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-DAG:   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-DAG:   cp.async.cg.shared.global [%rd{{[0-9+]+}}], [%rd{{[0-9]+}}], 16, %r{{[0-9]+}};
// CHECK-DAG:   cp.async.wait_group {{(\\09)?}}1;
func.func @simple_gla(%q: !q, %g: memref<?x?x?xf32>, %s: f32, %o: !q,
                      %hT: memref<?x?x128x128xf32>) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
      final(%hT : memref<?x?x128x128xf32>)
  return
}

// -----

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>

// The gated delta rule takes the recurrent kernel: threads over the value
// channels of a head, no tensor-core instructions.
// CHECK-LABEL: func.func @gated_delta_rule
// CHECK:       gpu.launch_func @gated_delta_rule_kernel::@gated_delta_rule_kernel
// CHECK:       gpu.binary @gated_delta_rule_kernel
// CHECK-NOT:   mma.sync
// CHECK:       ex2.approx
func.func @gated_delta_rule(%q: !q, %g: memref<?x?x?xf32>, %b: memref<?x?x?xbf16>, %s: f32,
                            %o: !q) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !q)
  return
}

// -----

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?x128xf32, strided<[?, ?, ?, 1], offset: ?>>
!w = memref<?x?x?x576xbf16, strided<[?, ?, ?, 1], offset: ?>>

// GLA at K = V = 128: the chunk-factor kernel (a block per chunk and head) and
// the sequential kernel (107520 bytes: two stages of Qd, Kd, V, P and the
// chunk decay); neither spills to local memory.
// CHECK-LABEL: func.func @gla
// CHECK:       gpu.launch_func  @gla_gla_prepare::@gla_gla_prepare blocks
// CHECK:       gpu.launch_func  @gla_chunked::@gla_chunked blocks in (%c2{{.*}}, %{{.*}}, %{{.*}}) threads in (%c128, %c1, %c1)  dynamic_shared_memory_size %c107520_i32
// CHECK:       gpu.binary @gla_gla_prepare
// CHECK-NOT:   __local_depot
// CHECK:       gpu.binary @gla_chunked
// CHECK-NOT:   __local_depot
func.func @gla(%q: !q, %g: !g, %s: f32, %o: !q, %hT: memref<?x?x128x128xf32>, %ws: !w) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) log_decay(%g : !g)
      scale(%s : f32) outs(%o : !q) final(%hT : memref<?x?x128x128xf32>) workspace(%ws : !w)
  return
}
