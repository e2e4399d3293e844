// RUN: mixer-opt %s --mixer-tile-scan -verify-diagnostics

!hm = memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>

func.func @two_blocks_per_tile(%a: !hm, %b: !hm, %h: !hm) {
  // expected-error @+1 {{exchange_output needs time_fastest and tiles of one block (tile = 16)}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : !hm) inputs(%b : !hm) outs(%h : !hm)
      {mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 32, time_fastest = true, exchange_output = true, vector_alignment = 16>}
  return
}
