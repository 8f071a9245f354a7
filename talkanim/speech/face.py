"""The canonical face frame in which speech becomes motion (pure numpy).

A neutral template face (iBUG-68, mouth closed, eyes open) sits upright in a CANVAS x CANVAS
picture with its eye centres INTEROCULAR px apart, their midpoint at EYES_AT. Every motion the
speech stage makes is a landmark track of this template: the mouth and jaw moved by the speech,
the eyelids, brows and pupils by blinks and gaze, the whole face by a similarity (head pose).
`motion.retarget` then carries that track onto any portrait, as it does a driver's.

Mouth shapes are stored as offsets of the mouth-and-jaw points (`MOUTH_POINTS`) from a person's
rest shape, in canvas pixels after pose normalization, and compressed by PCA (`MouthBasis`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkanim.landmarks.measures import eye_centres
from talkanim.motion.geometry import STABLE_POINTS, apply_transform, fit_similarity
from talkanim.motion.retarget import MOUTH_AND_JAW

CANVAS = 256
INTEROCULAR = 64.0
EYES_AT = (128.0, 108.0)
MOUTH_POINTS = MOUTH_AND_JAW  # jaw 2-14 and lips 48-67: what speech moves
# Eyelid pairs (upper, lower) that close in a blink, and the brow points.
EYELIDS = ((37, 41), (38, 40), (43, 47), (44, 46))
BROWS = np.arange(17, 27)


def place_in_canvas(shape: np.ndarray) -> np.ndarray:
    """`shape` (68, 2) moved, rotated and scaled so its eyes sit level at EYES_AT, INTEROCULAR apart."""
    shape = np.asarray(shape, np.float64)
    left, right = eye_centres(shape)
    d = right - left
    scale = INTEROCULAR / max(float(np.hypot(*d)), 1e-9)
    angle = -np.arctan2(d[1], d[0])
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[c, -s], [s, c]])
    centred = (shape - (left + right) / 2.0) @ rot.T
    return (centred + np.asarray(EYES_AT)).astype(np.float32)


def to_canonical(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Each frame of `points` (N, 68, 2) mapped by the similarity that best lays its stable points
    (eye corners, nose, temples) onto the template's: head pose removed, expression kept."""
    points = np.asarray(points, np.float64)
    target = np.asarray(template, np.float64)[STABLE_POINTS]
    out = np.empty_like(points)
    for i, frame in enumerate(points):
        out[i] = apply_transform(fit_similarity(frame[STABLE_POINTS], target), frame)
    return out.astype(np.float32)


def mean_shape(shapes: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Generalized Procrustes mean of many faces (N, 68, 2) on the stable points, in the canvas."""
    shapes = np.asarray(shapes, np.float64)
    mean = place_in_canvas(shapes[0])
    for _ in range(iterations):
        mean = place_in_canvas(to_canonical(shapes, mean).mean(axis=0))
    return mean


@dataclass
class MouthBasis:
    """PCA of mouth-and-jaw offsets: `mean` (P*2,), `components` (K, P*2), orthonormal rows."""

    template: np.ndarray  # (68, 2) float32, canvas pixels
    mean: np.ndarray
    components: np.ndarray

    @property
    def size(self) -> int:
        return int(self.components.shape[0])

    def deltas(self, coefs: np.ndarray) -> np.ndarray:
        """Mouth-point offsets (N, P, 2) of coefficient rows (N, K)."""
        flat = np.asarray(coefs, np.float32) @ self.components + self.mean
        return flat.reshape(len(flat), -1, 2)

    def project(self, deltas: np.ndarray) -> np.ndarray:
        """Coefficients (N, K) of mouth-point offsets (N, P, 2)."""
        flat = np.asarray(deltas, np.float32).reshape(len(deltas), -1)
        return (flat - self.mean) @ self.components.T

    def rest_coefs(self) -> np.ndarray:
        """Coefficients of the rest shape (zero offsets): where a silent mouth sits."""
        return self.project(np.zeros((1, len(MOUTH_POINTS), 2), np.float32))[0]

    def faces(self, coefs: np.ndarray) -> np.ndarray:
        """The template (N, 68, 2) with its mouth moved by each coefficient row."""
        out = np.repeat(self.template[None].astype(np.float32), len(coefs), axis=0)
        out[:, MOUTH_POINTS] += self.deltas(coefs)
        return out


def fit_basis(template: np.ndarray, deltas: np.ndarray, size: int) -> MouthBasis:
    """The `size` principal directions of mouth offsets (N, P, 2)."""
    flat = np.asarray(deltas, np.float64).reshape(len(deltas), -1)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    return MouthBasis(np.asarray(template, np.float32), mean.astype(np.float32), vt[:size].astype(np.float32))


def rest_shape(canonical: np.ndarray, opening: np.ndarray, quantile: float = 0.1) -> np.ndarray:
    """A person's mouth at rest: the median shape (68, 2) of their most closed frames."""
    cut = np.quantile(opening, quantile)
    return np.median(np.asarray(canonical)[opening <= cut], axis=0).astype(np.float32)
