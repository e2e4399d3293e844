// REQUIRES: cuda-toolkit
// RUN: mixer-opt %s --mixer-to-nvvm="toolkit=%cuda_toolkit time-fastest=1 exchange-output=1 block-size=48 tile-size=16 vector-alignment=16" | FileCheck %s

// BTP's layout (channels-by-time bf16 in, f32 out) with the output exchange:
// block-size is rounded up to whole warps (48 -> 64), the kernel's constants
// are sunk into it (no division by a kernel argument), the private output
// buffer stays in registers (no local memory), and the stores are whole
// 16-byte vectors after 12 warp shuffles.
// CHECK:      gpu.launch_func @scan_kernel::@scan_kernel
// CHECK-SAME: threads in (%c64, %c1, %c1)
// CHECK:      gpu.binary @scan_kernel
// CHECK-NOT:  __local_depot
// CHECK-NOT:  rem.u64
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: st.global.v4.b32
func.func @scan(%a: memref<?x?x?xbf16, strided<[?, 1, ?], offset: ?>>,
                %b: memref<?x?x?xbf16, strided<[?, 1, ?], offset: ?>>,
                %h: memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>,
                %hT: memref<?x?xf32, strided<[?, ?], offset: ?>>) {
  mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x?xbf16, strided<[?, 1, ?], offset: ?>>)
      inputs(%b : memref<?x?x?xbf16, strided<[?, 1, ?], offset: ?>>)
      outs(%h : memref<?x?x?xf32, strided<[?, 1, ?], offset: ?>>)
      final(%hT : memref<?x?xf32, strided<[?, ?], offset: ?>>)
  return
}
