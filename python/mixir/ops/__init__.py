"""Functional mixer ops on torch tensors, each compiled from `mixer` IR."""

from .scan import Window, jagged, scan
from .btp import btp
from . import linear_attention, mlstm

__all__ = ["scan", "jagged", "Window", "btp", "linear_attention", "mlstm"]
