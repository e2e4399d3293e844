"""mixir.ops.btp: the sliding window recurrence in spear's BTP layout (spec 2.1-2.4).

    y = btp(coeff, x, k=2)      coeff: gates [B, H, L]; x: inputs [B, H, 16, L]

Per (batch, head) the gate a_t is shared by the head's 16 channels; blocks of 16
steps are aligned to position 0; k = 2 adds the rank-1 carry of the previous
block, k = 1 none. This is `mixer.scan` with the jagged window, reached through
views only (no copy): heads join the batch, the shared gate is a stride-0 channel
dimension and channels-by-time becomes a time-major view whose output the scan
allocates in the same layout. Forward and backward are the compiled scan and its
compiler-derived adjoint; the gate gradient's sum over a head's channels is the
backward of the stride-0 view.

Registered as torch.ops.mixir.btp (CompositeImplicitAutograd), so torch.compile
traces it into the scan op.
"""

from __future__ import annotations

from typing import Optional

import torch

from .scan import Window, scan

__all__ = ["btp", "BLOCK", "HEAD_DIM"]

BLOCK = 16     # block length of the jagged window (fixed by the operator)
HEAD_DIM = 16  # channels per head (fixed by the operator)

_REAL = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(coeff, x, k, output_dtype):
    for name, t in (("coeff", coeff), ("x", x)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"mixir.ops.btp: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _REAL:
            raise TypeError(f"mixir.ops.btp: {name} has dtype {t.dtype}; supported: "
                            + ", ".join(str(d) for d in _REAL))
    if coeff.dim() != 3:
        raise ValueError(f"mixir.ops.btp: coeff must be [batch, heads, length], got "
                         f"{tuple(coeff.shape)}")
    if x.dim() != 4 or x.shape[2] != HEAD_DIM:
        raise ValueError(f"mixir.ops.btp: x must be [batch, heads, {HEAD_DIM}, length] (head dim "
                         f"{HEAD_DIM}), got {tuple(x.shape)}")
    B, H, L = coeff.shape
    if (x.shape[0], x.shape[1], x.shape[3]) != (B, H, L):
        raise ValueError(f"mixir.ops.btp: x {tuple(x.shape)} does not match coeff "
                         f"{tuple(coeff.shape)} (expected [{B}, {H}, {HEAD_DIM}, {L}])")
    if L % BLOCK:
        raise ValueError(f"mixir.ops.btp: length {L} is not a multiple of {BLOCK}; pad the end "
                         f"with gate 1 and input 0 (mixir.nn.Phalanx does)")
    if not isinstance(k, int) or isinstance(k, bool) or k not in (1, 2):
        raise ValueError(f"mixir.ops.btp: k must be 1 or 2, got {k!r}")
    if x.device != coeff.device:
        raise ValueError(f"mixir.ops.btp: x is on {x.device} but coeff is on {coeff.device}")
    if output_dtype is not None and (not isinstance(output_dtype, torch.dtype)
                                     or output_dtype not in _REAL):
        raise TypeError(f"mixir.ops.btp: output_dtype must be a real floating dtype, got "
                        f"{output_dtype}")


def _btp_impl(coeff: torch.Tensor, x: torch.Tensor, k: int = 2,
              output_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    _check(coeff, x, k, output_dtype)
    B, H, L = coeff.shape
    gates = coeff.reshape(B * H, L, 1).expand(B * H, L, HEAD_DIM)
    inputs = x.reshape(B * H, HEAD_DIM, L).transpose(1, 2)
    h, _ = scan(gates, inputs, window=Window("jagged", BLOCK, k))
    y = h.transpose(1, 2).reshape(B, H, HEAD_DIM, L)
    return y if output_dtype is None else y.to(output_dtype)


_LIB = torch.library.Library("mixir", "FRAGMENT")
_LIB.define("btp(Tensor coeff, Tensor x, int k=2, ScalarType? output_dtype=None) -> Tensor")
_LIB.impl("btp", _btp_impl, "CompositeImplicitAutograd")


def btp(coeff: torch.Tensor, x: torch.Tensor, k: int = 2,
        output_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """The BTP sliding window recurrence (spec 2.1), spear's argument order and layout.

    coeff: gates [B, H, L] in [0, 1] (a precondition, not checked); x: [B, H, 16, L];
    L a multiple of 16; float16/bfloat16/float32/float64, CPU or CUDA. k = 2: exact
    recurrence restarted at the start of the previous 16-step block; k = 1: within
    the block only. Returns y [B, H, 16, L] in output_dtype (default: float32 for
    16/32-bit inputs, float64 for float64). Differentiable in coeff and x.
    """
    _check(coeff, x, k, output_dtype)  # before the op's schema (which reads k=True as 1)
    return torch.ops.mixir.btp(coeff, x, k, output_dtype)
