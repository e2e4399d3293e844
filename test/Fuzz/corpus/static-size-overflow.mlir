// Static sizes whose bytes overflow the index arithmetic.
func.func @scan(%a: memref<4611686018427387904x2x2xf32>, %h: memref<4611686018427387904x2xf32>) {
  mixer.scan global gates(%a : memref<4611686018427387904x2x2xf32>) inputs(%a : memref<4611686018427387904x2x2xf32>)
      final(%h : memref<4611686018427387904x2xf32>)
  return
}
