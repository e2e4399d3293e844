"""Functional mixer ops on torch tensors, each compiled from `mixer` IR."""

from .scan import Window, jagged, scan

__all__ = ["scan", "jagged", "Window"]
