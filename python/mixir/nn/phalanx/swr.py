"""The Phalanx layer (spec 2.6) and the two PyTorch forms of its recurrence (spec 2.2).

method="default" runs the compiled jagged scan (mixer.scan, window jagged<16, k>);
"pytorch" the log-space blockwise form (stable right-to-left sums of log gates, never
differences of prefix sums); "pytorch_linspace" the masked cumulative product. The
two PyTorch forms are references and debugging aids: differentiable, O(L * 16) memory.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...ops.btp import BLOCK, HEAD_DIM
from ...ops._torch import state_dtype
from ...ops.scan import Window, scan

__all__ = ["Phalanx", "btp_pytorch", "btp_pytorch_linspace", "METHODS"]

METHODS = ("default", "pytorch", "pytorch_linspace")
_RECURRENCE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TINY_GATE = 1e-9  # spec 2.3: a gate at or below this cuts every path through it


def _blocks(coeff: torch.Tensor, x: torch.Tensor):
    """Gates [B, H, nb, 16] and input tiles [B, H, nb, 16 (time), 16 (channel)]."""
    B, H, L = coeff.shape
    if L % BLOCK:
        raise ValueError(f"btp reference: length {L} is not a multiple of {BLOCK}")
    st = state_dtype(coeff.dtype, x.dtype)  # the scan's state rule: fp32, fp64 for fp64
    nb = L // BLOCK
    a = coeff.to(st).reshape(B, H, nb, BLOCK)
    u = x.to(st).reshape(B, H, HEAD_DIM, nb, BLOCK).permute(0, 1, 3, 4, 2)
    return a, u


def _apply(L: torch.Tensor, p: torch.Tensor, u: torch.Tensor, k: int) -> torch.Tensor:
    """y = L u + p c^T per block, c the previous block's last local row (0 before block 0)."""
    local = L @ u
    y = local
    if k == 2:
        carry = torch.cat([torch.zeros_like(local[:, :, :1, -1]), local[:, :, :-1, -1]], 2)
        y = local + p[..., None] * carry[:, :, :, None, :]
    B, H, nb = y.shape[:3]
    return y.permute(0, 1, 4, 2, 3).reshape(B, H, HEAD_DIM, nb * BLOCK)


