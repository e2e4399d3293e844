// RUN: mixer-opt %s -split-input-file -verify-diagnostics

// What the lowerings cannot take in bounded time and memory is refused by the
// verifiers (each case was a crash, an out-of-memory abort or a minutes-long
// compile before): unroll bounds, static sizes that cannot be indexed, and
// element types the lowerings do not convert.

// A channel scan adjoint on complex series with a real carry (the lowering's
// float conversion segfaulted on it).
!v = memref<?xcomplex<f64>, strided<[?], offset: ?>>
func.func @complex_series_real_carry(%a: !v, %h: !v, %dh: !v, %c: f32, %g: f32, %da: !v, %db: !v) -> f32 {
  // expected-error @+1 {{'mixer.channel_scan_adjoint' op gates are complex ('complex<f64>') but the state is real ('f32')}}
  %r = mixer.channel_scan_adjoint global gates(%a : !v) states(%h : !v) output_grad(%dh : !v)
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v) inputs_grad(%db : !v) -> f32
  return %r : f32
}

// -----

!r = memref<?xf32, strided<[?], offset: ?>>
!c = memref<?xcomplex<f32>, strided<[?], offset: ?>>
func.func @complex_gradient(%a: !r, %h: !r, %dh: !r, %c: f32, %g: f32, %da: !c, %db: !c) -> f32 {
  // expected-error @+1 {{'mixer.channel_scan_adjoint' op gates_grad element type must be a float, got 'complex<f32>'}}
  %r = mixer.channel_scan_adjoint global gates(%a : !r) states(%h : !r) output_grad(%dh : !r)
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !c) inputs_grad(%db : !c) -> f32
  return %r : f32
}

// -----

// A head dimension of 2^31 (the recurrent lowering ran out of memory
// unrolling the state column).
!q = memref<?x?x?x2147483648xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @huge_key_dim(%q: !q, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op key_dim 2147483648 exceeds 1024, the widest the lowerings unroll}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%q : !q)
  return
}

// -----

!q = memref<?x?x2x4096xf32>
func.func @wide_key_dim(%q: !q, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op key_dim 4096 exceeds 1024}}
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%q : !q)
  return
}

// -----

// Static sizes whose bytes do not fit the index arithmetic.
func.func @static_elements_overflow(%a: memref<4611686018427387904x2x2xf32>, %h: memref<4611686018427387904x2xf32>) {
  // expected-error @+1 {{'mixer.scan' op operand #0 of type 'memref<4611686018427387904x2x2xf32>' spans more than 2^62 bytes}}
  mixer.scan global gates(%a : memref<4611686018427387904x2x2xf32>) inputs(%a : memref<4611686018427387904x2x2xf32>)
      final(%h : memref<4611686018427387904x2xf32>)
  return
}

// -----

!s = memref<2x8x4xf32, strided<[4611686018427387904, 4, 1]>>
func.func @static_stride_overflow(%a: !s, %h: memref<2x4xf32>) {
  // expected-error @+1 {{'mixer.scan' op operand #0 of type 'memref<2x8x4xf32, strided<[4611686018427387904, 4, 1]>>' spans more than 2^62 bytes}}
  mixer.scan global gates(%a : !s) inputs(%a : !s) final(%h : memref<2x4xf32>)
  return
}

// -----

// A jagged block is unrolled into registers (65536 steps took 29 s and 49 MB
// of IR; the sm_90a adjoint of a 256-step block compiles in 21 s, 128 in 6.6 s).
func.func @huge_block(%a: memref<1x?x8xf32>, %h: memref<1x?x8xf32>) {
  // expected-error @+1 {{jagged window block must be at most 256 (the lowerings unroll a block into registers), got 65536}}
  mixer.scan jagged<block = 65536, k = 2> gates(%a : memref<1x?x8xf32>) inputs(%a : memref<1x?x8xf32>)
      outs(%h : memref<1x?x8xf32>)
  return
}

// -----

// The target's chip is "cpu" or sm_<version>[a|f].
// expected-error @+1 {{target chip must be "cpu" or a CUDA architecture like "sm_90a", got "sm_"}}
module attributes {mixer.target = #mixer.target<chip = "sm_">} {
}

// -----

// A lowering config's unroll is bounded (mixer-fuzz: 2^32 ran the channel scan
// lowering out of memory).
!v = memref<?xf32, strided<[?], offset: ?>>
func.func @huge_unroll(%a: !v, %h: !v, %dh: !v, %c: f32, %g: f32, %da: !v, %db: !v) -> f32 {
  // expected-error @+3 {{lowering_config: unroll must be at most 64, got 4294967296}}
  %r = mixer.channel_scan_adjoint global gates(%a : !v) states(%h : !v) output_grad(%dh : !v)
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v) inputs_grad(%db : !v)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 4294967296>} -> f32
  return %r : f32
}

// -----

func.func @too_many_threads(%a: memref<1x?x8xf32>, %h: memref<1x?x8xf32>) {
  // expected-error @+3 {{lowering_config: block must launch on a GPU}}
  mixer.scan global gates(%a : memref<1x?x8xf32>) inputs(%a : memref<1x?x8xf32>)
      outs(%h : memref<1x?x8xf32>)
      {mixer.lowering_config = #mixer.lowering_config<block = [1024, 2, 1]>}
  return
}
