//===- MixerOps.td - ops of the mixer dialect --------------*- tablegen -*-===//

#ifndef MIXER_OPS_TD
#define MIXER_OPS_TD

include "MixerDialect.td"
include "MixerAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// A whole-sequence operand: a ranked tensor (value semantics) or a strided
// memref (after bufferization; what kernels are generated from).
def Mixer_Shaped : AnyTypeOf<[AnyRankedTensor, AnyNon0RankedMemRef]>;
def Mixer_Series : MemRefRankOf<[AnyFloat, AnyComplex], [1]>;
def Mixer_Scalar : AnyTypeOf<[AnyFloat, AnyComplex]>;

//===----------------------------------------------------------------------===//
// mixer.scan
//===----------------------------------------------------------------------===//

def Mixer_ScanOp : Mixer_Op<"scan", [
    AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<DestinationStyleOpInterface>]> {
  let summary = "diagonal linear recurrence h_t = a_t * h_{t-1} + b_t along time";
  let description = [{
    Runs, independently for every batch row and channel, the first-order linear
    recurrence (spec section 2.1 for the jagged window; the global form is the
    plain sequential definition)

    ```
    h_t = a_t * h_{t-1} + b_t,     h_{-1} = initial_state (0 if absent)
    ```

    over `gates` (`a`) and `inputs` (`b`), both `[batch, time, channels]`.

    * `log_space`: `gates` hold `log a_t` and the op uses `a_t = exp(g_t)`
      (complex exponential for complex gates). A gate of `-inf` cuts the
      recurrence exactly.
    * `reverse`: time runs backwards, `h_t = a_t * h_{t+1} + b_t`, and the final
      state is `h_0`. Jagged blocks stay aligned to absolute position 0.
    * window `global`: `final_state` is `h_{T-1}` (`h_0` when reversed): the
      `initial_state` that continues the sequence.
    * window `jagged<block = BL, k = K>`: the sliding window recurrence.
      `initial_state` is the carry `c_{-1}` received by the first block (k = 2
      only; with k = 1 there is no carry and an initial state is an error).
      `final_state` is the zero-initialised local state of the last time step,
      i.e. the carry a continuation needs when the sequence ends on a block
      boundary.

    Element types: gates and inputs are floats (f16, bf16, f32, f64) or
    complex; the state type is the element type of `output`/`final_state`
    (f32, f64 or complex of them) and is at least as wide as the inputs, which
    are extended before any arithmetic.

    The op is in destination-passing style: `output` (`[B, T, D]`) and
    `final_state` (`[B, D]`) are the destinations; with tensors the op returns
    their new values, with memrefs it writes them. At least one of the two is
    present.

    ```mlir
    %h, %hT = mixer.scan jagged<block = 16, k = 2> log_space
        gates(%g : tensor<2x64x8xf32>) inputs(%x : tensor<2x64x8xf32>)
        init(%h0 : tensor<2x8xf32>)
        outs(%e : tensor<2x64x8xf32>) final(%f : tensor<2x8xf32>)
        -> tensor<2x64x8xf32>, tensor<2x8xf32>
    ```
  }];

  let arguments = (ins
    Mixer_Shaped:$gates,
    Mixer_Shaped:$inputs,
    Optional<Mixer_Shaped>:$initial_state,
    Optional<Mixer_Shaped>:$output,
    Optional<Mixer_Shaped>:$final_state,
    Mixer_WindowAttr:$window,
    UnitAttr:$log_space,
    UnitAttr:$reverse);
  let results = (outs Variadic<AnyRankedTensor>:$results);

  let assemblyFormat = [{
    custom<Window>($window) (`log_space` $log_space^)? (`reverse` $reverse^)?
    `gates` `(` $gates `:` type($gates) `)`
    `inputs` `(` $inputs `:` type($inputs) `)`
    (`init` `(` $initial_state^ `:` type($initial_state) `)`)?
    (`outs` `(` $output^ `:` type($output) `)`)?
    (`final` `(` $final_state^ `:` type($final_state) `)`)?
    attr-dict (`->` type($results)^)?
  }];
  let hasVerifier = 1;

  let extraClassDeclaration = [{
    /// The element type in which the recurrence is carried.
    Type getStateElementType();
  }];
}