def btp_pytorch(coeff: torch.Tensor, x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Log-space blockwise BTP (spec 2.2, construction 1): per row i of a block,
    S(i, j) = sum of log a over (j, i], summed right to left; L = exp(S) below the
    diagonal, 1 on it. A gate <= 1e-9 has log -inf (exp gives an exact 0)."""
    a, u = _blocks(coeff, x)
    log_a = torch.where(a > _TINY_GATE, torch.log(a.clamp_min(_TINY_GATE)),
                        torch.full_like(a, float("-inf")))
    i = torch.arange(BLOCK, device=a.device)
    row, col = i[:, None], i[None, :]
    # Q[i, r] = log a_r for r <= i, else 0; R[i, m] = sum_{r >= m} Q[i, r] (right to left).
    Q = torch.where(col <= row, log_a[..., None, :], torch.zeros((), dtype=a.dtype, device=a.device))
    R = Q.flip(-1).cumsum(-1).flip(-1)
    S = torch.cat([R[..., 1:], torch.zeros_like(R[..., :1])], -1)  # S[i, j] = R[i, j + 1]
    one = torch.ones((), dtype=a.dtype, device=a.device)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    L = torch.where(row > col, torch.exp(S), torch.where(row == col, one, zero))
    p = torch.exp(log_a[..., :1] + S[..., :, 0])  # inclusive product from the block start
    return _apply(L, p, u, k)


def btp_pytorch_linspace(coeff: torch.Tensor, x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Linear-space BTP (spec 2.2, construction 2): X[i, j] = a_i below the diagonal,
    1 elsewhere; the cumulative product down each column, strict upper triangle zeroed."""
    a, u = _blocks(coeff, x)
    i = torch.arange(BLOCK, device=a.device)
    row, col = i[:, None], i[None, :]
    X = torch.where(row > col, a[..., :, None], torch.ones((), dtype=a.dtype, device=a.device))
    L = torch.where(row >= col, torch.cumprod(X, -2), torch.zeros((), dtype=a.dtype, device=a.device))
    p = a[..., :1] * L[..., :, 0]
    return _apply(L, p, u, k)


class Phalanx(nn.Module):
    """Phalanx sliding-window-recurrence mixer (spec 2.6), spear's constructor names.

    x [B, L, dim] -> [B, L, dim]. Head dim 16: dim = 16 * heads. kv_heads (dividing
    heads) share the input gate G and post-gate C across contiguous groups of heads.
    A = sigmoid(x W_a + b_a) per head; G = sigmoid(x W_b + b_b); C = x W_c + b_c
    (c_activation "sigmoid" applies one); V = x W_v; Y = SWR_k(A, G * V);
    out = W_o (Y * C + V). Projections run in the module's dtype, the recurrence
    takes its inputs in recurrence_dtype (bf16 by default) with an fp32 state.
    """

    def __init__(self, dim: int, heads: Optional[int] = None, kv_heads: Optional[int] = None,
                 method: str = "default", k: int = 2, c_activation: str = "identity",
                 recurrence_dtype: torch.dtype = torch.bfloat16, device=None, dtype=None):
        super().__init__()
        for name, value in (("dim", dim), ("heads", heads), ("kv_heads", kv_heads)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value <= 0):
                raise ValueError(f"Phalanx: {name} must be a positive int, got {value!r}")
        if heads is None:
            if dim % HEAD_DIM:
                raise ValueError(f"Phalanx: dim {dim} is not a multiple of the head dim "
                                 f"{HEAD_DIM}")
            heads = dim // HEAD_DIM
        if dim != HEAD_DIM * heads:
            raise ValueError(f"Phalanx: the head dim is fixed at {HEAD_DIM}, so dim must be "
                             f"16 * heads; got dim {dim}, heads {heads}")
        kv_heads = heads if kv_heads is None else kv_heads
        if kv_heads <= 0 or heads % kv_heads:
            raise ValueError(f"Phalanx: kv_heads ({kv_heads}) must divide heads ({heads})")
        if method not in METHODS:
            raise ValueError(f"Phalanx: method must be one of {METHODS}, got {method!r}")
        if not isinstance(k, int) or isinstance(k, bool) or k not in (1, 2):
            raise ValueError(f"Phalanx: k must be 1 or 2, got {k!r}")
        if recurrence_dtype not in _RECURRENCE_DTYPES:
            raise ValueError(f"Phalanx: recurrence_dtype must be one of "
                             f"{', '.join(str(d) for d in _RECURRENCE_DTYPES)}, got "
                             f"{recurrence_dtype!r}")
        if c_activation not in ("identity", "sigmoid"):
            raise ValueError(f"Phalanx: c_activation must be 'identity' or 'sigmoid', got "
                             f"{c_activation!r}")
        self.dim, self.heads, self.kv_heads, self.k = dim, heads, kv_heads, k
        self.method, self.c_activation, self.recurrence_dtype = method, c_activation, recurrence_dtype
        f = dict(device=device, dtype=dtype)
        self.proj_a = nn.Linear(dim, heads, bias=True, **f)
        self.proj_b = nn.Linear(dim, HEAD_DIM * kv_heads, bias=True, **f)
        self.proj_c = nn.Linear(dim, HEAD_DIM * kv_heads, bias=True, **f)
        self.proj_v = nn.Linear(dim, HEAD_DIM * heads, bias=False, **f)
        self.proj_o = nn.Linear(dim, dim, bias=False, **f)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, heads={self.heads}, kv_heads={self.kv_heads}, k={self.k}, "
                f"method={self.method!r}")

    def _kv_repeat(self, t: torch.Tensor) -> torch.Tensor:
        """[B, L, 16 * kv_heads] -> [B, L, 16 * heads]: head h reads kv-head h // group."""
        if self.kv_heads == self.heads:
            return t
        B, L, _ = t.shape
        group = self.heads // self.kv_heads
        return (t.view(B, L, self.kv_heads, 1, HEAD_DIM)
                .expand(B, L, self.kv_heads, group, HEAD_DIM).reshape(B, L, self.dim))

    def gates(self, x: torch.Tensor):
        """A [B, L, heads], X = G * V, C and V [B, L, dim] (all in the projection dtype)."""
        A = torch.sigmoid(self.proj_a(x))
        G = torch.sigmoid(self._kv_repeat(self.proj_b(x)))
        C = self._kv_repeat(self.proj_c(x))
        if self.c_activation == "sigmoid":
            C = torch.sigmoid(C)
        V = self.proj_v(x)
        return A, G * V, C, V

    def recurrence(self, A: torch.Tensor, X: torch.Tensor, method: Optional[str] = None):
        """Y [B, L, dim] (fp32 state dtype) = SWR_k over time of gates A [B, L, heads]
        and inputs X [B, L, dim], cast to recurrence_dtype first."""
        method = method or self.method
        B, L, _ = X.shape
        rd = self.recurrence_dtype
        A, X = A.to(rd), X.to(rd)
        if method == "default":
            # Per-channel gates in [B, L, dim] layout: no transposes around the scan.
            gates = A.repeat_interleave(HEAD_DIM, dim=-1)
            Y, _ = scan(gates, X, window=Window("jagged", BLOCK, self.k))
            return Y
        # The references work in BTP layout, padded to whole blocks (gate 1, input 0).
        pad = (-L) % BLOCK
        coeff = torch.nn.functional.pad(A.transpose(1, 2), (0, pad), value=1.0)
        xb = X.view(B, L, self.heads, HEAD_DIM).permute(0, 2, 3, 1)
        xb = torch.nn.functional.pad(xb, (0, pad))
        ref = btp_pytorch if method == "pytorch" else btp_pytorch_linspace
        y = ref(coeff, xb, self.k)[..., :L]
        return y.permute(0, 3, 1, 2).reshape(B, L, self.dim)

    def _check_input(self, fn: str, name: str, x, rank: int) -> None:
        """x: a floating tensor [batch, length, dim] (rank 3) or [batch, dim] (rank 2) of
        the dtype and device of the layer's parameters; the errors name `fn` and `name`."""
        shape = f"[batch, length, {self.dim}]" if rank == 3 else f"[batch, {self.dim}]"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor {shape}, got "
                            f"{type(x).__name__}")
        if x.dim() != rank or x.shape[-1] != self.dim:
            raise ValueError(f"{fn}: {name} must be {shape}, got {tuple(x.shape)}")
        weight = self.proj_o.weight
        if not x.is_floating_point():
            raise TypeError(f"{fn}: {name} must be a floating tensor (the layer's parameters "
                            f"are {weight.dtype}), got {x.dtype}")
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"{fn}: {name} has dtype {x.dtype} but the layer's parameters are "
                            f"{weight.dtype}; cast one to the other (or run under autocast)")
        if x.device != weight.device:
            raise ValueError(f"{fn}: {name} is on {x.device} but the layer's parameters are "
                             f"on {weight.device}")

    def forward(self, x: torch.Tensor, method: Optional[str] = None) -> torch.Tensor:
        self._check_input("Phalanx", "x", x, 3)
        if method is not None and method not in METHODS:
            raise ValueError(f"Phalanx: method must be one of {METHODS}, got {method!r}")
        A, X, C, V = self.gates(x)
        Y = self.recurrence(A, X, method)
        Z = Y * C.to(Y.dtype) + V.to(Y.dtype)
        return self.proj_o(Z.to(self.proj_o.weight.dtype))
