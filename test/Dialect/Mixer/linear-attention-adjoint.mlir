// RUN: mixer-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// The printed form parses back (round trip): the gated delta rule's adjoint with
// states, offsets and grouped value heads (query/key gradients per value head).
// CHECK-LABEL: func.func @gated_delta_rule
// CHECK: mixer.linear_attention_adjoint query(%{{.*}} : memref<1x?x2x16xbf16>) key(%{{.*}} : memref<1x?x2x16xbf16>) value(%{{.*}} : memref<1x?x4x32xbf16>) log_decay(%{{.*}} : memref<1x?x4xf32>) beta(%{{.*}} : memref<1x?x4xbf16>) scale(%{{.*}} : f32) init(%{{.*}} : memref<3x4x16x32xf32>) offsets(%{{.*}} : memref<4xi32>) output_grad(%{{.*}} : memref<1x?x4x32xbf16>) final_grad(%{{.*}} : memref<3x4x16x32xf32>) query_grad(%{{.*}} : memref<1x?x4x16xf32>) key_grad(%{{.*}} : memref<1x?x4x16xf32>) value_grad(%{{.*}} : memref<1x?x4x32xf32>) log_decay_grad(%{{.*}} : memref<1x?x4xf32>) beta_grad(%{{.*}} : memref<1x?x4xf32>) init_grad(%{{.*}} : memref<3x4x16x32xf32>)
func.func @gated_delta_rule(%q: memref<1x?x2x16xbf16>, %v: memref<1x?x4x32xbf16>,
    %g: memref<1x?x4xf32>, %b: memref<1x?x4xbf16>, %s: f32, %h0: memref<3x4x16x32xf32>,
    %cu: memref<4xi32>, %dq: memref<1x?x4x16xf32>,
    %dv: memref<1x?x4x32xf32>, %dg: memref<1x?x4xf32>) {
  mixer.linear_attention_adjoint query(%q : memref<1x?x2x16xbf16>) key(%q : memref<1x?x2x16xbf16>)
      value(%v : memref<1x?x4x32xbf16>) log_decay(%g : memref<1x?x4xf32>)
      beta(%b : memref<1x?x4xbf16>) scale(%s : f32) init(%h0 : memref<3x4x16x32xf32>)
      offsets(%cu : memref<4xi32>) output_grad(%v : memref<1x?x4x32xbf16>)
      final_grad(%h0 : memref<3x4x16x32xf32>)
      query_grad(%dq : memref<1x?x4x16xf32>) key_grad(%dq : memref<1x?x4x16xf32>)
      value_grad(%dv : memref<1x?x4x32xf32>) log_decay_grad(%dg : memref<1x?x4xf32>)
      beta_grad(%dg : memref<1x?x4xf32>) init_grad(%h0 : memref<3x4x16x32xf32>)
  return
}

// -----

// The mLSTM cell: the normaliser and stabiliser states and their gradients.
// CHECK-LABEL: func.func @mlstm
// CHECK: mixer.linear_attention_adjoint {{.*}} input_gate({{.*}}) scale({{.*}}) init({{.*}}) init_normalizer({{.*}}) init_stabilizer({{.*}}) output_grad({{.*}}) final_grad({{.*}}) final_normalizer_grad({{.*}}) final_stabilizer_grad({{.*}}) {{.*}} input_gate_grad({{.*}}) init_grad({{.*}}) init_normalizer_grad({{.*}}) init_stabilizer_grad({{.*}}) {epsilon = 9.9999999999999995E-7 : f64}
func.func @mlstm(%q: memref<2x?x3x8xf32>, %v: memref<2x?x3x4xf32>, %g: memref<2x?x3xf32>,
    %s: f32, %c: memref<2x3x8x4xf32>, %n: memref<2x3x8xf32>, %m: memref<2x3xf32>) {
  mixer.linear_attention_adjoint query(%q : memref<2x?x3x8xf32>) key(%q : memref<2x?x3x8xf32>)
      value(%v : memref<2x?x3x4xf32>) log_decay(%g : memref<2x?x3xf32>)
      input_gate(%g : memref<2x?x3xf32>) scale(%s : f32) init(%c : memref<2x3x8x4xf32>)
      init_normalizer(%n : memref<2x3x8xf32>) init_stabilizer(%m : memref<2x3xf32>)
      output_grad(%v : memref<2x?x3x4xf32>) final_grad(%c : memref<2x3x8x4xf32>)
      final_normalizer_grad(%n : memref<2x3x8xf32>) final_stabilizer_grad(%m : memref<2x3xf32>) query_grad(%q : memref<2x?x3x8xf32>)
      key_grad(%q : memref<2x?x3x8xf32>) value_grad(%v : memref<2x?x3x4xf32>)
      log_decay_grad(%g : memref<2x?x3xf32>) input_gate_grad(%g : memref<2x?x3xf32>)
      init_grad(%c : memref<2x3x8x4xf32>) init_normalizer_grad(%n : memref<2x3x8xf32>)
      init_stabilizer_grad(%m : memref<2x3xf32>) {epsilon = 1.0e-06 : f64}
  return
}

