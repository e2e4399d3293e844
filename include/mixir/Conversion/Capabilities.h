//===- Capabilities.h - what each mechanism can lower ------------*- C++ -*-===//
//
// The strategy asks these before it chooses a kernel; the mechanism passes ask
// them again and fail with the answer as a diagnostic when a config asks for
// what they cannot do. One function per rule, so the two never disagree.
//
//===----------------------------------------------------------------------===//

#ifndef MIXIR_CONVERSION_CAPABILITIES_H
#define MIXIR_CONVERSION_CAPABILITIES_H

#include "mixir/Dialect/Mixer/Mixer.h"

#include <string>

namespace mlir::mixer {

/// Why the chunked tensor-core kernels (mixer-lower-linear-attention-mma)
/// cannot lower `op` with value tiles of `blockV` channels, or "" when they
/// can, taking its key dimension as `keyDim` (a key split's pass). Alignment
/// is not checked here: it is a fact of the call, which the
/// strategy reads (16-byte rows are the kernels' precondition).
std::string chunkedKernelIneligibility(LinearAttentionOp op, int64_t blockV, int64_t keyDim);

/// Why the tensor-core lowering cannot run `op` chunk-parallel (a state pass
/// keeping each chunk's initial state, then every chunk's outputs in
/// parallel), or "": it needs an output, and no per-key decay or pieces.
std::string chunkParallelIneligibility(LinearAttentionOp op);

/// Threads per output-exchange group of mixer-tile-scan{exchange-output} for
/// `op` with `vectorAlignment` promised and one-block tiles: the number of
/// 16-byte chunks in one block of f32 outputs, or 0 where the exchange does
/// not apply (not f32, no unit time stride, block not 4 x a power of 2).
int64_t exchangeOutputGroup(ScanOp op, int64_t vectorAlignment);

/// Whether a jagged block of `series` (a 1-D time view, or a [B, T, D] memref
/// whose time dimension is dim 1) can move as one vector aligned to
/// `alignment` bytes: a real element type, a static unit time stride, and a
/// block of a whole number of `alignment`-byte vectors.
bool blockVectorizable(Value series, int64_t block, int64_t alignment);

/// Why mixer-split-linear-attention cannot split `op` (keys when `keys`,
/// else sequences), or "": only the additive update with a decay that is
/// diagonal over the keys (none, per head, per key) splits, sequences only
/// with an output, keys only when wider than `keySplit`.
std::string splitIneligibility(LinearAttentionOp op, bool keys, int64_t keySplit = 0);

} // namespace mlir::mixer

#endif // MIXIR_CONVERSION_CAPABILITIES_H
