// RUN: mixer-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// The printed form parses back (round trip) with every optional operand.
// CHECK-LABEL: func.func @gated_delta_rule
// CHECK: mixer.linear_attention query(%{{.*}} : memref<1x?x4x64xbf16>) key(%{{.*}} : memref<1x?x4x64xbf16>) value(%{{.*}} : memref<1x?x4x32xbf16>) log_decay(%{{.*}} : memref<1x?x4xf32>) beta(%{{.*}} : memref<1x?x4xbf16>) scale(%{{.*}} : f32) init(%{{.*}} : memref<3x4x64x32xf32>) offsets(%{{.*}} : memref<4xi32>) outs(%{{.*}} : memref<1x?x4x32xbf16>) final(%{{.*}} : memref<3x4x64x32xf32>)
func.func @gated_delta_rule(%q: memref<1x?x4x64xbf16>, %v: memref<1x?x4x32xbf16>,
    %g: memref<1x?x4xf32>, %b: memref<1x?x4xbf16>, %s: f32, %h0: memref<3x4x64x32xf32>,
    %cu: memref<4xi32>, %o: memref<1x?x4x32xbf16>, %hT: memref<3x4x64x32xf32>) {
  mixer.linear_attention query(%q : memref<1x?x4x64xbf16>) key(%q : memref<1x?x4x64xbf16>)
      value(%v : memref<1x?x4x32xbf16>) log_decay(%g : memref<1x?x4xf32>)
      beta(%b : memref<1x?x4xbf16>) scale(%s : f32) init(%h0 : memref<3x4x64x32xf32>)
      offsets(%cu : memref<4xi32>) outs(%o : memref<1x?x4x32xbf16>)
      final(%hT : memref<3x4x64x32xf32>)
  return
}

// -----

// A per-key-dimension decay (GLA) is a rank-4 log_decay.
// CHECK-LABEL: func.func @gla
func.func @gla(%q: memref<2x8x4x16xf32>, %g: memref<2x8x4x16xf32>, %s: f32) {
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) log_decay(%g : memref<2x8x4x16xf32>) scale(%s : f32)
      outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @dynamic_head_dim(%q: memref<2x8x4x?xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op key and value head dimensions must be static}}
  mixer.linear_attention query(%q : memref<2x8x4x?xf32>) key(%q : memref<2x8x4x?xf32>)
      value(%q : memref<2x8x4x?xf32>) scale(%s : f32) outs(%q : memref<2x8x4x?xf32>)
  return
}

// -----

func.func @key_shape(%q: memref<2x8x4x16xf32>, %k: memref<2x8x4x8xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op key must have shape [2, 8, 4, 16] (like query), got [2, 8, 4, 8]}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%k : memref<2x8x4x8xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32) outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @decay_shape(%q: memref<2x8x4x16xf32>, %g: memref<2x8x3xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op log_decay must have shape [2, 8, 4] ([batch, time, heads]), got [2, 8, 3]}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) log_decay(%g : memref<2x8x3xf32>) scale(%s : f32)
      outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @offsets_need_one_row(%q: memref<2x8x4x16xf32>, %cu: memref<3xi32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op with offsets the batch must be 1 (sequences are concatenated along time), got 2}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32) offsets(%cu : memref<3xi32>)
      outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @state_shape(%q: memref<1x8x4x16xf32>, %cu: memref<3xi32>, %h: memref<1x4x16x16xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op final_state must have shape [2, 4, 16, 16] ([sequences, heads, key_dim, value_dim]), got [1, 4, 16, 16]}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%q : memref<1x8x4x16xf32>) scale(%s : f32) offsets(%cu : memref<3xi32>)
      outs(%q : memref<1x8x4x16xf32>) final(%h : memref<1x4x16x16xf32>)
  return
}

// -----

func.func @state_type(%q: memref<1x8x4x16xf32>, %h: memref<1x4x16x16xbf16>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op state element type must be f32 or f64, got 'bf16'}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%q : memref<1x8x4x16xf32>) scale(%s : f32)
      outs(%q : memref<1x8x4x16xf32>) final(%h : memref<1x4x16x16xbf16>)
  return
}

