// RUN: mixer-opt %s --mixer-lower-channel-scan -verify-diagnostics

func.func @untiled(%a: memref<?x?x?xf32>, %h: memref<?x?x?xf32>) {
  // expected-error @+1 {{mixer-lower-channel-scan found an untiled mixer.scan; run mixer-tile-scan first}}
  mixer.scan global gates(%a : memref<?x?x?xf32>) inputs(%a : memref<?x?x?xf32>) outs(%h : memref<?x?x?xf32>)
  return
}
