"""Streaming Phalanx: JagState, a parallel prefill and a per-token decode step (spec 2.5).

State per (batch, head): h_loc, the zero-initialised local state of the current block;
r, the gate product since the block's start; c_prev, the previous block's terminal
local state (the carry); i, the offset of the next token in its 16-token block (one per
sequence, so sequences of a batch may sit at different offsets). Blocks stay aligned
to each sequence's first token.

A decode step computes y = a (h_loc + r c_prev) + x and h_loc' = a h_loc + x. Both are
one step of the same linear recurrence, so the step runs them as a single compiled
`mixer.scan` launch (T = 1, the two rows stacked as a batch, the state as its initial
state); the block-boundary bookkeeping and the layer's projections are torch ops.

Prefill of any length P followed by decode gives the one-shot forward's outputs. When
the prompt ends on a block boundary the finished block becomes c_prev and h_loc restarts
from zero (spec [OBS-2]: upstream keeps the finished block in h_loc there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from ...ops.btp import BLOCK, HEAD_DIM
from ...ops.scan import Window, scan
from .swr import Phalanx

__all__ = ["JagState", "init_state", "prefill", "step"]


@dataclass
class JagState:
    """Streaming state of a Phalanx layer for a batch (fp32 except i)."""

    h_loc: torch.Tensor   # [B, heads, 16]
    r: torch.Tensor       # [B, heads]
    c_prev: torch.Tensor  # [B, heads, 16]
    i: torch.Tensor       # [B] int64: offset of the next token in its block
    block_len: int = BLOCK

    def clone(self) -> "JagState":
        return JagState(self.h_loc.clone(), self.r.clone(), self.c_prev.clone(), self.i.clone())


def init_state(layer: Phalanx, batch: int, device=None) -> JagState:
    """The state before the first token: h_loc = 0, r = 1, c_prev = 0, i = 0."""
    device = device if device is not None else layer.proj_o.weight.device
    H = layer.heads
    z = torch.zeros(batch, H, HEAD_DIM, device=device)
    return JagState(z, torch.ones(batch, H, device=device), z.clone(),
                    torch.zeros(batch, dtype=torch.long, device=device))


def _recurrence_inputs(layer: Phalanx, x: torch.Tensor):
    """A [B, L, H] and X [B, L, D] as the recurrence sees them (cast to its input dtype,
    then to fp32), plus C and V."""
    A, X, C, V = layer.gates(x)
    rd = layer.recurrence_dtype
    return A.to(rd).float(), X.to(rd).float(), C, V


def _output(layer: Phalanx, Y: torch.Tensor, C: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    Z = Y * C.to(Y.dtype) + V.to(Y.dtype)
    return layer.proj_o(Z.to(layer.proj_o.weight.dtype))


def _check_state(layer: Phalanx, state, B: int, device) -> None:
    """The state's fields: shapes [B, heads, 16], [B, heads], [B, heads, 16] and [B],
    real floating h_loc, r, c_prev and an integer i, on x_t's device (metadata only: a
    value check of i would synchronise the GPU on every token)."""
    if not isinstance(state, JagState):
        raise TypeError(f"step: state must be a JagState (inference.init_state or prefill), "
                        f"got {type(state).__name__}")
    if state.h_loc.dim() >= 1 and state.h_loc.shape[0] != B:
        raise ValueError(f"step: the state holds {state.h_loc.shape[0]} sequences, x_t {B}")
    H = layer.heads
    for name, t, shape in (("h_loc", state.h_loc, (B, H, HEAD_DIM)), ("r", state.r, (B, H)),
                           ("c_prev", state.c_prev, (B, H, HEAD_DIM)), ("i", state.i, (B,))):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"step: state.{name} must be a torch.Tensor, got "
                            f"{type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ValueError(f"step: state.{name} must have shape {list(shape)} (batch {B}, "
                             f"{H} heads), got {tuple(t.shape)}")
        if t.device != device:
            raise ValueError(f"step: state.{name} is on {t.device} but x_t is on {device}")
        if name == "i":
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"step: state.i must be an integer tensor, got {t.dtype}")
        elif not t.is_floating_point():
            raise TypeError(f"step: state.{name} must be a floating tensor, got {t.dtype}")


@torch.no_grad()
def prefill(layer: Phalanx, x: torch.Tensor, mode: str = "parallel") -> Tuple[torch.Tensor, JagState]:
    """Outputs for a prompt x [B, P, dim] (P >= 0) and the state after it.

    mode "parallel": one forward pass (the compiled scan) plus a short k = 1 scan over
    the last one or two blocks for the state. mode "sequential": token by token with
    `step` (the reference for streaming)."""
    if not isinstance(layer, Phalanx):
        raise TypeError(f"prefill: layer must be a mixir.nn.Phalanx, got {type(layer).__name__}")
    layer._check_input("prefill", "x", x, 3)
    B, P, _ = x.shape
    state = init_state(layer, B, x.device)
    if mode == "sequential":
        outs = []
        for t in range(P):
            y, state = step(layer, x[:, t], state)
            outs.append(y)
        out = torch.stack(outs, 1) if outs else layer(x)
        return out, state
    if mode != "parallel":
        raise ValueError(f"prefill: mode must be 'parallel' or 'sequential', got {mode!r}")
    out = layer(x)
    if P == 0:
        return out, state
    H = layer.heads
    A, X, _, _ = _recurrence_inputs(layer, x)
    full = P // BLOCK          # complete blocks in the prompt
    i = P % BLOCK
    start = BLOCK * max(full - 1, 0)  # the last complete block (and the partial one after it)
    tail_gates = A[:, start:].repeat_interleave(HEAD_DIM, dim=-1)
    # The block-local (k = 1) states over the last one or two blocks; the slice starts
    # on a block boundary, so its blocks are the prompt's blocks.
    local, _ = scan(tail_gates, X[:, start:], window=Window("jagged", BLOCK, 1))
    local = local.view(B, P - start, H, HEAD_DIM)
    if i == 0:
        state.c_prev = local[:, -1].clone()
    else:
        state.h_loc = local[:, -1].clone()
        state.r = A[:, full * BLOCK:].prod(1)
        if full > 0:
            state.c_prev = local[:, full * BLOCK - start - 1].clone()
    state.i.fill_(i)
    return out, state


@torch.no_grad()
def step(layer: Phalanx, x_t: torch.Tensor, state: JagState) -> Tuple[torch.Tensor, JagState]:
    """One token per sequence: x_t [B, dim] -> (out [B, dim], the updated state).

    The recurrence update of the whole batch is one compiled scan launch."""
    if not isinstance(layer, Phalanx):
        raise TypeError(f"step: layer must be a mixir.nn.Phalanx, got {type(layer).__name__}")
    layer._check_input("step", "x_t", x_t, 2)
    B = x_t.shape[0]
    _check_state(layer, state, B, x_t.device)
    H, D = layer.heads, layer.dim
    A, X, C, V = _recurrence_inputs(layer, x_t[:, None])
    a = A[:, 0]                                          # [B, H]
    h_loc = state.h_loc
    z = h_loc + state.r[..., None] * state.c_prev if layer.k == 2 else h_loc
    # Rows 0..B-1: y = a z + x; rows B..2B-1: h_loc' = a h_loc + x.
    gates = a.repeat_interleave(HEAD_DIM, dim=-1)[:, None].repeat(2, 1, 1)   # [2B, 1, D]
    inputs = X.reshape(B, 1, D).repeat(2, 1, 1)
    init = torch.cat([z, h_loc]).reshape(2 * B, D)
    h, _ = scan(gates, inputs, initial_state=init)
    h = h.view(2, B, H, HEAD_DIM)
    y_core, h_new = h[0], h[1]
    r_new = state.r * a
    i_new = state.i + 1
    done = (i_new == BLOCK)[:, None]                     # the block just finished
    new = JagState(
        h_loc=torch.where(done[..., None], 0.0, h_new),
        r=torch.where(done, 1.0, r_new),
        c_prev=torch.where(done[..., None], h_new, state.c_prev),
        i=torch.where(done[:, 0], 0, i_new))
    out = _output(layer, y_core.reshape(B, 1, D), C, V)[:, 0]
    return out, new
