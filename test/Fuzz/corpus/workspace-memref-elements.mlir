// mixer-fuzz finding (seed: test/Transforms/assign-workspace.mlir): scratch of
// memref elements crashed mixer-assign-workspace's size computation.
func.func @f(%x: memref<?xf32>, %n: index, %ws: memref<?xi8> {mixer.workspace}) {
  %a = memref.alloc(%n) {mixer.workspace} : memref<?x64xf32>
  %b = memref.alloc(%n) {mixer.workspace} : memref<?xmemref<?xf32>>
  %c0 = arith.constant 0 : index
  %v = memref.load %a[%c0, %c0] : memref<?x64xf32>
  return
}
