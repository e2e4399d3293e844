// RUN: mixer-opt %s --mixer-tile-scan="tile-size=32 time-fastest=1 exchange-output=1 vector-alignment=16" -verify-diagnostics

!hm = memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>

func.func @two_blocks_per_tile(%a: !hm, %b: !hm, %h: !hm) {
  // expected-error @+1 {{exchange-output needs time-fastest and tiles of one block (tile-size = 16)}}
  mixer.scan jagged<block = 16, k = 2> gates(%a : !hm) inputs(%b : !hm) outs(%h : !hm)
  return
}
