"""Layers built on mixir's compiled ops."""

from . import phalanx
from .phalanx import Phalanx

__all__ = ["Phalanx", "phalanx"]
