"""Random scan inputs shared by the tests: gates with |a| = sigmoid(N(0, 1)) in (0, 1)
(complex ones with a random phase), inputs and initial states N(0, 1), all drawn in
float64 from a seeded generator and then cast."""

import math

import torch


def random_scan_inputs(B, T, D, dtype, log_space, seed, device="cpu"):
    """(a, b, h0) of `dtype` on `device`; `a` holds log gates when `log_space`."""
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=g)
    mag = torch.sigmoid(torch.randn(B, T, D, **f64))
    if dtype.is_complex:
        phase = torch.rand(B, T, D, **f64) * 2 * math.pi
        a = torch.complex(mag.log(), phase) if log_space else torch.polar(mag, phase)
        b = torch.complex(torch.randn(B, T, D, **f64), torch.randn(B, T, D, **f64))
        h0 = torch.complex(torch.randn(B, D, **f64), torch.randn(B, D, **f64))
    else:
        a = mag.log() if log_space else mag
        b = torch.randn(B, T, D, **f64)
        h0 = torch.randn(B, D, **f64)
    return tuple(x.to(dtype).to(device) for x in (a, b, h0))
