"""Functional mixer ops on torch tensors, each compiled from `mixer` IR."""

from .scan import Window, jagged, scan
from .btp import btp

__all__ = ["scan", "jagged", "Window", "btp"]
