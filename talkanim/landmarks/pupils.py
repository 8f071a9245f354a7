"""Iris centre of each eye, located in the eye polygon of the 68 landmarks.

Cheap on purpose (it runs on every tracked frame): only the two small eye crops are converted
to grayscale, and the iris is the weighted centroid of the darkest pixels inside the polygon.
"""

from __future__ import annotations

import cv2
import numpy as np

_EYES = ((36, 42), (42, 48))
# Eyes narrower than this many pixels, or with an eyelid gap below this fraction of their width,
# are too small or closed to hold a visible iris: use the polygon centre instead.
_MIN_EYE_WIDTH = 6.0
_MIN_OPEN_RATIO = 0.12
# Fraction of the (masked) eye pixels treated as "dark": the iris and pupil cover roughly a
# third of an open eye's polygon, so the darkest quarter is mostly iris.
_DARK_PERCENTILE = 25.0


def _eye_centre(image: np.ndarray, poly: np.ndarray) -> np.ndarray:
    centre = poly.mean(axis=0)
    width = float(np.linalg.norm(poly[3] - poly[0]))
    gap = 0.5 * (np.linalg.norm(poly[1] - poly[5]) + np.linalg.norm(poly[2] - poly[4]))
    if width < _MIN_EYE_WIDTH or gap < _MIN_OPEN_RATIO * width:
        return centre
    h, w = image.shape[:2]
    pad = max(2, int(round(0.15 * width)))
    x0 = max(int(np.floor(poly[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(poly[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(poly[:, 0].max())) + pad + 1, w)
    y1 = min(int(np.ceil(poly[:, 1].max())) + pad + 1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return centre
    crop = image[y0:y1, x0:x1]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    mask = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(poly - (x0, y0)).astype(np.int32)], 1)
    # Slight dilation: dlib's eyelid points sit on the lid edge and often clip the iris.
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    inside = gray[mask > 0].astype(np.float32)
    if inside.size < 6:
        return centre
    thresh = np.percentile(inside, _DARK_PERCENTILE)
    weight = (thresh - gray.astype(np.float32) + 1.0) * ((gray <= thresh) & (mask > 0))
    total = float(weight.sum())
    if total <= 0:
        return centre
    ys, xs = np.mgrid[0:gray.shape[0], 0:gray.shape[1]]
    cx = float((weight * xs).sum() / total) + x0
    cy = float((weight * ys).sum() / total) + y0
    return np.array([cx, cy])


def locate_pupils(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Iris centres (2, 2) float32, ordered like the eyes: [eye 36-41, eye 42-47], pixels (x, y).

    Darkest-region weighted centroid inside each (slightly dilated) eye polygon; the polygon
    centre when the eye is closed or too small to see an iris.
    """
    pts = np.asarray(points, dtype=np.float64)
    return np.stack([_eye_centre(image, pts[a:b]) for a, b in _EYES]).astype(np.float32)
