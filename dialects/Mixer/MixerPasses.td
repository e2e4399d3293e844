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

    The parallel loop lists channels first, so that threads mapped to its first
    dimension touch neighbouring addresses of a `[B, T, D]` tensor. With
    `time-fastest` a jagged scan lists its time tiles first, then channels,
    then batch rows: for a channels-by-time layout (BTP) neighbouring tiles of
    one channel are neighbours in memory, while neighbouring channels are a
    whole sequence apart; and the channels of one batch row, which may share
    one gate (BTP's per-head gate), run close together.

    `exchange-output` (GPU; with `time-fastest`, tiles of one block, an f32
    output with unit time stride and `vector-alignment` >= 16) writes each
    block's outputs to a private buffer instead of memory. Then the G = BL / 4
    threads of a group, which own G neighbouring blocks, transpose their
    16-byte chunks with `gpu.shuffle xor`, so that thread r stores chunk r of
    every block of the group: one store instruction then covers whole blocks
    (whole 32-byte sectors) instead of a quarter of each thread's block. The
    tile loop is padded to a multiple of 32 so that every thread of a warp
    reaches the shuffles; the pipeline must map it to threadIdx.x in blocks of
    whole warps. The private buffer is placed in the kernel's entry block by
    `mixer-hoist-static-allocas` (so it becomes registers).

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
                           "::mlir::arith::ArithDialect", "::mlir::gpu::GPUDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"tileSize", "tile-size", "int64_t", /*default=*/"256",
           "Time steps per tile for jagged windows (a multiple of the block)">,
    Option<"globalTileSize", "global-tile-size", "int64_t", /*default=*/"0",
           "Time steps per tile for global windows (0 = whole sequence in one tile)">,
    Option<"timeFastest", "time-fastest", "bool", /*default=*/"false",
           "Jagged windows: order the parallel loop (tile, channel, batch row) instead "
           "of (channel, batch row, tile)">,
    Option<"exchangeOutput", "exchange-output", "bool", /*default=*/"false",
           "GPU only, with time-fastest and one-block tiles: neighbouring threads swap "
           "parts of their blocks' outputs (gpu.shuffle) so that each store writes "
           "whole 32-byte sectors; needs thread blocks of whole warps">,
    Option<"vectorAlignment", "vector-alignment", "int64_t", /*default=*/"0",
           "Byte alignment the caller guarantees at every jagged block start of a "
           "time-contiguous operand (as in mixer-lower-channel-scan); exchange-output "
           "applies only with 16 or more">
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
    this: each thread's block is contiguous, its neighbours' are not. The
    jagged `mixer.channel_scan_adjoint` does the same for the full blocks of
    its gates, inputs, output gradient and both gradient destinations.
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

def MixerHoistStaticAllocas : Pass<"mixer-hoist-static-allocas", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Move statically sized memref.alloca ops of GPU kernels to their entry block";
  let description = [{
    LLVM promotes a stack slot to registers (SROA, mem2reg) only when its
    alloca is in the function's entry block. A `memref.alloca` of static shape
    nested in a kernel's loops or conditionals (the private output buffer of
    `mixer-tile-scan{exchange-output}`) is moved to the start of the entry
    block of its `gpu.func`. This keeps its meaning: a kernel is one allocation
    scope, so the buffer already lived until the kernel returned, and a fresh
    allocation holds undefined contents, as the reused one does.
  }];
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

def MixerLowerLinearAttention : Pass<"mixer-lower-linear-attention", "::mlir::func::FuncOp"> {
  let summary = "Lower mixer.linear_attention to its recurrent form (scf.parallel over state columns)";
  let description = [{
    Every `mixer.linear_attention` left in the function becomes an
    `scf.parallel` over (value channel, head, sequence) whose body carries one
    column of the state (K scalars) through an `scf.for` over the sequence:
    decay, delta-rule correction (a dot product over the column), update and
    readout are all per column. Exact in the state type for every variant of
    the op; on the GPU it is the one-token decode kernel and the fallback of
    the chunked tensor-core lowering.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def MixerLowerLinearAttentionAdjoint
    : Pass<"mixer-lower-linear-attention-adjoint", "::mlir::func::FuncOp"> {
  let summary = "Lower mixer.linear_attention_adjoint to a checkpointed reverse sweep";
  let description = [{
    Every `mixer.linear_attention_adjoint` becomes an `scf.parallel` over
    (head, sequence). Each iteration runs the forward recurrence once, keeping
    the state at every `chunk_size`-th step in the workspace, then walks the
    chunks from the last: it recomputes the chunk's states from its checkpoint
    and runs the adjoint recurrence back through them, a value column at a
    time, accumulating the per-step gradients of the query, key, decay and
    beta over the columns. The forward steps are the recurrent lowering's
    (LinearAttentionSteps.cpp), so the states it differentiates are the ones
    the forward computes. Exact in the state type; one sequential program per
    (head, sequence): the CPU path and the GPU's fallback.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def MixerLowerLinearAttentionMma : Pass<"mixer-lower-linear-attention-mma", "::mlir::func::FuncOp"> {
  let summary = "Lower chunkable mixer.linear_attention ops to a fused tensor-core GPU kernel";
  let description = [{
    A `mixer.linear_attention` with no decay or a per-head decay, the additive
    update, bf16 or f16 inputs, an f32 state, a key dimension that is a
    multiple of 16 up to 128, a value dimension that is a multiple of
    `block-v` and contiguous head dimensions becomes one `gpu.launch`: a block
    per (value tile, head, sequence) walks the sequence in chunks of 64 steps,
    with the state in mma.sync accumulators (sm_80+, m16n8k16) and the
    chunk's operands in dynamic shared memory. Other ops are left in place
    (for `mixer-lower-linear-attention`), or rejected with `require`.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect", "::mlir::vector::VectorDialect"];
  let options = [
    Option<"blockV", "block-v", "int64_t", /*default=*/"64",
           "Value channels per thread block (16 per warp; a multiple of 16 up to 64)">,
    Option<"require", "require", "bool", /*default=*/"false",
           "Fail on an op the tensor-core lowering cannot take instead of leaving it">
  ];
}

#endif // MIXER_PASSES_TD
