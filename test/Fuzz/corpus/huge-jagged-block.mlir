// Issue 15: a 65536-step jagged block unrolled (29 s, 49 MB of IR).
!s = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
func.func @scan(%a: !s, %h: !s) {
  mixer.scan jagged<block = 65536, k = 2> gates(%a : !s) inputs(%a : !s) outs(%h : !s)
  return
}
