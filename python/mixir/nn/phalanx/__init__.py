"""Phalanx: the sliding window recurrence layer (spec 2.6) and its streaming state."""

from . import inference
from .swr import METHODS, Phalanx, btp_pytorch, btp_pytorch_linspace

__all__ = ["Phalanx", "btp_pytorch", "btp_pytorch_linspace", "METHODS", "inference"]
