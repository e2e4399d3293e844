// REQUIRES: cuda-toolkit
// RUN: mixer-opt %s --mixer-to-nvvm="toolkit=%cuda_toolkit" | FileCheck %s

// BTP's layout (channels-by-time bf16 in, f32 out; 16-byte aligned blocks, as the
// arguments' facts say): the strategy takes one block per thread, tiles on
// threadIdx.x in blocks of 64, the output exchange and 32-bit indices; the
// kernel's constants are sunk into it (no division by a kernel argument), the
// private output buffer stays in registers (no local memory), and the stores are
// whole 16-byte vectors after 12 warp shuffles.
// CHECK:      gpu.launch_func @scan_kernel_i32::@scan_kernel_i32
// CHECK-SAME: threads in (%c64, %c1, %c1)
// CHECK:      gpu.binary @scan_kernel_i32
// CHECK-NOT:  __local_depot
// CHECK-NOT:  rem.u64
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: st.global.v4.b32
func.func @scan(%a: memref<?x?x16xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                %b: memref<?x?x16xbf16, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                %h: memref<?x?x16xf32, strided<[?, 1, ?], offset: ?>> {mixer.alignment = 16 : i64},
                %hT: memref<?x16xf32, strided<[?, ?], offset: ?>>) attributes {mixer.offsets_fit_i32} {
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x16xbf16, strided<[?, 1, ?], offset: ?>>)
      inputs(%b : memref<?x?x16xbf16, strided<[?, 1, ?], offset: ?>>)
      outs(%h : memref<?x?x16xf32, strided<[?, 1, ?], offset: ?>>)
      final(%hT : memref<?x16xf32, strided<[?, ?], offset: ?>>)
  return
}
