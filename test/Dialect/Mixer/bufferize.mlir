// RUN: mixer-opt %s --one-shot-bufferize="bufferize-function-boundaries=1" | FileCheck %s

// The tensor form bufferizes to the buffer form: the destinations become the
// buffers written in place and replace the results.
// CHECK-LABEL: func.func @scan
// CHECK-SAME:  (%[[A:.*]]: memref<2x64x8xf32{{.*}}>, %[[B:.*]]: memref<2x64x8xf32{{.*}}>, %[[H0:.*]]: memref<2x8xf32{{.*}}>, %[[E:.*]]: memref<2x64x8xf32{{.*}}>, %[[F:.*]]: memref<2x8xf32{{.*}}>)
// CHECK:       mixer.scan jagged<block = 16, k = 2> gates(%[[A]] : {{.*}}) inputs(%[[B]] : {{.*}}) init(%[[H0]] : {{.*}}) outs(%[[E]] : {{.*}}) final(%[[F]] : {{.*}}){{$}}
// CHECK-NOT:   memref.alloc
// CHECK:       return %[[E]], %[[F]]
func.func @scan(%a: tensor<2x64x8xf32>, %b: tensor<2x64x8xf32>, %h0: tensor<2x8xf32>,
                %e: tensor<2x64x8xf32>, %f: tensor<2x8xf32>)
    -> (tensor<2x64x8xf32>, tensor<2x8xf32>) {
  %h, %hT = mixer.scan jagged<block = 16, k = 2> gates(%a : tensor<2x64x8xf32>)
      inputs(%b : tensor<2x64x8xf32>) init(%h0 : tensor<2x8xf32>)
      outs(%e : tensor<2x64x8xf32>) final(%f : tensor<2x8xf32>)
      -> tensor<2x64x8xf32>, tensor<2x8xf32>
  return %h, %hT : tensor<2x64x8xf32>, tensor<2x8xf32>
}