// -----

func.func @input_wider_than_state(%q: memref<1x8x4x16xf64>, %o: memref<1x8x4x16xf32>, %h: memref<1x4x16x16xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op query element type 'f64' is wider than the state element type 'f32'}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf64>) key(%q : memref<1x8x4x16xf64>)
      value(%q : memref<1x8x4x16xf64>) scale(%s : f32)
      outs(%o : memref<1x8x4x16xf32>) final(%h : memref<1x4x16x16xf32>)
  return
}

// -----

func.func @nothing_to_write(%q: memref<1x8x4x16xbf16>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op has nothing to write: give outs, final or both}}
  mixer.linear_attention query(%q : memref<1x8x4x16xbf16>) key(%q : memref<1x8x4x16xbf16>)
      value(%q : memref<1x8x4x16xbf16>) scale(%s : f32)
  return
}

// -----

// Grouped value heads (GVA): 2 query/key heads serve 6 value heads; decays,
// beta and states follow the value heads.
// CHECK-LABEL: func.func @grouped_heads
// CHECK: beta(%{{.*}} : memref<1x8x6xf32>)
func.func @grouped_heads(%q: memref<1x8x2x16xbf16>, %v: memref<1x8x6x32xbf16>,
    %b: memref<1x8x6xf32>, %s: f32, %hT: memref<1x6x16x32xf32>) {
  mixer.linear_attention query(%q : memref<1x8x2x16xbf16>) key(%q : memref<1x8x2x16xbf16>)
      value(%v : memref<1x8x6x32xbf16>) beta(%b : memref<1x8x6xf32>) scale(%s : f32)
      outs(%v : memref<1x8x6x32xbf16>) final(%hT : memref<1x6x16x32xf32>)
  return
}

// -----

func.func @heads_not_grouped(%q: memref<1x8x4x16xf32>, %v: memref<1x8x6x16xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op value heads (6) must be a multiple of query heads (4)}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%v : memref<1x8x6x16xf32>) scale(%s : f32) outs(%v : memref<1x8x6x16xf32>)
  return
}

// -----

// A per-key decay.
// CHECK-LABEL: func.func @vector_decay
// CHECK: log_decay(%{{.*}} : memref<1x8x4x16xf32>)
func.func @vector_decay(%q: memref<1x8x4x16xbf16>, %g: memref<1x8x4x16xf32>,
    %s: f32) {
  mixer.linear_attention query(%q : memref<1x8x4x16xbf16>) key(%q : memref<1x8x4x16xbf16>)
      value(%q : memref<1x8x4x16xbf16>) log_decay(%g : memref<1x8x4x16xf32>) scale(%s : f32)
      outs(%q : memref<1x8x4x16xbf16>)
  return
}

// -----

// value_decay: the log decay runs over the value dimension (the state's columns).
// CHECK-LABEL: func.func @value_decay
// CHECK: log_decay(%{{.*}} : memref<1x8x4x32xf32>) scale(%{{.*}} : f32) outs(%{{.*}} : memref<1x8x4x32xf32>) value_decay
func.func @value_decay(%q: memref<1x8x4x16xf32>, %v: memref<1x8x4x32xf32>,
                       %g: memref<1x8x4x32xf32>, %s: f32) {
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%v : memref<1x8x4x32xf32>) log_decay(%g : memref<1x8x4x32xf32>) scale(%s : f32)
      outs(%v : memref<1x8x4x32xf32>) value_decay
  return
}

// -----

func.func @value_decay_shape(%q: memref<1x8x4x16xf32>, %v: memref<1x8x4x32xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op log_decay must have shape [1, 8, 4, 32] ([batch, time, heads, value_dim] (value_decay)), got [1, 8, 4, 16]}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%v : memref<1x8x4x32xf32>) log_decay(%q : memref<1x8x4x16xf32>) scale(%s : f32)
      outs(%v : memref<1x8x4x32xf32>) value_decay
  return
}

