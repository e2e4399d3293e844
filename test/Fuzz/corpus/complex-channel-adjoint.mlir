// Issue 15: segfault in the channel scan adjoint's float conversion (complex
// series, real carry), both pipelines.
!v = memref<?xcomplex<f64>, strided<[?], offset: ?>>
func.func @global(%a: !v, %h: !v, %dh: !v, %c: f32, %g: f32, %da: !v, %db: !v) -> f32 {
  %r = mixer.channel_scan_adjoint global gates(%a : !v) states(%h : !v) output_grad(%dh : !v)
      carry(%c : f32) grad_carry(%g : f32) gates_grad(%da : !v) inputs_grad(%db : !v) -> f32
  return %r : f32
}
