// Issue 15: "LLVM ERROR: out of memory" in the recurrent lowering (a state
// column of 2^31 unrolled values).
!q = memref<?x?x?x2147483648xbf16, strided<[?, ?, ?, 1], offset: ?>>
func.func @la(%q: !q, %s: f32) {
  mixer.linear_attention query(%q : !q) key(%q : !q) value(%q : !q) scale(%s : f32) outs(%q : !q)
  return
}
