"""Which picture of the person each frame is warped from (pure numpy).

With several shots of the portrait's person, a warp is most faithful from the shot whose pose
and expression are nearest the target frame's landmarks: an open-mouthed shot gives real teeth
to open-mouthed frames, a turned one a real cheek to turned frames. Shapes are compared after
removing translation, scale and in-plane rotation (a Procrustes fit), so shots of any size,
framing and tilt compare: the warp itself handles those; what it cannot make is a mouth that
opens or a head that turns away, and that is what the distance sees.

A frame-by-frame argmin would flip between two nearly equally near shots and make the face
pop, so `shot_weights` keeps the current shot until another is clearly nearer (hysteresis) and
cross-fades over a few frames at each switch.
"""

from __future__ import annotations

import numpy as np


def normalize_shape(points: np.ndarray) -> np.ndarray:
    """Landmarks (..., 68, 2) with translation and scale removed (rotation kept: it is pose)."""
    p = np.asarray(points, np.float64)
    c = p - p.mean(axis=-2, keepdims=True)
    scale = np.sqrt((c**2).sum(axis=(-2, -1), keepdims=True) / p.shape[-2])
    return c / np.maximum(scale, 1e-9)


def shape_distances(shot_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """(N, K) mean squared distances between N target and K shot shapes after each pair's best
    similarity alignment (translation, scale, rotation removed).

    With shapes as complex vectors a, b of unit mean square, the best rotation leaves
    |a - e^{i theta} b|^2 / n = 2 - 2 |<a, b>| / n (Procrustes in the plane).
    """
    def as_complex(points: np.ndarray) -> np.ndarray:
        p = normalize_shape(points)
        return p[..., 0] + 1j * p[..., 1]

    s, t = as_complex(shot_points), as_complex(target_points)  # (K, 68), (N, 68)
    return np.maximum(2.0 - 2.0 * np.abs(t @ s.conj().T) / s.shape[-1], 0.0)


def nearest_shots(shot_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """Index (N,) of the shot whose normalized landmarks are closest to each target's."""
    return shape_distances(shot_points, target_points).argmin(axis=1)


def shot_weights(shot_points: np.ndarray, target_points: np.ndarray, *, switch_margin: float = 0.2,
                 fade_frames: int = 5) -> np.ndarray:
    """Blend weights (N, K), rows summing to 1, of K shots for N consecutive target frames.

    Starts from the nearest shot; moves to another only when its distance is below
    (1 - switch_margin) times the current one's; each switch is a linear cross-fade centred on
    the switch over `fade_frames` frames (1: hard cuts).
    """
    d = shape_distances(shot_points, target_points)
    n, k = d.shape
    if n == 0:
        return np.zeros((0, k))
    choice = np.empty(n, np.int64)
    current = int(d[0].argmin())
    for i in range(n):
        best = int(d[i].argmin())
        if best != current and d[i, best] < (1.0 - switch_margin) * d[i, current]:
            current = best
        choice[i] = current
    onehot = np.eye(k)[choice]
    if fade_frames <= 1 or k == 1:
        return onehot
    # A box filter over the one-hot choices (edges repeated) turns each cut into a linear ramp.
    pad = fade_frames // 2
    padded = np.concatenate([onehot[:1].repeat(pad, 0), onehot, onehot[-1:].repeat(fade_frames - 1 - pad, 0)])
    kernel = np.ones(fade_frames) / fade_frames
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(k)], axis=1)
