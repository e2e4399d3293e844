// REQUIRES: cuda-toolkit
// RUN: mixer-opt %s --mixer-to-nvvm="toolkit=%cuda_toolkit" | FileCheck %s

// The gated delta rule's adjoint on the GPU: the sequential program per (head,
// sequence) becomes a kernel with one thread per pair (no tensor cores; the
// GPU's fallback), its recurrent steps using libdevice's exp; its checkpoints
// live in the workspace, sized by the generated @gdr_adjoint_workspace_bytes.
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
!s = memref<?x?x64x64xf32, strided<[?, ?, ?, ?], offset: ?>>
!dq = memref<?x?x?x64xf32, strided<[?, ?, ?, ?], offset: ?>>
// CHECK-LABEL: func.func @gdr_adjoint(
// CHECK:       memref.view
// CHECK:       gpu.launch_func @gdr_adjoint_kernel::@gdr_adjoint_kernel
// CHECK:       gpu.binary @gdr_adjoint_kernel
// CHECK-SAME:  .entry gdr_adjoint_kernel
// CHECK-SAME:  ex2.approx
// CHECK-SAME:  fma.rn.f32
func.func @gdr_adjoint(%q: !q, %g: !g, %b: !g, %s: f32, %h0: !s, %dq: !dq, %dg: !g,
                       %ws: memref<?xi8> {mixer.workspace}) {
  mixer.linear_attention_adjoint query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : !g) beta(%b : !g) scale(%s : f32) init(%h0 : !s)
      output_grad(%q : !q) final_grad(%h0 : !s)
      query_grad(%dq : !dq) key_grad(%dq : !dq) value_grad(%dq : !dq)
      log_decay_grad(%dg : !g) beta_grad(%dg : !g) init_grad(%h0 : !s)
  return
}
