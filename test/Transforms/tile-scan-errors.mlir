// RUN: mixer-opt %s -split-input-file --mixer-tile-scan="tile-size=24" -verify-diagnostics

func.func @tile_not_multiple_of_block(%a: memref<?x?x?xf32>, %h: memref<?x?x?xf32>) {
  // expected-error @+1 {{mixer-tile-scan: tile-size 24 must be a positive multiple of the jagged block 16}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x?xf32>) inputs(%a : memref<?x?x?xf32>)
      outs(%h : memref<?x?x?xf32>)
  return
}

// -----

func.func @tensor_form(%a: tensor<2x8x4xf32>, %e: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{mixer-tile-scan needs the buffer form; run one-shot-bufferize first}}
  %h = mixer.scan global gates(%a : tensor<2x8x4xf32>) inputs(%a : tensor<2x8x4xf32>)
      outs(%e : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %h : tensor<2x8x4xf32>
}
