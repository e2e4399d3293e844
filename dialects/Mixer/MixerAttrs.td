//===- MixerAttrs.td - attributes of the mixer dialect -----*- tablegen -*-===//

#ifndef MIXER_ATTRS_TD
#define MIXER_ATTRS_TD

include "MixerDialect.td"
include "mlir/IR/EnumAttr.td"

def Mixer_WindowKind : I32EnumAttr<"WindowKind", "the reach of a recurrence", [
    I32EnumAttrCase<"Global", 0, "global">,
    I32EnumAttrCase<"Jagged", 1, "jagged">]> {
  let cppNamespace = "::mlir::mixer";
  let genSpecializedAttr = 0;
}

def Mixer_WindowAttr : AttrDef<Mixer_Dialect, "Window"> {
  let mnemonic = "window";
  let summary = "global recurrence or jagged sliding window (spec section 2.1)";
  let description = [{
    `global`: the recurrence runs over the whole sequence.

    `jagged<block = BL, k = K>`: the sliding window recurrence (SWR). Time is
    cut into blocks of `BL` steps aligned to absolute position 0. Inside a block
    the recurrence is exact and starts from zero; with `k = 2` each block also
    receives a rank-1 carry: the previous block's zero-initialised terminal
    state, scaled by the in-block gate product. Contributions from two or more
    blocks back are dropped exactly. `k = 1` has no carry at all.

    ```mlir
    #mixer.window<global>
    #mixer.window<jagged, block = 16, k = 2>
    ```
  }];
  let parameters = (ins "WindowKind":$kind, "int64_t":$block, "int64_t":$k);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins), [{ return $_get($_ctxt, WindowKind::Global, 0, 0); }]>,
    AttrBuilder<(ins "int64_t":$block, "int64_t":$k), [{
      return $_get($_ctxt, WindowKind::Jagged, block, k);
    }]>
  ];
  let extraClassDeclaration = [{
    bool isGlobal() const { return getKind() == WindowKind::Global; }
    bool isJagged() const { return getKind() == WindowKind::Jagged; }
    /// True when a block receives the previous block's carry (jagged, k = 2).
    bool hasCarry() const { return isJagged() && getK() == 2; }
  }];
}


//===----------------------------------------------------------------------===//
// The target and the lowering config: facts the strategy reads, and the
// decisions it records for the mechanism passes.
//===----------------------------------------------------------------------===//

def Mixer_TargetAttr : AttrDef<Mixer_Dialect, "Target"> {
  let mnemonic = "target";
  let summary = "the machine a module is compiled for, as the strategy needs to know it";
  let description = [{
    Attached to a module as `mixer.target`. `chip` is `"cpu"` or a CUDA
    architecture (`"sm_90a"`); `sm_count` and `shared_memory` (bytes of
    shared memory one thread block may opt into) are the GPU's, read off the
    device by the caller; 0 means unknown (the strategy then takes an H100/
    H200-class machine: 132 SMs, 227 KiB).

    ```mlir
    module attributes {mixer.target = #mixer.target<chip = "sm_90a", sm_count = 132,
                                                     shared_memory = 232448>} { ... }
    ```
  }];
  let parameters = (ins
    StringRefParameter<"\"cpu\" or a CUDA architecture">:$chip,
    DefaultValuedParameter<"int64_t", "0", "streaming multiprocessors (0: unknown)">:$sm_count,
    DefaultValuedParameter<"int64_t", "0", "opt-in shared memory per block, bytes">:$shared_memory);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isGpu() const { return getChip() != "cpu"; }
    /// SMs, or the default when the caller did not say.
    int64_t getSmCountOrDefault() const { return getSmCount() > 0 ? getSmCount() : 132; }
    /// The name under which modules carry this attribute.
    static ::llvm::StringRef getAttrName() { return "mixer.target"; }
  }];
}

def Mixer_KernelKind : I32EnumAttr<"KernelKind", "the kernel family that lowers an op", [
    I32EnumAttrCase<"Auto", 0, "auto">,
    I32EnumAttrCase<"Tiled", 1, "tiled">,
    I32EnumAttrCase<"Recurrent", 2, "recurrent">,
    I32EnumAttrCase<"Chunked", 3, "chunked">,
    I32EnumAttrCase<"Checkpointed", 4, "checkpointed">]> {
  let cppNamespace = "::mlir::mixer";
  let genSpecializedAttr = 0;
}

class Mixer_EnumParameterWithDefault<EnumAttrInfo info, string value>
    : EnumParameter<info> {
  let defaultValue = value;
}

