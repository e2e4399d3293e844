// RUN: mixer-opt %s --mixer-select-lowering-config | FileCheck %s

// What the strategy chooses for scans on the H200 (132 SMs), from the facts the
// call carries: shapes, strides, the arguments' mixer.alignment and whether
// offsets fit 32 bits.

module attributes {mixer.target = #mixer.target<chip = "sm_90a", sm_count = 132, shared_memory = 232448>} {
// [B, T, 2048] channels-last, 16-byte aligned: tiles of 256 steps (16 blocks),
// channels on x; no vector moves (time is not the unit stride), 64-bit indices
// (the forward without one-block tiles is faster with them).
// CHECK-LABEL: func.func @scan_wide
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 256, unroll = 8, block = [128, 1, 1]>
func.func @scan_wide(%a: memref<?x?x2048xbf16, strided<[?, ?, 1], offset: ?>> {mixer.alignment = 16 : i64},
                     %b: memref<?x?x2048xbf16, strided<[?, ?, 1], offset: ?>> {mixer.alignment = 16 : i64},
                     %h: memref<?x?x2048xf32, strided<[?, ?, 1], offset: ?>> {mixer.alignment = 16 : i64})
    attributes {mixer.offsets_fit_i32} {
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x2048xbf16, strided<[?, ?, 1], offset: ?>>)
      inputs(%b : memref<?x?x2048xbf16, strided<[?, ?, 1], offset: ?>>)
      outs(%h : memref<?x?x2048xf32, strided<[?, ?, 1], offset: ?>>)
  return
}
// Three channels, a global window: the channel row shrinks to 16 threads, batch
// rows fill the block.
// CHECK-LABEL: func.func @scan_narrow
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = tiled, unroll = 8, block = [16, 8, 1]>
func.func @scan_narrow(%a: memref<?x?x3xf32>, %b: memref<?x?x3xf32>, %h: memref<?x?x3xf32>) {
  mixer.scan global gates(%a : memref<?x?x3xf32>) inputs(%b : memref<?x?x3xf32>) outs(%h : memref<?x?x3xf32>)
  return
}
// Channels-by-time ([B, D, T] memory), every operand 16-byte aligned: one block
// per thread moved as vectors (gates, inputs, output: mask 0b1011), tiles on x,
// 32-bit indices (one-block tiles with a carry), sunk constants and the output
// exchange.
// CHECK-LABEL: func.func @scan_time_major(
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, unroll = 8, block = [64, 1, 1], time_fastest = true, exchange_output = true, vector_alignment = 16, vector_operands = 11, index_bitwidth = 32, sink_constants = true>
func.func @scan_time_major(%a: memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                     %b: memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                     %h: memref<?x?x20xf32, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64})
    attributes {mixer.offsets_fit_i32} {
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>>)
      inputs(%b : memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>>)
      outs(%h : memref<?x?x20xf32, strided<[?, 1, ?], offset: ?>>)
  return
}
// The same with an output whose rows are only 8-byte aligned (T = 50 f32): the
// output is neither vectorised nor exchanged (the exchange stores 16-byte chunks).
// CHECK-LABEL: func.func @scan_time_major_unaligned_output
// CHECK: mixer.lowering_config = #mixer.lowering_config<kernel = tiled, tile = 16, unroll = 8, block = [64, 1, 1], time_fastest = true, vector_alignment = 16, vector_operands = 3, index_bitwidth = 32, sink_constants = true>
func.func @scan_time_major_unaligned_output(%a: memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                     %b: memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                     %h: memref<?x?x20xf32, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 8 : i64})
    attributes {mixer.offsets_fit_i32} {
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>>)
      inputs(%b : memref<?x?x20xbf16, strided<[?, 1, ?], offset: ?>>)
      outs(%h : memref<?x?x20xf32, strided<[?, 1, ?], offset: ?>>)
  return
}
}
