//===- MixerPasses.td - passes over the mixer dialect ------*- tablegen -*-===//

#ifndef MIXER_PASSES_TD
#define MIXER_PASSES_TD

include "mlir/Pass/PassBase.td"

def MixerTileScan : Pass<"mixer-tile-scan", "::mlir::func::FuncOp"> {
  let summary = "Split mixer.scan into per-channel time tiles that chain their carry";
  let description = [{
    Rewrites every buffer-form `mixer.scan` over `[B, T, D]` into an
    `scf.parallel` over channels, batch rows and time tiles whose body is
    `mixer.channel_scan` on strided 1-D views, shaped by the op's
    `mixer.lowering_config` (`tile`, `time_fastest`, `exchange_output`,
    `vector_alignment`, `vector_operands`); the parallel loop carries the
    config on to `mixer-parallel-loops-to-gpu` (its `block`) and each
    channel scan gets the loop shape it needs (`unroll`, which of its
    operands move as vectors).

    * jagged window: tiles of `tile` steps (a multiple of the block) are
      independent. A tile's carry is the zero-initialised terminal state of the
      single block just before it (k = 2), recomputed from that block's 16 (BL)
      steps; nothing older is read. The first tile takes `initial_state`.
    * global window: the carry of a tile is the final state of the previous one,
      so tiles run in order inside the channel (`scf.for` with the carry as an
      iteration argument); `tile = 0` keeps the whole sequence as one tile.

    The parallel loop lists channels first, so that threads mapped to its first
    dimension touch neighbouring addresses of a `[B, T, D]` tensor. With
    `time_fastest` a jagged scan lists its time tiles first, then channels,
    then batch rows: for a channels-by-time layout (BTP) neighbouring tiles of
    one channel are neighbours in memory, while neighbouring channels are a
    whole sequence apart; and the channels of one batch row, which may share
    one gate (BTP's per-head gate), run close together.

    `exchange_output` (GPU; with `time_fastest`, tiles of one block, an f32
    output with unit time stride and `vector_alignment` >= 16) writes each
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

    The loop is shaped by the op's `mixer.lowering_config` (which
    `mixer-tile-scan` gives every channel scan it makes).
    With `unroll = U > 1` the main loop advances U steps per iteration and
    issues all their loads before any arithmetic or store, followed by a
    one-step remainder loop: the output may alias the inputs as far as the
    compiler can tell, so this is how a thread keeps several steps of loads in
    flight (memory-level parallelism for a memory-bound scan). Jagged windows
    unroll by exactly one block, aligned to the blocks, so which step starts a
    block is static (reverse scans first run the partial block at the end).

    With `vector_alignment = A > 0`, an unrolled jagged block of an operand
    named in `vector_operands` (the strategy's promise: its blocks start on
    A-byte boundaries, and its memref has a static unit stride over time) is
    read and written with one `vector.load`/`vector.store` of the whole
    block, aligned to A. A channels-by-time layout (BTP) needs
    this: each thread's block is contiguous, its neighbours' are not. The
    jagged `mixer.channel_scan_adjoint` does the same for the full blocks of
    its gates, inputs, output gradient and both gradient destinations.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::complex::ComplexDialect", "::mlir::vector::VectorDialect"];
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
    the op; on the GPU it is the one-token decode kernel and the kernel of
    every variant the tensor-core lowering does not take. Lowers the ops
    whose `mixer.lowering_config` says `kernel = recurrent`; the parallel
    loop carries the config (its `block`) to `mixer-parallel-loops-to-gpu`.
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
    the state at every C-th step in scratch (C: the config's `chunk`, or with
    `chunk = 0` the candidate in 16, 32, ..., 256 that minimises the states
    held, ceil(L / C) + C for mean sequence length L, chosen at run time),
    then walks the
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
    Every `mixer.linear_attention` whose `mixer.lowering_config` says
    `kernel = chunked` becomes one to three `gpu.launch`es: for the delta
    rule a kernel that writes each chunk's WY factors, for a per-key decay
    (GLA) a kernel that writes each chunk's decayed queries and keys, scores
    and total decay (both parallel over chunks, into scratch the pass
    allocates for `mixer-assign-workspace`), then the sequential kernel: a
    block per (value tile of `block_v` channels, head, sequence) walks the
    sequence in chunks of 64 steps, with the state in mma.sync accumulators
    (sm_80+, m16n8k16) and the chunk's operands in dynamic shared memory.
    Taken: no decay, a per-head or per-key decay, the additive or the delta
    update, bf16/f16 inputs, an f32 state, K a multiple of 16 up to 128,
    contiguous head dimensions. An op configured `chunked` that the kernels
    cannot take is an error naming why; other ops are left in place.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::gpu::GPUDialect", "::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect", "::mlir::vector::VectorDialect"];
}


def MixerSelectLoweringConfig : Pass<"mixer-select-lowering-config", "::mlir::ModuleOp"> {
  let summary = "Choose the kernel and its shape for every mixer op (the strategy)";
  let description = [{
    The only place where kernels are chosen. For every `mixer.scan`,
    `mixer.scan_adjoint`, `mixer.channel_scan`, `mixer.linear_attention` and
    `mixer.linear_attention_adjoint` it decides, from facts the IR carries
    (the module's `#mixer.target`, the memref types, the `mixer.alignment`
    argument attributes and the `mixer.offsets_fit_i32` function attribute),
    which kernel lowers the op and how it is shaped, and records the decision
    as the op's `mixer.lowering_config` attribute:

    * scans: tile length, loop unrolling, thread block (channels on x, then
      time tiles or batch rows; one block per thread for channels-by-time
      layouts), which operands move whole jagged blocks as vectors, the
      output exchange, 32-bit indexing, sunk constants;
    * linear attention: tensor cores (`chunked`, with the value tile, a key
      split for K > 128 and the run-time rule of a sequence split) or the
      recurrent kernel; the adjoint's checkpointing.

    A config already on an op is kept; one with `kernel = auto` holds
    overrides on top of the strategy's choice. `chip` names the target when
    the module has no `mixer.target` (the pipelines pass theirs).
  }];
  let options = [
    Option<"chip", "chip", "std::string", /*default=*/"\"\"",
           "Target chip when the module carries no mixer.target (\"cpu\" or sm_XX)">
  ];
  // It creates #mixer.target even in a module that holds no mixer op (where
  // the dialect would otherwise not be loaded).
  let dependentDialects = ["::mlir::mixer::MixerDialect"];
}

def MixerSplitLinearAttention : Pass<"mixer-split-linear-attention", "::mlir::func::FuncOp"> {
  let summary = "Apply the key and sequence splits a linear attention's config asks for";
  let description = [{
    Schedules above the kernels, as the strategy recorded them:

    * `key_split = Kb`: with a decay that is diagonal over keys (none, per
      head, per key), the state's rows over a block of Kb key dimensions
      evolve independently and the output is the sum of the blocks'
      outputs. The op becomes one op per block (float32 outputs into
      scratch) and a sum into the output.
    * `sequence_split`: sequences are cut into pieces (P of them per
      sequence): the op without an output gives each piece's state from
      zero, a `mixer.scan` over pieces (gates: each piece's total log decay;
      cut at every sequence start) gives every piece's initial state and the
      final states, and the op with `pieces` runs every piece from its
      initial state. With a run-time rule (`piece = 0`) the choice between
      this and the unsplit op is made by generated code from the sizes of
      the call.

    The ops it creates carry complete configs (the parent's kernel, no
    further split).
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect"];
}

def MixerAssignWorkspace : Pass<"mixer-assign-workspace", "::mlir::ModuleOp"> {
  let summary = "Place the lowerings' scratch in the caller's workspace buffer";
  let description = [{
    Lowerings allocate the scratch they need with `memref.alloc` marked
    `mixer.workspace`, at the top level of their function. In a function
    with an argument marked `mixer.workspace` (a `memref<?xi8>`: bytes the
    caller allocated), each such allocation becomes a `memref.view` of that
    buffer at a 256-byte aligned offset, and the pass adds
    `func.func @<f>_workspace_bytes` with the function's signature that
    returns the bytes the buffer must hold for the sizes it is called with
    (the allocations' size computations, cloned). Without such an argument
    the allocations stay (host memory: the CPU only) and are freed before
    every return; on a GPU target that is an error.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"gpu", "gpu", "bool", /*default=*/"false",
           "Scratch must live in the workspace argument (device memory)">
  ];
}

def MixerParallelLoopsToGpu : Pass<"mixer-parallel-loops-to-gpu", "::mlir::func::FuncOp"> {
  let summary = "Map configured scf.parallel loops to GPU launches, shaped by their configs";
  let description = [{
    Every outermost `scf.parallel` that carries a `mixer.lowering_config`
    (given by the lowering that made it) is tiled by the config's `block`
    (threads per block over its first three dimensions), mapped greedily
    (outer loop to blocks, inner to threads) and converted to a
    `gpu.launch` by the upstream passes. Then, for every `gpu.launch` with a
    config (those and the tensor-core kernels'): `sink_constants` moves
    constants and index computations into the kernel
    (`gpu-launch-sink-index-computations` for that launch), and
    `index_bitwidth = 32` names the kernel and records the width on the
    function (`mixer.kernel_index_bitwidth`) for `mixer-set-kernel-index-width`.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::gpu::GPUDialect",
                           "::mlir::affine::AffineDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect"];
}

def MixerSetKernelIndexWidth : Pass<"mixer-set-kernel-index-width", "::mlir::ModuleOp"> {
  let summary = "Give outlined kernels the index width their configs chose";
  let description = [{
    After `gpu-kernel-outlining`: every `gpu.module` named in a function's
    `mixer.kernel_index_bitwidth` gets a data layout with that index width,
    which `convert-gpu-to-nvvm` then uses for the kernel's index arithmetic.
  }];
  let dependentDialects = ["::mlir::DLTIDialect"];
}

#endif // MIXER_PASSES_TD