def Mixer_SequenceSplitAttr : AttrDef<Mixer_Dialect, "SequenceSplit"> {
  let mnemonic = "sequence_split";
  let summary = "when and how a linear attention is cut into pieces along time";
  let description = [{
    The two-phase schedule of a chunked linear attention (see
    `mixer-split-linear-attention`): sequences are cut into pieces of
    `piece` steps, each piece's state from zero is computed in parallel, the
    pieces' initial states follow from a scan over pieces, and the output
    pass runs on the pieces from those states.

    With `piece > 0` every sequence is cut into pieces of that length (a
    multiple of the chunk). With `piece = 0` the rule is evaluated at run time
    from the sizes of the call (N sequences of mean length L, H value heads,
    `tiles = H ceil(V / 64)` thread blocks per sequence): split only when
    `N * tiles <= max_programs` (the unsplit kernel leaves SMs idle) and
    `L >= min_length` (a split costs two extra passes, which short sequences
    do not repay); the pieces then aim at `target_programs` thread blocks in
    all: `piece = max(ceil(N L / max(target_programs / tiles, 1)), min_piece)`,
    rounded up to a multiple of `granule`; no split when a piece would be the
    whole sequence.

    ```mlir
    #mixer.sequence_split<max_programs = 66, min_length = 4096, target_programs = 528,
                          min_piece = 512, granule = 64>
    #mixer.sequence_split<piece = 64>
    ```
  }];
  let parameters = (ins
    DefaultValuedParameter<"int64_t", "0", "fixed piece length (0: the run-time rule)">:$piece,
    DefaultValuedParameter<"int64_t", "0", "most thread blocks left unsplit">:$max_programs,
    DefaultValuedParameter<"int64_t", "0", "shortest mean sequence that is split">:$min_length,
    DefaultValuedParameter<"int64_t", "0", "thread blocks the pieces aim at">:$target_programs,
    DefaultValuedParameter<"int64_t", "0", "shortest piece">:$min_piece,
    DefaultValuedParameter<"int64_t", "64", "piece lengths are multiples of this">:$granule);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Mixer_LoweringConfigAttr : AttrDef<Mixer_Dialect, "LoweringConfig"> {
  let mnemonic = "lowering_config";
  let summary = "which kernel lowers an op and how it is shaped";
  let description = [{
    `mixer-select-lowering-config` attaches one of these to every mixer op
    (as the discardable attribute `mixer.lowering_config`); the mechanism
    passes read it and never choose again. A config already on an op is
    kept; with `kernel = auto` its other parameters are overrides: the
    strategy chooses the rest (how tests and sweeps force a shape).

    * `kernel`: `tiled` (scans: per-channel time tiles), `recurrent`
      (linear attention, one state column per thread), `chunked` (linear
      attention on tensor cores), `checkpointed` (the linear-attention
      adjoint).
    * Scans: `tile` time steps per tile (jagged: a multiple of the block;
      global: 0 = the whole sequence), `unroll` steps per loop iteration,
      `time_fastest` (tiles before channels in the parallel loop),
      `exchange_output` (warp exchange of output chunks), `vector_alignment`
      with `vector_operands` (bit i: operand i of the op moves whole jagged
      blocks as aligned vectors).
    * GPU kernels: `block` (threads per block over the parallel loop's
      first three dimensions), `index_bitwidth` (32 or 64 inside kernels),
      `sink_constants` (constants and index computations inside the kernel,
      not kernel arguments).
    * Linear attention: `chunk` (steps per chunk; the adjoint's checkpoint
      interval, 0 = chosen at run time from the sequence lengths), `block_v`
      (value channels per thread block), `key_split` (key dimensions per
      tensor-core pass, 0 = none), `sequence_split`, `chunk_parallel` (the
      chunk-parallel schedule: a state pass that keeps every chunk's initial
      state, then the outputs of all chunks in parallel, where the fused
      kernel would launch at most this many thread blocks; 0 = unset, -1 =
      never).

    ```mlir
    #mixer.lowering_config<kernel = tiled, tile = 256, unroll = 8,
                           block = [64, 1, 2]>
    #mixer.lowering_config<kernel = chunked, chunk = 64, block_v = 64, sink_constants = true>
    ```
  }];
  let parameters = (ins
    Mixer_EnumParameterWithDefault<Mixer_KernelKind, "::mlir::mixer::KernelKind::Auto">:$kernel,
    DefaultValuedParameter<"int64_t", "0", "time steps per tile">:$tile,
    DefaultValuedParameter<"int64_t", "1", "time steps per loop iteration">:$unroll,
    OptionalParameter<"::mlir::DenseI64ArrayAttr", "threads per block">:$block,
    DefaultValuedParameter<"bool", "false">:$time_fastest,
    DefaultValuedParameter<"bool", "false">:$exchange_output,
    DefaultValuedParameter<"int64_t", "0", "alignment promised for vector moves">:$vector_alignment,
    DefaultValuedParameter<"int64_t", "0", "operands moved as vectors (bit mask)">:$vector_operands,
    DefaultValuedParameter<"int64_t", "64", "index width inside kernels">:$index_bitwidth,
    DefaultValuedParameter<"bool", "false">:$sink_constants,
    DefaultValuedParameter<"int64_t", "0", "chunk length">:$chunk,
    DefaultValuedParameter<"int64_t", "0", "value channels per block">:$block_v,
    DefaultValuedParameter<"int64_t", "0", "key dimensions per pass">:$key_split,
    OptionalParameter<"::mlir::mixer::SequenceSplitAttr">:$sequence_split,
    DefaultValuedParameter<"int64_t", "0", "chunk-parallel up to this many thread blocks">:$chunk_parallel);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The name of the discardable attribute that holds an op's config.
    static ::llvm::StringRef getAttrName() { return "mixer.lowering_config"; }
    /// The config of `op`, or null.
    static LoweringConfigAttr of(::mlir::Operation *op);
    /// Whether operand `i` moves whole blocks as vectors.
    bool vectorizes(unsigned i) const {
      return getVectorAlignment() > 0 && ((getVectorOperands() >> i) & 1);
    }
    /// `override`'s parameters that differ from their defaults, on top of this.
    LoweringConfigAttr overriddenBy(LoweringConfigAttr override) const;
  }];
}

#endif // MIXER_ATTRS_TD
