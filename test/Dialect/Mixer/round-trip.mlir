// RUN: mixer-opt %s | mixer-opt | FileCheck %s
// RUN: mixer-opt %s --mlir-print-op-generic | mixer-opt | FileCheck %s

// CHECK-LABEL: func.func @global_tensor
func.func @global_tensor(%a: tensor<2x64x8xf32>, %b: tensor<2x64x8xf32>,
                         %e: tensor<2x64x8xf32>) -> tensor<2x64x8xf32> {
  // CHECK: mixer.scan global gates(%{{.*}} : tensor<2x64x8xf32>) inputs(%{{.*}} : tensor<2x64x8xf32>) outs(%{{.*}} : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  %h = mixer.scan global gates(%a : tensor<2x64x8xf32>) inputs(%b : tensor<2x64x8xf32>)
      outs(%e : tensor<2x64x8xf32>) -> tensor<2x64x8xf32>
  return %h : tensor<2x64x8xf32>
}

// CHECK-LABEL: func.func @jagged_tensor_all_operands
func.func @jagged_tensor_all_operands(%a: tensor<?x?x8xbf16>, %b: tensor<?x?x8xbf16>,
    %h0: tensor<?x8xf32>, %e: tensor<?x?x8xf32>, %f: tensor<?x8xf32>)
    -> (tensor<?x?x8xf32>, tensor<?x8xf32>) {
  // CHECK: mixer.scan jagged<block = 16, k = 2> log_space reverse gates(%{{.*}} : tensor<?x?x8xbf16>) inputs(%{{.*}} : tensor<?x?x8xbf16>) init(%{{.*}} : tensor<?x8xf32>) outs(%{{.*}} : tensor<?x?x8xf32>) final(%{{.*}} : tensor<?x8xf32>) -> tensor<?x?x8xf32>, tensor<?x8xf32>
  %h, %hT = mixer.scan jagged<block = 16, k = 2> log_space reverse
      gates(%a : tensor<?x?x8xbf16>) inputs(%b : tensor<?x?x8xbf16>) init(%h0 : tensor<?x8xf32>)
      outs(%e : tensor<?x?x8xf32>) final(%f : tensor<?x8xf32>)
      -> tensor<?x?x8xf32>, tensor<?x8xf32>
  return %h, %hT : tensor<?x?x8xf32>, tensor<?x8xf32>
}

// CHECK-LABEL: func.func @complex_final_only
func.func @complex_final_only(%a: tensor<1x5x3xcomplex<f32>>, %b: tensor<1x5x3xcomplex<f32>>,
                              %f: tensor<1x3xcomplex<f32>>) -> tensor<1x3xcomplex<f32>> {
  // CHECK: mixer.scan global gates({{.*}}) inputs({{.*}}) final(%{{.*}} : tensor<1x3xcomplex<f32>>) -> tensor<1x3xcomplex<f32>>
  %hT = mixer.scan global gates(%a : tensor<1x5x3xcomplex<f32>>) inputs(%b : tensor<1x5x3xcomplex<f32>>)
      final(%f : tensor<1x3xcomplex<f32>>) -> tensor<1x3xcomplex<f32>>
  return %hT : tensor<1x3xcomplex<f32>>
}

// Buffer form: no results, the destinations are written.
// CHECK-LABEL: func.func @jagged_memref
func.func @jagged_memref(%a: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>,
                         %b: memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>,
                         %h: memref<?x?x?xf32>) {
  // CHECK: mixer.scan jagged<block = 16, k = 1> gates(%{{.*}} : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>) inputs({{.*}}) outs(%{{.*}} : memref<?x?x?xf32>){{$}}
  mixer.scan jagged<block = 16, k = 1> gates(%a : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>)
      inputs(%b : memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>) outs(%h : memref<?x?x?xf32>)
  return
}

// CHECK-LABEL: func.func @channel_scan
func.func @channel_scan(%a: memref<?xf32, strided<[?], offset: ?>>, %b: memref<?xf16>,
                        %c: f32, %h: memref<?xf32>) -> f32 {
  // CHECK: %{{.*}} = mixer.channel_scan jagged<block = 16, k = 2> reverse gates(%{{.*}} : memref<?xf32, strided<[?], offset: ?>>) inputs(%{{.*}} : memref<?xf16>) init(%{{.*}} : f32) outs(%{{.*}} : memref<?xf32>) -> f32
  %r = mixer.channel_scan jagged<block = 16, k = 2> reverse
      gates(%a : memref<?xf32, strided<[?], offset: ?>>) inputs(%b : memref<?xf16>)
      init(%c : f32) outs(%h : memref<?xf32>) -> f32
  return %r : f32
}

// CHECK-LABEL: func.func @window_attribute
// CHECK-SAME: mixer.w = #mixer.window<jagged, block = 32, k = 2>
func.func @window_attribute() attributes {mixer.w = #mixer.window<jagged, block = 32, k = 2>,
                                          mixer.g = #mixer.window<global>} {
  return
}

// CHECK-LABEL: func.func @adjoint_ops
// CHECK:       mixer.scan_adjoint jagged<block = 16, k = 2> log_space gates({{.*}}) inputs({{.*}}) states({{.*}}) output_grad({{.*}}) final_grad({{.*}}) gates_grad({{.*}}) inputs_grad({{.*}}){{$}}
// CHECK:       mixer.channel_scan_adjoint global gates({{.*}}) states({{.*}}) output_grad({{.*}}) carry(%{{.*}} : f32) grad_carry(%{{.*}} : f32) -> f32
func.func @adjoint_ops(%a: memref<?x?x?xf32>, %f: memref<?x?xf32>, %v: memref<?xf32>, %c: f32) {
  mixer.scan_adjoint jagged<block = 16, k = 2> log_space gates(%a : memref<?x?x?xf32>)
      inputs(%a : memref<?x?x?xf32>) states(%a : memref<?x?x?xf32>) output_grad(%a : memref<?x?x?xf32>)
      final_grad(%f : memref<?x?xf32>) gates_grad(%a : memref<?x?x?xf32>) inputs_grad(%a : memref<?x?x?xf32>)
  %r = mixer.channel_scan_adjoint global gates(%v : memref<?xf32>) states(%v : memref<?xf32>)
      output_grad(%v : memref<?xf32>) carry(%c : f32) grad_carry(%c : f32) -> f32
  return
}
