// RUN: mixer-opt %s -split-input-file -verify-diagnostics

func.func @rank(%a: tensor<64x8xf32>, %e: tensor<64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op gates must have rank 3 ([batch, time, channels]), got rank 2}}
  %h = mixer.scan global gates(%a : tensor<64x8xf32>) inputs(%a : tensor<64x8xf32>)
      outs(%e : tensor<64x8xf32>) -> tensor<64x8xf32>
  return
}

// -----

func.func @shape_mismatch(%a: tensor<2x64x8xf32>, %b: tensor<2x63x8xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op inputs must have shape [2, 64, 8] (like gates), got [2, 63, 8]}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%b : tensor<2x63x8xf32>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @state_shape(%a: tensor<2x64x8xf32>, %h0: tensor<2x7xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op initial_state must have shape [2, 8] ([batch, channels]), got [2, 7]}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      init(%h0 : tensor<2x7xf32>) outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @no_destination(%a: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op needs an output or a final_state destination (or both)}}
  mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
  return
}

// -----

func.func @narrowing(%a: tensor<2x64x8xf64>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op gates element type 'f64' is wider than the state element type 'f32'}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf64>) inputs(%a : tensor<2x64x8xf64>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @complex_into_real(%a: tensor<2x64x8xf32>, %b: tensor<2x64x8xcomplex<f32>>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op inputs are complex ('complex<f32>') but the state is real ('f32')}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%b : tensor<2x64x8xcomplex<f32>>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @half_state(%a: tensor<2x64x8xf16>, %e: tensor<2x64x8xf16>) {
  // expected-error @+1 {{'mixer.scan' op state element type must be f32, f64, complex<f32> or complex<f64>, got 'f16'}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf16>) inputs(%a : tensor<2x64x8xf16>)
      outs(%e : tensor<2x64x8xf16>) -> tensor<2x64x8xf16>
  return
}

// -----

func.func @k1_with_init(%a: tensor<2x64x8xf32>, %h0: tensor<2x8xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op a jagged window with k = 1 has no carry; an initial_state would be ignored}}
  %h = mixer.scan jagged<block = 16, k = 1> gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      init(%h0 : tensor<2x8xf32>) outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @bad_k(%a: tensor<2x64x8xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{jagged window k must be 1 or 2, got 3}}
  %h = mixer.scan jagged<block = 16, k = 3> gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @bad_window(%a: tensor<2x64x8xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{expected window 'global' or 'jagged<block = N, k = K>', got 'sliding'}}
  %h = mixer.scan sliding gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return
}

// -----

func.func @mixed_forms(%a: tensor<2x64x8xf32>, %e: memref<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op operands must be all tensors or all memrefs; output is 'memref<2x64x8xf32>' but gates are 'tensor<2x64x8xf32>'}}
  mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      outs(%e : memref<2x64x8xf32>)
  return
}

// -----

func.func @result_type(%a: tensor<2x64x8xf32>, %e: tensor<2x64x8xf32>) {
  // expected-error @+1 {{'mixer.scan' op expected type of operand #2 ('tensor<2x64x8xf32>') to match type of corresponding result ('tensor<2x64x8xf64>')}}
  %h = mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%a : tensor<2x64x8xf32>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf64>
  return
}

// -----

func.func @channel_length(%a: memref<16xf32>, %b: memref<15xf32>) {
  // expected-error @+1 {{'mixer.channel_scan' op gates and inputs must have the same length, got [16] and [15]}}
  %r = mixer.channel_scan global gates(%a : memref<16xf32>) inputs(%b : memref<15xf32>) -> f32
  return
}

// -----

func.func @channel_init_type(%a: memref<16xf32>, %c: f64) {
  // expected-error @+1 {{'mixer.channel_scan' op initial_state type 'f64' differs from the state type 'f32'}}
  %r = mixer.channel_scan global gates(%a : memref<16xf32>) inputs(%a : memref<16xf32>) init(%c : f64) -> f32
  return
}

// -----

func.func @window_attr_block() attributes {
  // expected-error @+1 {{jagged window block must be positive, got 0}}
  w = #mixer.window<jagged, block = 0, k = 2>} {
  return
}

// -----

func.func @adjoint_reverse(%a: memref<?x?x?xf32>, %s: memref<?x?xf32>) {
  // expected-error @+1 {{'mixer.scan_adjoint' op reverse jagged scans are not supported by the fused adjoint yet}}
  mixer.scan_adjoint jagged<block = 16, k = 2> reverse gates(%a : memref<?x?x?xf32>) inputs(%a : memref<?x?x?xf32>)
      states(%a : memref<?x?x?xf32>) output_grad(%a : memref<?x?x?xf32>)
      gates_grad(%a : memref<?x?x?xf32>) inputs_grad(%a : memref<?x?x?xf32>)
  return
}

// -----

func.func @adjoint_complex(%a: memref<?xcomplex<f32>>, %c: complex<f32>) {
  // expected-error @+1 {{'mixer.channel_scan_adjoint' op the adjoint supports f32 and f64 states only}}
  %r = mixer.channel_scan_adjoint global gates(%a : memref<?xcomplex<f32>>) states(%a : memref<?xcomplex<f32>>)
      output_grad(%a : memref<?xcomplex<f32>>) -> complex<f32>
  return
}

// -----

func.func @adjoint_jagged_needs_inputs(%a: memref<?xf32>) {
  // expected-error @+1 {{'mixer.channel_scan_adjoint' op a jagged window recomputes the local states: it needs inputs}}
  %r = mixer.channel_scan_adjoint jagged<block = 16, k = 2> gates(%a : memref<?xf32>)
      output_grad(%a : memref<?xf32>) -> f32
  return
}
