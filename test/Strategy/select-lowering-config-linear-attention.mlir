// RUN: mixer-opt %s --mixer-select-lowering-config | FileCheck %s

// What the strategy chooses for linear attention on the H200 (132 SMs).

!q = memref<?x?x?x128xbf16, strided<[?, ?, ?, 1], offset: ?>>
!q2 = memref<?x?x?x256xbf16, strided<[?, ?, ?, 1], offset: ?>>
!v32 = memref<?x?x?x32xbf16, strided<[?, ?, ?, 1], offset: ?>>
module attributes {mixer.target = #mixer.target<chip = "sm_90a", sm_count = 132, shared_memory = 232448>} {
// K = V = 128, rows 16-byte aligned: tensor cores, value tiles of 64, the
// sequence split's run-time rule (split when N x tiles <= 66 blocks and sequences
// are >= 4096 steps; pieces aiming at 528 blocks, >= 512 steps).
// CHECK-LABEL: func.func @simple_gla(
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = chunked, sink_constants = true, chunk = 64, block_v = 64, sequence_split = <max_programs = 66, min_length = 4096, target_programs = 528, min_piece = 512>>
func.func @simple_gla(%q: !q {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>, %s: f32,
                      %o: !q {mixer.alignment = 16 : i64}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
  return
}
// The mLSTM cell: the tensor-core kernel, never a sequence split (its pieces
// would not combine through a scan): chunk-parallel where the fused kernel
// would launch at most 66 blocks (half the SMs; the delta rule: a quarter).
// CHECK-LABEL: func.func @mlstm(
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = chunked, sink_constants = true, chunk = 64, block_v = 64, chunk_parallel = 66>}
func.func @mlstm(%q: !q {mixer.alignment = 16 : i64}, %f: memref<?x?x?xf32>,
                 %i: memref<?x?x?xf32>, %s: f32, %o: !q {mixer.alignment = 16 : i64}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%f : memref<?x?x?xf32>) input_gate(%i : memref<?x?x?xf32>) scale(%s : f32)
      outs(%o : !q)
  return
}
// No alignment promised: cp.async cannot copy the rows; the recurrent kernel.
// CHECK-LABEL: func.func @simple_gla_unaligned
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = recurrent, block = [128, 1, 1], sink_constants = true>
func.func @simple_gla_unaligned(%q: !q, %g: memref<?x?x?xf32>, %s: f32, %o: !q) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
  return
}
// K = 256 with an additive update: a key split into passes of 128 keys.
// CHECK-LABEL: func.func @wide_keys
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = chunked, sink_constants = true, chunk = 64, block_v = 64, key_split = 128, sequence_split = <max_programs = 66, min_length = 4096, target_programs = 528, min_piece = 512>>
func.func @wide_keys(%q: !q2 {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>, %s: f32,
                      %o: !q2 {mixer.alignment = 16 : i64}) {
  mixer.linear_attention query(%q : !q2) key(%q : !q2) value(%q : !q2)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q2)
  return
}
// The delta rule with V = 32: its chunk-factor kernel is validated for V a
// multiple of 64 only, so the recurrent kernel (the same rule for every frontend).
// CHECK-LABEL: func.func @delta_v32
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = recurrent, block = [128, 1, 1], sink_constants = true>
func.func @delta_v32(%q: !q {mixer.alignment = 16 : i64}, %v: !v32 {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>,
                     %b: memref<?x?x?xbf16>, %s: f32, %o: !v32 {mixer.alignment = 16 : i64}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%v : !v32)
      log_decay(%g : memref<?x?x?xf32>) beta(%b : memref<?x?x?xbf16>) scale(%s : f32)
      outs(%o : !v32)
  return
}
// A config with kernel = auto overrides only what it names: value tiles of 32
// and fixed pieces of 128 steps on top of the strategy's choice.
// CHECK-LABEL: func.func @override
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = chunked, sink_constants = true, chunk = 64, block_v = 32, sequence_split = <piece = 128>>
func.func @override(%q: !q {mixer.alignment = 16 : i64}, %g: memref<?x?x?xf32>, %s: f32,
                      %o: !q {mixer.alignment = 16 : i64}) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      log_decay(%g : memref<?x?x?xf32>) scale(%s : f32) outs(%o : !q)
      {mixer.lowering_config = #mixer.lowering_config<block_v = 32, sequence_split = #mixer.sequence_split<piece = 128>>}
  return
}
}
