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

#endif // MIXER_ATTRS_TD
