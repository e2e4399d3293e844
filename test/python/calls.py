"""IR for tests, as the torch ops build it: mixer op calls from facts.

The ops compute the facts of their tensors in C++; tests that compile IR directly
state them here: sizes and strides of a tensor, and its alignment (16: a fresh
torch allocation with 16-byte-multiple strides).
"""

from __future__ import annotations

import torch

import mixir
from mixir.ops._torch import dtype_name


def operand(role: str, x, alignment: int = 16) -> mixir.Operand:
    """The facts of tensor (or float scalar, as f32) `x` for the operand `role`."""
    if isinstance(x, torch.Tensor):
        return mixir.Operand(role, dtype_name(x.dtype), x.shape, x.stride(), alignment)
    return mixir.Operand(role, "f32")


def window_attribute(window) -> str:
    if window is None or window.kind == "global":
        return "#mixer.window<global>"
    return f"#mixer.window<jagged, block = {window.block}, k = {window.k}>"


def scan_ir(a, b, h, final=None, init=None, window=None, reverse=False, log_space=False,
            config=None, target="cpu", op="scan", **extra) -> str:
    """A mixer.scan call on these tensors (meta tensors will do: only their facts count).
    config: a #mixer.lowering_config override."""
    roles = [("gates", a), ("inputs", b), ("initial_state", init), ("output", h),
             ("final_state", final)]
    attrs = [f"window = {window_attribute(window)}"] + (["reverse"] if reverse else []) + \
        (["log_space"] if log_space else []) + \
        ([f"mixer.lowering_config = {config}"] if config else [])
    return mixir.build_call(op, [operand(r, x) for r, x in roles if x is not None],
                            "{" + ", ".join(attrs) + "}", target, **extra)
