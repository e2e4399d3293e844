//===- MixerPasses.td - passes over the mixer dialect ------*- tablegen -*-===//

#ifndef MIXER_PASSES_TD
#define MIXER_PASSES_TD

include "mlir/Pass/PassBase.td"

def MixerTileScan : Pass<"mixer-tile-scan", "::mlir::func::FuncOp"> {
  let summary = "Split mixer.scan into per-channel time tiles that chain their carry";
  let description = [{
    Rewrites every buffer-form `mixer.scan` over `[B, T, D]` into an
    `scf.parallel` over channels, batch rows and time tiles whose body is
    `mixer.channel_scan` on strided 1-D views.

    * jagged window: tiles of `tile-size` steps (a multiple of the block) are
      independent. A tile's carry is the zero-initialised terminal state of the
      single block just before it (k = 2), recomputed from that block's 16 (BL)
      steps; nothing older is read. The first tile takes `initial_state`.
    * global window: the carry of a tile is the final state of the previous one,
      so tiles run in order inside the channel (`scf.for` with the carry as an
      iteration argument); `tile-size = 0` keeps the whole sequence as one tile.

    Before:
    ```mlir
    mixer.scan jagged<block = 16, k = 2> gates(%a : memref<?x?x?xf32>)
        inputs(%b : memref<?x?x?xf32>) outs(%h : memref<?x?x?xf32>)
    ```
    After (schematically):
    ```mlir
    scf.parallel (%d, %n, %j) = (0, 0, 0) to (%D, %B, %tiles) step (1, 1, 1) {
      %carry = scf.if (%j > 0) { mixer.channel_scan jagged<block = 16, k = 1> ... }
      mixer.channel_scan jagged<block = 16, k = 2> ... init(%carry) outs(%tile_of_h)
    }
    ```
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
  let options = [
    Option<"tileSize", "tile-size", "int64_t", /*default=*/"256",
           "Time steps per tile for jagged windows (a multiple of the block)">,
    Option<"globalTileSize", "global-tile-size", "int64_t", /*default=*/"0",
           "Time steps per tile for global windows (0 = whole sequence in one tile)">
  ];
}

def MixerLowerChannelScan : Pass<"mixer-lower-channel-scan", "::mlir::func::FuncOp"> {
  let summary = "Lower mixer.channel_scan to an scf.for over time";
  let description = [{
    Each `mixer.channel_scan` becomes one sequential `scf.for` whose iteration
    arguments are the recurrence state (global) or the jagged triple
    (local state, in-block gate product, carry). Gates and inputs are loaded,
    extended to the state type and, in log space, exponentiated; every step's
    state is stored to `output`. The loop is what a GPU thread or a CPU core
    executes; parallelism lives in the enclosing `scf.parallel`.

    With `unroll = U > 1` the main loop advances U steps per iteration and
    issues all their loads before any arithmetic or store, followed by a
    one-step remainder loop: the output may alias the inputs as far as the
    compiler can tell, so this is how a thread keeps several steps of loads in
    flight (memory-level parallelism for a memory-bound scan). Jagged windows
    unroll by exactly one block, aligned to the blocks, so which step starts a
    block is static (reverse scans first run the partial block at the end).

    With `vector-alignment = A > 0` (a promise from the caller: every jagged
    block of every time-contiguous operand starts on an A-byte boundary) an
    unrolled jagged block of a real operand whose memref has a static unit
    stride over time is read and written with one `vector.load`/`vector.store`
    of the whole block, aligned to A. A channels-by-time layout (BTP) needs
    this: each thread's block is contiguous, its neighbours' are not.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::complex::ComplexDialect", "::mlir::vector::VectorDialect"];
  let options = [
    Option<"unroll", "unroll", "int64_t", /*default=*/"1",
           "Time steps per main-loop iteration, loads first (1 = no unrolling)">,
    Option<"vectorAlignment", "vector-alignment", "int64_t", /*default=*/"0",
           "Byte alignment the caller guarantees at every jagged block start of a "
           "time-contiguous operand; > 0 enables whole-block vector loads/stores">
  ];
}

def MixerScanAdjoint : Pass<"mixer-scan-adjoint", "::mlir::ModuleOp"> {
  let summary = "Derive the backward function of every function that runs a mixer.scan";
  let description = [{
    For each `func.func @f` whose body is one buffer-form `mixer.scan`, adds
    `func.func @f_adjoint` taking the forward operands, the forward output h,
    the output gradient (and the final-state gradient when `@f` writes a final
    state) and writing the gradients of the gates, the inputs (and the initial
    state when `@f` has one), through one `mixer.scan_adjoint`. Gradients have
    the element types of the forward operands. The attributes `llvm.emit_c_interface`
    carry over, so the adjoint is callable like the forward.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::memref::MemRefDialect"];
}

#endif // MIXER_PASSES_TD
