// REQUIRES: cuda-toolkit
// RUN: sed -e 's/CONFIG//' %s | mixer-opt --mixer-to-nvvm="toolkit=%cuda_toolkit" | FileCheck %s
// RUN: sed -e 's/CONFIG/{mixer.lowering_config = #mixer.lowering_config<tile = 128, block = [64, 1, 1]>}/' %s | mixer-opt --mixer-to-nvvm="toolkit=%cuda_toolkit chip=sm_90a" | FileCheck %s --check-prefix=TILED

// mixer IR all the way to PTX for sm_90a. exp (log-space gates) must come from
// libdevice, linked and inlined: an unresolved __nv_* extern would only fail
// when the driver loads the module.
// CHECK:      gpu.launch_func @scan_kernel::@scan_kernel
// CHECK-SAME: threads in (%c128, %c1, %c1)
// CHECK:      gpu.binary @scan_kernel
// CHECK-SAME: #nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">
// CHECK-SAME: .version 8.0
// CHECK-SAME: .target sm_90a
// CHECK-SAME: .visible .entry scan_kernel(
// CHECK-SAME: .param .u64 .ptr .align 1 scan_kernel_param_
// CHECK-SAME: ex2.approx
// CHECK-SAME: st.global.b32
// CHECK-NOT:  .extern .func __nv_
// CHECK-NOT:  mixer.

// A config in the IR overrides the strategy's tile and block: channels on
// threadIdx.x (64 threads), batch rows and time tiles on the grid.
// TILED-DAG: %[[TILE:.*]] = arith.constant 128 : index
// TILED-DAG: %[[BS:.*]] = arith.constant 64 : index
// TILED:     %[[NT:.*]] = arith.ceildivui %{{.*}}, %[[TILE]]
// TILED:     gpu.launch_func @scan_kernel::@scan_kernel blocks in (%{{.*}}, %{{.*}}, %[[NT]]) threads in (%[[BS]], %c1, %c1)

!seq = memref<?x?x?xf32, strided<[?, ?, ?], offset: ?>>
!st = memref<?x?xf32, strided<[?, ?], offset: ?>>
func.func @scan(%a: !seq, %b: !seq, %h0: !st, %h: !seq, %f: !st) {
  mixer.scan jagged<block = 16, k = 2> log_space gates(%a : !seq) inputs(%b : !seq)
      init(%h0 : !st) outs(%h : !seq) final(%f : !st) CONFIG
  return
}