//===----------------------------------------------------------------------===//
// mixer.channel_scan
//===----------------------------------------------------------------------===//

def Mixer_ChannelScanOp : Mixer_Op<"channel_scan", [AttrSizedOperandSegments]> {
  let summary = "the recurrence of one channel over a range of time, carry as a scalar";
  let description = [{
    The tiled form of `mixer.scan` that `mixer-tile-scan` produces: one channel
    of one batch row, over a contiguous range of time (a strided 1-D view). The
    carry enters as the scalar `initial_state` (zero if absent) and leaves as
    the scalar result, so tiles chain through SSA values and need no scratch
    memory. `output`, if present, receives every step's state; without it the
    op only computes the carry (used for the previous block of a jagged window).

    Same `window`, `log_space` and `reverse` semantics as `mixer.scan`. For a
    jagged window the view must start at an absolute block boundary (position
    0 of the view is a multiple of the block length), which the tiler ensures.

    ```mlir
    %carry = mixer.channel_scan jagged<block = 16, k = 2>
        gates(%a : memref<?xf32, strided<[?], offset: ?>>)
        inputs(%b : memref<?xf32, strided<[?], offset: ?>>)
        init(%c : f32) outs(%h : memref<?xf32, strided<[?], offset: ?>>) -> f32
    ```
  }];

  let arguments = (ins
    Arg<Mixer_Series, "gates", [MemRead]>:$gates,
    Arg<Mixer_Series, "inputs", [MemRead]>:$inputs,
    Optional<Mixer_Scalar>:$initial_state,
    Arg<Optional<Mixer_Series>, "states", [MemWrite]>:$output,
    Mixer_WindowAttr:$window,
    UnitAttr:$log_space,
    UnitAttr:$reverse);
  let results = (outs Mixer_Scalar:$final_state);

  let assemblyFormat = [{
    custom<Window>($window) (`log_space` $log_space^)? (`reverse` $reverse^)?
    `gates` `(` $gates `:` type($gates) `)`
    `inputs` `(` $inputs `:` type($inputs) `)`
    (`init` `(` $initial_state^ `:` type($initial_state) `)`)?
    (`outs` `(` $output^ `:` type($output) `)`)?
    attr-dict `->` type($final_state)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// mixer.scan_adjoint
//===----------------------------------------------------------------------===//

def Mixer_ScanAdjointOp : Mixer_Op<"scan_adjoint", [AttrSizedOperandSegments]> {
  let summary = "gradients of mixer.scan (the adjoint recurrence), in one pass";
  let description = [{
    The reverse-mode derivative of a `mixer.scan` with the same `window`,
    `log_space` and `reverse` attributes, as `mixer-scan-adjoint` derives it.
    Given the forward operands, the forward output `states` (h, needed by the
    global window), the gradient of the output `output_grad` and optionally of
    the final state `final_grad`, it writes the gradients of the gates, the
    inputs and (optionally) the initial state.

    Global window: `lam_t = dh_t + a_{t+1} lam_{t+1}` run against time,
    `db = lam`, `da_t = lam_t h_{t-1}`, `dh0 = a_0 lam_0`.
    Jagged window (spec 2.4): inside a block the adjoint `rho` of the block's
    exact recurrence, plus the adjoint `sigma` of the zero-initialised local
    state that the block hands to the next one as its carry:
    `db = rho + sigma`, `da_t = rho_t y_{t-1} + sigma_t l_{t-1}`; the gradient
    carry travels one block to the left, like the forward carry to the right.
    In log space the gate gradient is multiplied by `a`. Gradients are written
    in the element types of their destinations.

    Buffer form only (the JIT emits it; it has no tensor form yet). Real
    element types; `reverse` with the global window only (for now).

    ```mlir
    mixer.scan_adjoint jagged<block = 16, k = 2>
        gates(%a : memref<?x?x?xbf16>) inputs(%b : memref<?x?x?xbf16>)
        states(%h : memref<?x?x?xf32>) output_grad(%dh : memref<?x?x?xf32>)
        gates_grad(%da : memref<?x?x?xbf16>) inputs_grad(%db : memref<?x?x?xbf16>)
    ```
  }];
  let arguments = (ins
    AnyNon0RankedMemRef:$gates,
    AnyNon0RankedMemRef:$inputs,
    Optional<AnyNon0RankedMemRef>:$initial_state,
    AnyNon0RankedMemRef:$states,
    AnyNon0RankedMemRef:$output_grad,
    Optional<AnyNon0RankedMemRef>:$final_grad,
    AnyNon0RankedMemRef:$gates_grad,
    AnyNon0RankedMemRef:$inputs_grad,
    Optional<AnyNon0RankedMemRef>:$initial_state_grad,
    Mixer_WindowAttr:$window,
    UnitAttr:$log_space,
    UnitAttr:$reverse);
  let assemblyFormat = [{
    custom<Window>($window) (`log_space` $log_space^)? (`reverse` $reverse^)?
    `gates` `(` $gates `:` type($gates) `)`
    `inputs` `(` $inputs `:` type($inputs) `)`
    (`init` `(` $initial_state^ `:` type($initial_state) `)`)?
    `states` `(` $states `:` type($states) `)`
    `output_grad` `(` $output_grad `:` type($output_grad) `)`
    (`final_grad` `(` $final_grad^ `:` type($final_grad) `)`)?
    `gates_grad` `(` $gates_grad `:` type($gates_grad) `)`
    `inputs_grad` `(` $inputs_grad `:` type($inputs_grad) `)`
    (`init_grad` `(` $initial_state_grad^ `:` type($initial_state_grad) `)`)?
    attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    Type getStateElementType() {
      return ::mlir::cast<::mlir::MemRefType>(getStates().getType()).getElementType();
    }
  }];
}

//===----------------------------------------------------------------------===//
// mixer.channel_scan_adjoint
//===----------------------------------------------------------------------===//

def Mixer_ChannelScanAdjointOp : Mixer_Op<"channel_scan_adjoint", [AttrSizedOperandSegments]> {
  let summary = "the adjoint of one channel over a range of time, carries as scalars";
  let description = [{
    The tiled form of `mixer.scan_adjoint`: one channel over a contiguous
    range of time that starts on a block boundary (jagged windows).

    * `carry`: the forward state before the range: `h_{t0-1}` (or h0) for a
      global window, the previous block's local state (or c_init) for a
      jagged one with k = 2.
    * `grad_carry`: the gradient entering the range's last step from the
      right (global: `a_{t_end} lam_{t_end}`; jagged: the adjoint `sigma` of
      the last block's local state: the next block's gradient carry, or the
      final-state gradient).
    * result: the gradient carry leaving the range's first step to the left
      (`a_{t0} lam_{t0}` or `a_{t0} rho_{t0}`); for the first range it is the
      gradient of the initial state.

    Without destinations the op only computes the result (a right halo).

    `reverse` (global window only): the adjoint of a reverse scan runs forward in
    time; `carry` is then the state after the range (`h_{t_end}`, or h0) and the
    gradient carries enter at the range's first step and leave at its last.
  }];
  let arguments = (ins
    Mixer_Series:$gates,
    Optional<Mixer_Series>:$inputs,
    Optional<Mixer_Series>:$states,
    Mixer_Series:$output_grad,
    Optional<Mixer_Scalar>:$carry,
    Optional<Mixer_Scalar>:$grad_carry,
    Optional<Mixer_Series>:$gates_grad,
    Optional<Mixer_Series>:$inputs_grad,
    Mixer_WindowAttr:$window,
    UnitAttr:$log_space,
    UnitAttr:$reverse);
  let results = (outs Mixer_Scalar:$result);
  let assemblyFormat = [{
    custom<Window>($window) (`log_space` $log_space^)? (`reverse` $reverse^)?
    `gates` `(` $gates `:` type($gates) `)`
    (`inputs` `(` $inputs^ `:` type($inputs) `)`)?
    (`states` `(` $states^ `:` type($states) `)`)?
    `output_grad` `(` $output_grad `:` type($output_grad) `)`
    (`carry` `(` $carry^ `:` type($carry) `)`)?
    (`grad_carry` `(` $grad_carry^ `:` type($grad_carry) `)`)?
    (`gates_grad` `(` $gates_grad^ `:` type($gates_grad) `)`)?
    (`inputs_grad` `(` $inputs_grad^ `:` type($inputs_grad) `)`)?
    attr-dict `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// mixer.linear_attention
//===----------------------------------------------------------------------===//

def Mixer_LinearAttentionOp : Mixer_Op<"linear_attention", [AttrSizedOperandSegments]> {
  let summary = "linear attention with a matrix-valued state S_t in R^{K x V}, per head";
  let description = [{
    For every sequence `n` and head `h`, with `S_{-1} = initial_state` (0 if
    absent) and time running over the sequence (spec sections 3.1 and 4.7):

    ```
    S_t = D_t S_{t-1}                               decay
    S_t = S_t + k_t v_t^T                            additive update, or
    S_t = S_t + k_t (beta_t (v_t - S_t^T k_t))^T     delta rule (`beta` present)
    o_t = scale * S_t^T q_t                          read after the update
    ```

    The decay `D_t` is the identity without `log_decay`; `exp(g_t)` for a
    per-head `log_decay` `[B, T, H]` (simple GLA, RetNet, gated delta rule);
    `diag(exp(g_t))` over the key dimension for `[B, T, H, K]` (GLA). With
    `value_decay` a `[B, T, H, V]` `log_decay` decays the state's columns
    instead, `S_t = S_{t-1} diag(exp(g_t))`: the transposed GLA, which is what
    GLA's gradients dq and dk are.

    Layout (fla's, time before heads): `query`, `key` `[B, T, Hq, K]`, `value`
    and `output` `[B, T, H, V]`, `beta` `[B, T, H]`, states `[N, H, K, V]`.
    H is a multiple of Hq (grouped value heads, fla's GVA): value head h reads
    query/key head `h / (H / Hq)`; decays and `beta` are per value head.
    Without `offsets`, N = B and every batch row is one sequence of length T.
    With `offsets` (`[N + 1]`, the cumulative sequence lengths; B must be 1)
    sequence n is time steps `[offsets[n], offsets[n+1])` of the single row and
    its state starts from `initial_state[n]`. `final_state` receives every
    sequence's last state. `scale` is a run-time scalar. Without `output` only
    the final states are computed and `query` is not read: the state pass of a
    sequence-split schedule (each piece's state from zero, combined afterwards).

    The state is carried in the element type of the destinations' float type
    (`final_state` or, without it, f32 for 16/32-bit inputs and f64 for f64);
    inputs are extended before arithmetic.

    With `input_gate` (`[B, T, H]`, the pre-activations i_t of an exponential
    input gate) the op is the mLSTM cell (spec 3.1) in its stabilised form:
    `log_decay` (per head, or absent for 0) is the log forget gate, and besides
    `S` it carries a normaliser `n` (`[N, H, K]`) and a stabiliser `m`
    (`[N, H]`), all 0 unless `init_normalizer` / `init_stabilizer` give them:

    ```
    m_t = max(g_t + m_{t-1}, i_t)
    f_t = exp(g_t + m_{t-1} - m_t),   e_t = exp(i_t - m_t)
    S_t = f_t S_{t-1} + e_t k_t v_t^T,   n_t = f_t n_{t-1} + e_t k_t
    o_t = scale S_t^T q_t / (max(|scale n_t . q_t|, exp(-m_t)) + epsilon)
    ```

    (`epsilon` defaults to 1e-6). `final_normalizer` / `final_stabilizer`
    receive the last `n` and `m`; `S` is `init` / `final` as for the others.
    The sigmoid input gate (mLSTMsig) is this op with `logsigmoid(i)` for `i`.

    With `pieces` (a run-time length L, a multiple of 64), every sequence is
    cut into pieces of L steps, `[j L, min((j + 1) L, length))`, and each
    piece is a recurrence of its own: it starts from `initial_state[n, j]`
    (0 if absent) and leaves its last state (its initial one when the piece
    is empty) in `final_state[n, j]`; states are then `[N, P, H, K, V]`, P
    being their dimension 1. This is how a sequence split runs its pieces in
    parallel (`mixer-split-linear-attention`); not with `input_gate`.

    With `corrected_values` (`[B, T, H, V]`, the delta rule only) the op also
    writes every step's update value `beta_t (v_t - S_t^T k_t)` (S_t decayed,
    before the update) there: with it the delta rule is an additive update
    with keys k and these values, which is how its gradients become forward
    passes of the op (python/mixir/ops/linear_attention.py). Its element type
    is the value's or the state's; the tensor-core kernels write the values
    they compute with, rounded to the value's type.

    The op holds no scratch: a lowering that needs some (the chunked kernels'
    per-chunk factors, a sequence split's piece states) allocates it, and
    `mixer-assign-workspace` places every such allocation in the caller's
    workspace buffer. How the op is lowered is its `mixer.lowering_config`
    (chosen by `mixer-select-lowering-config`).

    Buffer form only (the JIT emits it).

    ```mlir
    mixer.linear_attention
        query(%q : memref<?x?x?x128xbf16>) key(%k : memref<?x?x?x128xbf16>)
        value(%v : memref<?x?x?x128xbf16>) log_decay(%g : memref<?x?x?xf32>)
        scale(%s : f32) outs(%o : memref<?x?x?x128xbf16>)
        final(%sT : memref<?x?x128x128xf32>)
    ```
  }];
  let arguments = (ins
    Arg<AnyNon0RankedMemRef, "query", [MemRead]>:$query,
    Arg<AnyNon0RankedMemRef, "key", [MemRead]>:$key,
    Arg<AnyNon0RankedMemRef, "value", [MemRead]>:$value,
    Arg<Optional<AnyNon0RankedMemRef>, "log decay", [MemRead]>:$log_decay,
    Arg<Optional<AnyNon0RankedMemRef>, "delta-rule step sizes", [MemRead]>:$beta,
    Arg<Optional<AnyNon0RankedMemRef>, "mLSTM input-gate pre-activations", [MemRead]>:$input_gate,
    AnyFloat:$scale,
    Arg<Optional<AnyNon0RankedMemRef>, "initial states", [MemRead]>:$initial_state,
    Arg<Optional<AnyNon0RankedMemRef>, "initial mLSTM normalisers", [MemRead]>:$initial_normalizer,
    Arg<Optional<AnyNon0RankedMemRef>, "initial mLSTM stabilisers", [MemRead]>:$initial_stabilizer,
    Arg<Optional<MemRefRankOf<[I32, I64], [1]>>, "sequence offsets", [MemRead]>:$offsets,
    Optional<Index>:$pieces,
    Arg<Optional<AnyNon0RankedMemRef>, "output", [MemWrite]>:$output,
    Arg<Optional<AnyNon0RankedMemRef>, "delta-rule corrected values", [MemWrite]>:$corrected_values,
    Arg<Optional<AnyNon0RankedMemRef>, "final states", [MemWrite]>:$final_state,
    Arg<Optional<AnyNon0RankedMemRef>, "final mLSTM normalisers", [MemWrite]>:$final_normalizer,
    Arg<Optional<AnyNon0RankedMemRef>, "final mLSTM stabilisers", [MemWrite]>:$final_stabilizer,
    UnitAttr:$value_decay,
    OptionalAttr<F64Attr>:$epsilon);

  let assemblyFormat = [{
    `query` `(` $query `:` type($query) `)`
    `key` `(` $key `:` type($key) `)`
    `value` `(` $value `:` type($value) `)`
    (`log_decay` `(` $log_decay^ `:` type($log_decay) `)`)?
    (`beta` `(` $beta^ `:` type($beta) `)`)?
    (`input_gate` `(` $input_gate^ `:` type($input_gate) `)`)?
    `scale` `(` $scale `:` type($scale) `)`
    (`init` `(` $initial_state^ `:` type($initial_state) `)`)?
    (`init_normalizer` `(` $initial_normalizer^ `:` type($initial_normalizer) `)`)?
    (`init_stabilizer` `(` $initial_stabilizer^ `:` type($initial_stabilizer) `)`)?
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    (`pieces` `(` $pieces^ `)`)?
    (`outs` `(` $output^ `:` type($output) `)`)?
    (`corrected` `(` $corrected_values^ `:` type($corrected_values) `)`)?
    (`final` `(` $final_state^ `:` type($final_state) `)`)?
    (`final_normalizer` `(` $final_normalizer^ `:` type($final_normalizer) `)`)?
    (`final_stabilizer` `(` $final_stabilizer^ `:` type($final_stabilizer) `)`)?
    (`value_decay` $value_decay^)?
    attr-dict
  }];
  let hasVerifier = 1;

  let extraClassDeclaration = [{
    /// The element type in which the state S is carried.
    Type getStateElementType();
    /// True for a per-key-dimension decay (GLA): log_decay is [B, T, H, K].
    bool hasVectorDecay() {
      return getLogDecay() && !getValueDecay() &&
             ::mlir::cast<::mlir::MemRefType>(getLogDecay().getType()).getRank() == 4;
    }
    /// True for a per-value-dimension decay: log_decay is [B, T, H, V].
    bool hasValueDecay() { return getLogDecay() && getValueDecay(); }
    /// True for the mLSTM cell (an exponential input gate, normaliser, stabiliser).
    bool isMlstm() { return static_cast<bool>(getInputGate()); }
    /// The mLSTM denominator's epsilon.
    double getEpsilonOrDefault() { return getEpsilon() ? getEpsilon()->convertToDouble() : 1e-6; }
    int64_t getKeyDim() {
      return ::mlir::cast<::mlir::MemRefType>(getKey().getType()).getShape()[3];
    }
    int64_t getValueDim() {
      return ::mlir::cast<::mlir::MemRefType>(getValue().getType()).getShape()[3];
    }
  }];
}

//===----------------------------------------------------------------------===//
// mixer.linear_attention_adjoint
//===----------------------------------------------------------------------===//

def Mixer_LinearAttentionAdjointOp : Mixer_Op<"linear_attention_adjoint",
                                               [AttrSizedOperandSegments]> {
  let summary = "gradients of mixer.linear_attention (the adjoint recurrence), in one pass";
  let description = [{
    The reverse-mode derivative of a `mixer.linear_attention` with the same
    forward operands (`query` ... `offsets`, `epsilon`): given the gradient of
    the output `output_grad` and optionally of the final states
    (`final_grad`, and for the mLSTM cell `final_normalizer_grad`,
    `final_stabilizer_grad`), it writes the gradient of every forward operand
    that is present: `query_grad`, `key_grad`, `value_grad`, and
    `log_decay_grad`, `beta_grad`, `input_gate_grad`, `init_grad`,
    `init_normalizer_grad`, `init_stabilizer_grad` exactly when the op has the
    corresponding forward operand. Gradients are written in the element types
    of their destinations.

    With `L_t` the gradient reaching `S_t` (from `final_grad` at a sequence's
    last step), `S'_t = D_t S_{t-1}` and the update's value `u_t`:

    ```
    L_t   += scale q_t do_t^T           dq_t = scale S_t do_t
    y_t    = L_t^T k_t                  dv_t = y_t (additive) or beta_t y_t
    dbeta_t = y_t . (v_t - S'^T_t k_t)   dk_t = L_t u_t - beta_t S'_t y_t
    G_t    = L_t - beta_t k_t y_t^T      dg_t = sum over values of G_t * S'_t
    L_{t-1} = D_t G_t                   init_grad = L_{-1}
    ```

    (the `beta` terms only for the delta rule; `dg` summed over keys too for a
    per-head decay). The mLSTM cell's adjoint also carries the normaliser's
    and stabiliser's gradients: the stabiliser is differentiated exactly (its
    `max` sends the gradient to the larger argument, the denominator's `max`
    likewise, `|x|` by its sign), so the gradients are those of the function
    the forward computes, `epsilon` included.

    The state (and the gradient reaching it) is carried in the element type
    of `final_grad`, else of `initial_state`, else f64 for f64 values and f32
    otherwise, as the forward op carries it.

    The adjoint needs `S_{t-1}` at every step, in reverse time; how it gets
    them is its lowering's (`mixer-lower-linear-attention-adjoint`: a forward
    pass keeping checkpoints, then each chunk recomputed, with the checkpoint
    interval of its `mixer.lowering_config`).

    Grouped value heads: `query_grad` and `key_grad` are per value head
    (`[B, T, H, K]`); the caller sums them over each group. Per-value-dimension
    decays (`value_decay`) have no adjoint here. Buffer form only.

    ```mlir
    mixer.linear_attention_adjoint
        query(%q : memref<?x?x?x64xf32>) key(%k : memref<?x?x?x64xf32>)
        value(%v : memref<?x?x?x64xf32>) log_decay(%g : memref<?x?x?xf32>)
        beta(%b : memref<?x?x?xf32>) scale(%s : f32)
        output_grad(%do : memref<?x?x?x64xf32>)
        query_grad(%dq : memref<?x?x?x64xf32>) key_grad(%dk : memref<?x?x?x64xf32>)
        value_grad(%dv : memref<?x?x?x64xf32>) log_decay_grad(%dg : memref<?x?x?xf32>)
        beta_grad(%db : memref<?x?x?xf32>)
    ```
  }];
  let arguments = (ins
    Arg<AnyNon0RankedMemRef, "query", [MemRead]>:$query,
    Arg<AnyNon0RankedMemRef, "key", [MemRead]>:$key,
    Arg<AnyNon0RankedMemRef, "value", [MemRead]>:$value,
    Arg<Optional<AnyNon0RankedMemRef>, "log decay", [MemRead]>:$log_decay,
    Arg<Optional<AnyNon0RankedMemRef>, "delta-rule step sizes", [MemRead]>:$beta,
    Arg<Optional<AnyNon0RankedMemRef>, "mLSTM input-gate pre-activations", [MemRead]>:$input_gate,
    AnyFloat:$scale,
    Arg<Optional<AnyNon0RankedMemRef>, "initial states", [MemRead]>:$initial_state,
    Arg<Optional<AnyNon0RankedMemRef>, "initial mLSTM normalisers", [MemRead]>:$initial_normalizer,
    Arg<Optional<AnyNon0RankedMemRef>, "initial mLSTM stabilisers", [MemRead]>:$initial_stabilizer,
    Arg<Optional<MemRefRankOf<[I32, I64], [1]>>, "sequence offsets", [MemRead]>:$offsets,
    Arg<AnyNon0RankedMemRef, "gradient of the output", [MemRead]>:$output_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the final states", [MemRead]>:$final_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the final normalisers",
        [MemRead]>:$final_normalizer_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the final stabilisers",
        [MemRead]>:$final_stabilizer_grad,
    Arg<AnyNon0RankedMemRef, "gradient of query", [MemWrite]>:$query_grad,
    Arg<AnyNon0RankedMemRef, "gradient of key", [MemWrite]>:$key_grad,
    Arg<AnyNon0RankedMemRef, "gradient of value", [MemWrite]>:$value_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of log_decay", [MemWrite]>:$log_decay_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of beta", [MemWrite]>:$beta_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of input_gate", [MemWrite]>:$input_gate_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the initial states",
        [MemWrite]>:$initial_state_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the initial normalisers",
        [MemWrite]>:$initial_normalizer_grad,
    Arg<Optional<AnyNon0RankedMemRef>, "gradient of the initial stabilisers",
        [MemWrite]>:$initial_stabilizer_grad,
    OptionalAttr<F64Attr>:$epsilon);

  let assemblyFormat = [{
    `query` `(` $query `:` type($query) `)`
    `key` `(` $key `:` type($key) `)`
    `value` `(` $value `:` type($value) `)`
    (`log_decay` `(` $log_decay^ `:` type($log_decay) `)`)?
    (`beta` `(` $beta^ `:` type($beta) `)`)?
    (`input_gate` `(` $input_gate^ `:` type($input_gate) `)`)?
    `scale` `(` $scale `:` type($scale) `)`
    (`init` `(` $initial_state^ `:` type($initial_state) `)`)?
    (`init_normalizer` `(` $initial_normalizer^ `:` type($initial_normalizer) `)`)?
    (`init_stabilizer` `(` $initial_stabilizer^ `:` type($initial_stabilizer) `)`)?
    (`offsets` `(` $offsets^ `:` type($offsets) `)`)?
    `output_grad` `(` $output_grad `:` type($output_grad) `)`
    (`final_grad` `(` $final_grad^ `:` type($final_grad) `)`)?
    (`final_normalizer_grad` `(` $final_normalizer_grad^ `:` type($final_normalizer_grad) `)`)?
    (`final_stabilizer_grad` `(` $final_stabilizer_grad^ `:` type($final_stabilizer_grad) `)`)?
    `query_grad` `(` $query_grad `:` type($query_grad) `)`
    `key_grad` `(` $key_grad `:` type($key_grad) `)`
    `value_grad` `(` $value_grad `:` type($value_grad) `)`
    (`log_decay_grad` `(` $log_decay_grad^ `:` type($log_decay_grad) `)`)?
    (`beta_grad` `(` $beta_grad^ `:` type($beta_grad) `)`)?
    (`input_gate_grad` `(` $input_gate_grad^ `:` type($input_gate_grad) `)`)?
    (`init_grad` `(` $initial_state_grad^ `:` type($initial_state_grad) `)`)?
    (`init_normalizer_grad` `(` $initial_normalizer_grad^ `:` type($initial_normalizer_grad) `)`)?
    (`init_stabilizer_grad` `(` $initial_stabilizer_grad^ `:` type($initial_stabilizer_grad) `)`)?
    attr-dict
  }];
  let hasVerifier = 1;

  let extraClassDeclaration = [{
    /// The element type in which S and its gradient are carried.
    Type getStateElementType();
    /// True for a per-key-dimension decay (GLA): log_decay is [B, T, H, K].
    bool hasVectorDecay() {
      return getLogDecay() &&
             ::mlir::cast<::mlir::MemRefType>(getLogDecay().getType()).getRank() == 4;
    }
    /// Never: value_decay has no adjoint (the shared step code asks).
    bool hasValueDecay() { return false; }
    bool isMlstm() { return static_cast<bool>(getInputGate()); }
    double getEpsilonOrDefault() { return getEpsilon() ? getEpsilon()->convertToDouble() : 1e-6; }
    int64_t getKeyDim() {
      return ::mlir::cast<::mlir::MemRefType>(getKey().getType()).getShape()[3];
    }
    int64_t getValueDim() {
      return ::mlir::cast<::mlir::MemRefType>(getValue().getType()).getShape()[3];
    }
  }];
}

#endif // MIXER_OPS_TD
