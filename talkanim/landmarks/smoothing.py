"""One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), vectorized over arrays of any shape.

A low-pass filter whose cutoff rises with speed: still landmarks are smoothed hard (jitter
down), moving ones barely (lag low). Each element gets its own adaptive cutoff.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Per-frame One-Euro filter: `y = f(x, t)` with `x` an array of a fixed shape, `t` in seconds.

    min_cutoff (Hz): cutoff at rest; lower means less jitter. beta: how fast the cutoff grows
    with speed (in units/s); higher means less lag on fast motion. d_cutoff (Hz): cutoff of the
    speed estimate. Call `reset()` after a discontinuity (e.g. the face was lost and found again)
    so the filter does not glide from the old position.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One-Euro filter needs min_cutoff > 0, d_cutoff > 0, beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter one sample `x` taken at time `t` (seconds, increasing); returns a new array."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if dt <= 0:  # repeated or out-of-order timestamp: nothing sensible to do but hold
            return self._x.copy()
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = _alpha(cutoff, dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = float(t)
        return self._x.copy()
