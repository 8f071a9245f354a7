"""Curves of landmark polylines in a local frame (lips, eyelids), batched in torch.

A frame is an origin and a unit x axis (with y across it, pointing down in the picture); a
polyline's knots are given by their x and y there, and `interpolate` reads y at any x.
"""

from __future__ import annotations

import numpy as np
import torch


def frame(points: torch.Tensor, start: int, end: int):
    """The frame from landmark `start` towards landmark `end`: origin, unit x, unit y (B, 2)
    each, and the distance between the two (B,)."""
    o = points[:, start]
    ex = points[:, end] - o
    length = ex.norm(dim=-1, keepdim=True).clamp_min(1e-3)
    ex = ex / length
    ey = torch.stack([-ex[:, 1], ex[:, 0]], -1)
    return o, ex, ey, length[:, 0]


def knots(points: torch.Tensor, idx: np.ndarray, o, ex, ey):
    """A polyline in the frame: knots (B, K) along x (made non-decreasing) and y (B, K)."""
    p = points[:, idx] - o[:, None]
    kx = (p * ex[:, None]).sum(-1)
    ky = (p * ey[:, None]).sum(-1)
    return torch.cummax(kx, dim=1).values, ky


def interpolate(x: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear y(x) per frame: x (B, N), knots (B, K) -> (B, N); clamped at the ends."""
    n = kx.shape[1]
    i = torch.searchsorted(kx.contiguous(), x.contiguous()).clamp(1, n - 1)
    x0, x1 = kx.gather(1, i - 1), kx.gather(1, i)
    y0, y1 = ky.gather(1, i - 1), ky.gather(1, i)
    t = ((x - x0) / (x1 - x0).clamp_min(1e-4)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)
