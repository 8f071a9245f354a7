"""2-D similarity transforms as 3x3 homogeneous matrices (pure numpy).

`fit_similarity` is Umeyama's least-squares fit (rotation, uniform scale, translation, never a
reflection). Degenerate input (fewer than two distinct points, or NaN) cannot define a rotation
and scale: it raises `ValueError` rather than returning NaN.
"""

from __future__ import annotations

import numpy as np

from talkanim.landmarks.measures import STABLE_POINTS  # noqa: F401  (the head's frame; re-exported)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The similarity (3, 3) that maps `src` (K, 2) onto `dst` (K, 2) in the least-squares sense.

    Raises ValueError when the points are not finite, shapes differ, or `src` has no spread
    (all points equal: no rotation or scale is defined).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two (K>=2, 2) point sets of the same shape, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("points must be finite")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = float((s_c**2).sum()) / len(src)
    scale_ref = max(float(np.abs(src).max()), float(np.abs(dst).max()), 1.0)
    if var_s <= (1e-9 * scale_ref) ** 2:
        raise ValueError("source points are (nearly) all equal: similarity undefined")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0  # no reflection
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    out = np.eye(3)
    out[:2, :2] = scale * rot
    out[:2, 2] = mu_d - scale * rot @ mu_s
    return out


def fit_similarities(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """`fit_similarity` of one `src` (K, 2) onto many `dst` (N, K, 2), vectorized: (N, 3, 3).

    Raises ValueError when `src` has no spread."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = src.mean(axis=0)
    mu_d = dst.mean(axis=1)  # (N, 2)
    s_c = src - mu_s
    d_c = dst - mu_d[:, None]
    var_s = (s_c**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are all equal: similarity undefined")
    # For 2-D similarity without reflection the closed form is: a = sum(s.d)/|s|^2 on (x,y)
    # and b = sum(s x d)/|s|^2, matrix [[a,-b],[b,a]] (Umeyama's result for det>0).
    a = (s_c[None, :, 0] * d_c[..., 0] + s_c[None, :, 1] * d_c[..., 1]).sum(axis=1) / (var_s * len(src))
    b = (s_c[None, :, 0] * d_c[..., 1] - s_c[None, :, 1] * d_c[..., 0]).sum(axis=1) / (var_s * len(src))
    out = np.zeros((len(dst), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = a, -b, b, a
    out[:, :2, 2] = mu_d - np.einsum("nij,j->ni", out[:, :2, :2], mu_s)
    out[:, 2, 2] = 1.0
    return out


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) (or (2, 3)) affine matrix to points (..., 2); keeps float32 input float32."""
    points = np.asarray(points)
    m = np.asarray(matrix, np.float64)
    out = points.astype(np.float64) @ m[:2, :2].T + m[:2, 2]
    return out.astype(points.dtype if points.dtype in (np.float32, np.float64) else np.float64)


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (3, 3) affine matrix."""
    m = np.asarray(matrix, np.float64)
    a_inv = np.linalg.inv(m[:2, :2])
    out = np.eye(3)
    out[:2, :2] = a_inv
    out[:2, 2] = -a_inv @ m[:2, 2]
    return out


def similarity_scale(matrix: np.ndarray) -> float:
    """The uniform scale of a similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:2, :2]))))
