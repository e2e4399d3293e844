// RUN: mixer-opt %s -split-input-file --mixer-lower-linear-attention-mma -verify-diagnostics -o /dev/null

// An op configured for the tensor cores that they cannot take is an error
// naming why.
// Rows move as 16-byte vectors, so the head dimension needs a static unit stride.
func.func @strided_head_dim(%q: memref<?x?x?x64xbf16, strided<[?, ?, ?, ?], offset: ?>>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot take the tensor-core lowering: head dimension without a static unit stride}}
  mixer.linear_attention query(%q : memref<?x?x?x64xbf16, strided<[?, ?, ?, ?], offset: ?>>)
      key(%q : memref<?x?x?x64xbf16, strided<[?, ?, ?, ?], offset: ?>>)
      value(%q : memref<?x?x?x64xbf16, strided<[?, ?, ?, ?], offset: ?>>) scale(%s : f32)
      outs(%q : memref<?x?x?x64xbf16, strided<[?, ?, ?, ?], offset: ?>>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// A per-value-dimension decay (GLA's gradient passes) has no chunked kernel.
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
!g = memref<?x?x?x64xf32, strided<[?, ?, ?, 1], offset: ?>>
func.func @value_decay(%q: !q, %g: !g, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot take the tensor-core lowering: per-value-dimension decay}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) log_decay(%g : !g)
      scale(%s : f32) outs(%q : !q) value_decay
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The mLSTM cell's kernel reads f32 gates (the frontends pass them so).
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @mlstm_bf16_input_gate(%q: !q, %f: memref<?x?x?xf32>, %i: memref<?x?x?xbf16>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot take the tensor-core lowering: mLSTM input gate that is not f32}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) log_decay(%f : memref<?x?x?xf32>)
      input_gate(%i : memref<?x?x?xbf16>) scale(%s : f32) outs(%q : !q)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// Nor an mLSTM cell without a forget gate (the recurrent kernel takes it).
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @mlstm_no_forget_gate(%q: !q, %i: memref<?x?x?xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot take the tensor-core lowering: the mLSTM cell without a forget gate}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q)
      input_gate(%i : memref<?x?x?xf32>) scale(%s : f32) outs(%q : !q)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>}
  return
}

// -----

// The kernels' chunk is 64 steps.
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @chunk_32(%q: !q, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot take the tensor-core lowering: its chunk is 64 steps, the config asks for 32}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%q : !q)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 32, block_v = 64>}
  return
}

// -----

// Splits are mixer-split-linear-attention's.
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @unsplit(%q: !q, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op mixer-lower-linear-attention-mma: the config splits keys or sequences; run mixer-split-linear-attention first}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%q : !q)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sequence_split = #mixer.sequence_split<piece = 128>>}
  return
}

// -----

// The chunk-parallel schedule needs an output (its second kernel writes it).
!q = memref<?x?x?x64xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @chunk_parallel_no_output(%q: !q, %s: f32, %hT: memref<?x?x64x64xf32>) {
  // expected-error @+1 {{'mixer.linear_attention' op cannot run chunk-parallel: no output}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32)
      final(%hT : memref<?x?x64x64xf32>)
      {mixer.lowering_config = #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true, chunk_parallel = 132>}
  return
}