// -----

func.func @value_decay_per_head(%q: memref<1x8x4x16xf32>, %g: memref<1x8x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op value_decay needs a log_decay of rank 4 ([batch, time, heads, value_dim]), got rank 3}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%q : memref<1x8x4x16xf32>) log_decay(%g : memref<1x8x4xf32>) scale(%s : f32)
      outs(%q : memref<1x8x4x16xf32>) value_decay
  return
}

// -----

func.func @value_decay_without_decay(%q: memref<1x8x4x16xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op value_decay without a log_decay}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%q : memref<1x8x4x16xf32>) scale(%s : f32) outs(%q : memref<1x8x4x16xf32>)
      value_decay
  return
}

// -----

// The mLSTM cell: an input gate, the log forget gate as log_decay, and the
// normaliser and stabiliser states beside S.
// CHECK-LABEL: func.func @mlstm
// CHECK: input_gate(%{{.*}} : memref<2x8x4xf32>) scale(%{{.*}} : f32) init(%{{.*}} : memref<2x4x16x32xf32>) init_normalizer(%{{.*}} : memref<2x4x16xf32>) init_stabilizer(%{{.*}} : memref<2x4xf32>) outs(%{{.*}} : memref<2x8x4x32xbf16>) final(%{{.*}} : memref<2x4x16x32xf32>) final_normalizer(%{{.*}} : memref<2x4x16xf32>) final_stabilizer(%{{.*}} : memref<2x4xf32>) {epsilon = 9.99999{{[0-9]+}}E-7 : f64}
func.func @mlstm(%q: memref<2x8x4x16xbf16>, %v: memref<2x8x4x32xbf16>, %f: memref<2x8x4xf32>,
                 %i: memref<2x8x4xf32>, %s: f32, %c: memref<2x4x16x32xf32>,
                 %n: memref<2x4x16xf32>, %m: memref<2x4xf32>) {
  mixer.linear_attention query(%q : memref<2x8x4x16xbf16>) key(%q : memref<2x8x4x16xbf16>)
      value(%v : memref<2x8x4x32xbf16>) log_decay(%f : memref<2x8x4xf32>)
      input_gate(%i : memref<2x8x4xf32>) scale(%s : f32) init(%c : memref<2x4x16x32xf32>)
      init_normalizer(%n : memref<2x4x16xf32>) init_stabilizer(%m : memref<2x4xf32>)
      outs(%v : memref<2x8x4x32xbf16>) final(%c : memref<2x4x16x32xf32>)
      final_normalizer(%n : memref<2x4x16xf32>) final_stabilizer(%m : memref<2x4xf32>)
      {epsilon = 1.0e-6 : f64}
  return
}

// -----

func.func @normalizer_without_input_gate(%q: memref<2x8x4x16xf32>, %s: f32,
                                         %n: memref<2x4x16xf32>) {
  // expected-error @+1 {{'mixer.linear_attention' op init_normalizer is an mLSTM state: it needs input_gate}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32) init_normalizer(%n : memref<2x4x16xf32>)
      outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @mlstm_stabilizer_shape(%q: memref<2x8x4x16xf32>, %i: memref<2x8x4xf32>, %s: f32,
                                  %m: memref<2x4x1xf32>) {
  // expected-error @+1 {{'mixer.linear_attention' op final_stabilizer must have shape [2, 4] ([sequences, heads]), got [2, 4, 1]}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) input_gate(%i : memref<2x8x4xf32>) scale(%s : f32)
      outs(%q : memref<2x8x4x16xf32>) final_stabilizer(%m : memref<2x4x1xf32>)
  return
}

// -----

func.func @mlstm_vector_forget_gate(%q: memref<2x8x4x16xf32>, %i: memref<2x8x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op with input_gate (mLSTM) log_decay must be a per-head forget gate [batch, time, heads]}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) log_decay(%q : memref<2x8x4x16xf32>)
      input_gate(%i : memref<2x8x4xf32>) scale(%s : f32) outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @mlstm_with_beta(%q: memref<2x8x4x16xf32>, %i: memref<2x8x4xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op input_gate (mLSTM) and beta (delta rule) exclude each other}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) beta(%i : memref<2x8x4xf32>)
      input_gate(%i : memref<2x8x4xf32>) scale(%s : f32) outs(%q : memref<2x8x4x16xf32>)
  return
}

