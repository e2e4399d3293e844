// RUN: mixer-opt %s -split-input-file --mixer-assign-workspace -verify-diagnostics -o /dev/null

// Scratch of elements that have no byte size (found by mixer-fuzz: the size
// computation crashed on it).
func.func @memref_elements(%n: index, %ws: memref<?xi8> {mixer.workspace}) {
  // expected-error @+1 {{mixer-assign-workspace: scratch elements must be integers or floats, got 'memref<?xf32>'}}
  %b = memref.alloc(%n) {mixer.workspace} : memref<?xmemref<?xf32>>
  return
}
