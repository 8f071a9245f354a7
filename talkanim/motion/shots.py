"""Which picture of the person each frame is warped from (pure numpy).

With several shots of the portrait's person, a warp is most faithful from the shot whose pose
and expression are nearest the target frame's landmarks: an open-mouthed shot gives real teeth
to open-mouthed frames, a turned one a real cheek to turned frames. Shapes are compared after
removing translation, scale and in-plane rotation (a Procrustes fit), so shots of any size,
framing and tilt compare: the warp itself handles those; what it cannot make is a mouth that
opens or a head that turns away, and that is what the distance sees. The points are weighted
(`SHAPE_WEIGHTS`): the mouth and eyes, whose inside only a shot can show, twice; the jaw
outline, which a small turn of the head moves a lot and the warp follows well, half. Unweighted,
the jaw of a one-picture shot outweighed its open mouth: on the example clip, frames with the
shot's own mouth came only 14 % nearer the shot than the closed-mouthed portrait; weighted, 37 %.

Blending the few nearest shots beats warping from the single nearest one: each warp is wrong in
its own places and the average of three is wrong less (evaluate, 4 held-out clips, T = 8: mouth
SSIM 0.718 -> 0.738, whole crop 0.729 -> 0.732). More than three gain at most 0.001 SSIM for
more work per frame and a slightly softer face, so three it is. `blend_weights` gives each of
the `count` nearest shots a weight that falls to zero as it stops being among them, so weights
change continuously as the target moves and nothing pops. With `count = 1`, a frame-by-frame
argmin would flip between two nearly equally near shots, so `shot_weights` then keeps the
current shot until another is clearly nearer (hysteresis); either way it cross-fades over a
few frames.
"""

from __future__ import annotations

import numpy as np


def _point_weights() -> np.ndarray:
    weights = np.ones(68)
    weights[0:17] = 0.5  # jaw outline
    weights[36:48] = 2.0  # eyes
    weights[48:68] = 2.0  # lips
    return weights / weights.sum()


SHAPE_WEIGHTS = _point_weights()  # (68,), summing to 1, iBUG-68 order


def normalize_shape(points: np.ndarray) -> np.ndarray:
    """Landmarks (..., 68, 2) with translation and scale removed (rotation kept: it is pose):
    weighted mean at the origin, weighted mean square distance from it 1 (`SHAPE_WEIGHTS`)."""
    p = np.asarray(points, np.float64)
    w = SHAPE_WEIGHTS[:, None]
    c = p - (p * w).sum(axis=-2, keepdims=True)
    scale = np.sqrt((c**2 * w).sum(axis=(-2, -1), keepdims=True))
    return c / np.maximum(scale, 1e-9)


def shape_distances(shot_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """(N, K) weighted mean squared distances between N target and K shot shapes after each
    pair's best similarity alignment (translation, scale, rotation removed).

    With shapes as complex vectors a, b of unit weighted mean square, the best rotation leaves
    sum w |a - e^{i theta} b|^2 = 2 - 2 |sum w a conj(b)| (weighted Procrustes in the plane).
    """
    def as_complex(points: np.ndarray) -> np.ndarray:
        p = normalize_shape(points)
        return p[..., 0] + 1j * p[..., 1]

    s, t = as_complex(shot_points), as_complex(target_points)  # (K, 68), (N, 68)
    return np.maximum(2.0 - 2.0 * np.abs((t * SHAPE_WEIGHTS) @ s.conj().T), 0.0)


def nearest_shots(shot_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """Index (N,) of the shot whose normalized landmarks are closest to each target's."""
    return shape_distances(shot_points, target_points).argmin(axis=1)


def blend_weights(shot_points: np.ndarray, target_points: np.ndarray, count: int = 3) -> np.ndarray:
    """Weights (N, K), rows summing to 1, of the `count` nearest of K shots for each of N targets.

    Shot j gets 1/d_j - 1/d_next, where d_next is the distance of the nearest shot left out: a
    shot's weight reaches zero exactly when it drops out of the `count` nearest, so the weights
    are continuous in the target. At most K - 1 shots blend (the farthest never does: two
    shots give the nearest alone). A shot the target matches exactly takes all the weight.
    """
    d = shape_distances(shot_points, target_points)
    n, k = d.shape
    if n == 0 or k == 1:
        return np.ones((n, k))
    count = max(1, min(int(count), k - 1))
    inverse = 1.0 / np.maximum(d, 1e-9)
    floor = -np.sort(-inverse, axis=1)[:, count]
    w = np.maximum(inverse - floor[:, None], 0.0)
    total = w.sum(axis=1, keepdims=True)
    # all of the nearest tie with the first left out: fall back to the nearest alone
    nearest = np.eye(k)[d.argmin(axis=1)]
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), nearest)


def shot_weights(shot_points: np.ndarray, target_points: np.ndarray, *, blend: int = 3,
                 switch_margin: float = 0.2, fade_frames: int = 5) -> np.ndarray:
    """Blend weights (N, K), rows summing to 1, of K shots for N consecutive target frames.

    With more than two shots and blend > 1: `blend_weights` of the `blend` nearest. Otherwise
    one shot at a time, starting from the nearest and moving to another only when its distance
    is below (1 - switch_margin) times the current one's. Either way the weights are then
    averaged over `fade_frames` frames, so each change becomes a linear cross-fade (1: none).
    """
    if blend > 1 and len(shot_points) > 2:
        weights = blend_weights(shot_points, target_points, blend)
    else:
        d = shape_distances(shot_points, target_points)
        choice = np.empty(len(d), np.int64)
        current = int(d[0].argmin()) if len(d) else 0
        for i in range(len(d)):
            best = int(d[i].argmin())
            if best != current and d[i, best] < (1.0 - switch_margin) * d[i, current]:
                current = best
            choice[i] = current
        weights = np.eye(d.shape[1])[choice]
    n, k = weights.shape
    if n == 0 or fade_frames <= 1 or k == 1:
        return weights
    # A box filter over time (edges repeated) turns each cut into a linear ramp.
    pad = fade_frames // 2
    padded = np.concatenate([weights[:1].repeat(pad, 0), weights, weights[-1:].repeat(fade_frames - 1 - pad, 0)])
    kernel = np.ones(fade_frames) / fade_frames
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(k)], axis=1)