// -----

// The delta rule's corrected values: like value, printed after outs.
// CHECK-LABEL: func.func @corrected_values
// CHECK: beta(%{{.*}} : memref<2x8x4xf32>) scale(%{{.*}} : f32) outs(%{{.*}} : memref<2x8x4x32xbf16>) corrected(%{{.*}} : memref<2x8x4x32xbf16>) final(
func.func @corrected_values(%q: memref<2x8x4x16xbf16>, %v: memref<2x8x4x32xbf16>,
    %b: memref<2x8x4xf32>, %s: f32, %o: memref<2x8x4x32xbf16>, %u: memref<2x8x4x32xbf16>,
    %hT: memref<2x4x16x32xf32>) {
  mixer.linear_attention query(%q : memref<2x8x4x16xbf16>) key(%q : memref<2x8x4x16xbf16>)
      value(%v : memref<2x8x4x32xbf16>) beta(%b : memref<2x8x4xf32>) scale(%s : f32)
      outs(%o : memref<2x8x4x32xbf16>) corrected(%u : memref<2x8x4x32xbf16>)
      final(%hT : memref<2x4x16x32xf32>)
  return
}

// -----

func.func @corrected_values_without_beta(%q: memref<2x8x4x16xf32>, %s: f32) {
  // expected-error @+1 {{'mixer.linear_attention' op corrected_values are the delta rule's: they need beta}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) scale(%s : f32) outs(%q : memref<2x8x4x16xf32>)
      corrected(%q : memref<2x8x4x16xf32>)
  return
}

// -----

func.func @corrected_values_shape(%q: memref<2x8x4x16xf32>, %b: memref<2x8x4xf32>, %s: f32,
    %u: memref<2x8x4x8xf32>) {
  // expected-error @+1 {{'mixer.linear_attention' op corrected_values must have shape [2, 8, 4, 16] (like value), got [2, 8, 4, 8]}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) beta(%b : memref<2x8x4xf32>) scale(%s : f32)
      outs(%q : memref<2x8x4x16xf32>) corrected(%u : memref<2x8x4x8xf32>)
  return
}

// -----

func.func @corrected_values_too_wide(%q: memref<2x8x4x16xf32>, %b: memref<2x8x4xf32>, %s: f32,
    %u: memref<2x8x4x16xf64>) {
  // expected-error @+1 {{'mixer.linear_attention' op corrected_values element type 'f64' is wider than the state element type 'f32'}}
  mixer.linear_attention query(%q : memref<2x8x4x16xf32>) key(%q : memref<2x8x4x16xf32>)
      value(%q : memref<2x8x4x16xf32>) beta(%b : memref<2x8x4xf32>) scale(%s : f32)
      outs(%q : memref<2x8x4x16xf32>) corrected(%u : memref<2x8x4x16xf64>)
  return
}

// -----

func.func @corrected_values_with_pieces(%q: memref<1x8x4x16xf32>, %b: memref<1x8x4xf32>,
    %s: f32, %n: index, %hT: memref<1x2x4x16x16xf32>) {
  // expected-error @+1 {{'mixer.linear_attention' op corrected_values are not defined with pieces}}
  mixer.linear_attention query(%q : memref<1x8x4x16xf32>) key(%q : memref<1x8x4x16xf32>)
      value(%q : memref<1x8x4x16xf32>) beta(%b : memref<1x8x4xf32>) scale(%s : f32)
      pieces(%n) outs(%q : memref<1x8x4x16xf32>) corrected(%q : memref<1x8x4x16xf32>)
      final(%hT : memref<1x2x4x16x16xf32>)
  return
}