// -----

func.func @missing_gradient(%q: memref<2x8x4x16xf32>, %g: memref<2x8x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention_adjoint' op log_decay_grad must be given exactly when its forward operand is}}
  mixer.linear_attention_adjoint query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) log_decay(%g : memref<2x8x4xf32>) scale(%s : f32)
      output_grad(%q : memref<2x8x4x16xf32>)
      query_grad(%q : memref<2x8x4x16xf32>) key_grad(%q : memref<2x8x4x16xf32>)
      value_grad(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @gradient_without_operand(%q: memref<2x8x4x16xf32>, %b: memref<2x8x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention_adjoint' op beta_grad must be given exactly when its forward operand is}}
  mixer.linear_attention_adjoint query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32)
      output_grad(%q : memref<2x8x4x16xf32>)
      query_grad(%q : memref<2x8x4x16xf32>) key_grad(%q : memref<2x8x4x16xf32>)
      value_grad(%q : memref<2x8x4x16xf32>) beta_grad(%b : memref<2x8x4xf32>)
  return
}

// -----

func.func @query_grad_per_value_head(%q: memref<2x8x2x16xf32>, %v: memref<2x8x4x16xf32>,
                                     %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention_adjoint' op query_grad must have shape [2, 8, 4, 16] ([batch, time, value heads, key_dim]: per value head), got [2, 8, 2, 16]}}
  mixer.linear_attention_adjoint query(%q : memref<2x8x2x16xf32>) key(%q : memref<2x8x2x16xf32>)
      value(%v : memref<2x8x4x16xf32>) scale(%s : f32)
      output_grad(%v : memref<2x8x4x16xf32>)
      query_grad(%q : memref<2x8x2x16xf32>) key_grad(%v : memref<2x8x4x16xf32>)
      value_grad(%v : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @stabilizer_grad_needs_mlstm(%q: memref<2x8x4x16xf32>, %m: memref<2x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention_adjoint' op final_stabilizer_grad is an mLSTM state's: it needs input_gate}}
  mixer.linear_attention_adjoint query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32)
      output_grad(%q : memref<2x8x4x16xf32>) final_stabilizer_grad(%m : memref<2x4xf32>)
      query_grad(%q : memref<2x8x4x16xf32>) key_grad(%q : memref<2x8x4x16xf32>)
      value_grad(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @gradient_wider_than_state(%q: memref<2x8x4x16xf32>, %d: memref<2x8x4x16xf64>,
                                     %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention_adjoint' op key_grad element type 'f64' is wider than the state element type 'f32'}}
  mixer.linear_attention_adjoint query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32)
      output_grad(%q : memref<2x8x4x16xf32>)
      query_grad(%q : memref<2x8x4x16xf32>) key_grad(%d : memref<2x8x4x16xf64>)
      value_grad(%q : memref<2x8x4x16xf32>)
  return
}
