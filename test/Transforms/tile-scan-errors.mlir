// RUN: mixer-opt %s -split-input-file --mixer-tile-scan -verify-diagnostics

func.func @tile_not_multiple_of_block(%a: memref<?x?x?xf32>, %h: memref<?x?x?xf32>) {
  // expected-error @+1 {{mixer-tile-scan: tile 24 must be a positive multiple of the jagged block 16}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x?xf32>) inputs(%a : memref<?x?x?xf32>)
      outs(%h : memref<?x?x?xf32>) {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 24>}
  return
}

// -----

func.func @tensor_form(%a: tensor<2x8x4xf32>, %e: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  // expected-error @+1 {{mixer-tile-scan needs the buffer form; run one-shot-bufferize first}}
  %h = mixer.scan global gates(%a : tensor<2x8x4xf32>) inputs(%a : tensor<2x8x4xf32>)
      outs(%e : tensor<2x8x4xf32>) -> tensor<2x8x4xf32>
  return %h : tensor<2x8x4xf32>
}

// -----

func.func @no_config(%a: memref<?x?x?xf32>, %h: memref<?x?x?xf32>) {
  // expected-error @+1 {{mixer-tile-scan needs a mixer.lowering_config with kernel = tiled; run mixer-select-lowering-config first}}
  mixer.scan global gates(%a : memref<?x?x?xf32>) inputs(%a : memref<?x?x?xf32>)
      outs(%h : memref<?x?x?xf32>)
  return
}

// -----

!hm = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>

func.func @exchange_without_unit_time_stride(%a: !hm, %b: !hm, %h: !hm) {
  // expected-error @+1 {{exchange_output needs an f32 output with a unit time stride}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : !hm) inputs(%b : !hm) outs(%h : !hm)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, time_fastest = true, exchange_output = true, vector_alignment = 16, vector_operands = 8>}
  return
}

// -----

!hm = memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>

// The exchange stores aligned chunks of the output: the config must promise them.
func.func @exchange_with_unaligned_output(%a: !hm, %b: !hm, %h: !hm) {
  // expected-error @+1 {{exchange_output needs the output among vector_operands (its blocks aligned)}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : !hm) inputs(%b : !hm) outs(%h : !hm)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, time_fastest = true, exchange_output = true, vector_alignment = 16, vector_operands = 3>}
  return
}
