"""Eyes that close under their lids: skin where the eye was, not the eye squashed to a line.

The warp closes an eye by bringing its upper lid down to the lower one: the lid's skin
stretches down over the eye (as a real lid does) and the eye between the lids collapses onto
the line where they meet. That line is where the map jumps from upper-lid skin to lower-lid
skin, and interpolating the map across the jump shows the squashed eye -- white and iris --
smeared over a few pixels: a closed eye that still looks open (a face mesh read it so).

So each portrait also gets a closed-eye layer: the picture with the inside of each eye (its
six landmarks' polygon) filled in from the skin and lashes around it. As an eye's lids come
together, what the warp samples from inside that eye is taken more and more from this layer:
a shut eye shows lid skin and lashes only, an open one the portrait's own eye.
"""

from __future__ import annotations

import cv2
import numpy as np

# Per eye: its six landmarks (a polygon) and the facing lid pairs.
EYES = ((np.arange(36, 42), ((37, 41), (38, 40))), (np.arange(42, 48), ((43, 47), (44, 46))))
CLOSING_FROM = 0.7  # the eye starts turning to skin when its lid gap falls below this share...
SHUT = 0.1  # ...and is all skin below this share of the portrait's gap
FILL_RADIUS = 0.12  # inpainting radius, as a fraction of the eye's width


def lid_gap(points: np.ndarray, eye: int) -> np.ndarray:
    """Mean distance between the facing lid points of `eye` (0 or 1): (...,) for (..., 68, 2)."""
    p = np.asarray(points, np.float64)
    return np.mean([np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1) for a, b in EYES[eye][1]], axis=0)


def closure(source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """How shut each target eye is (B, 2) in [0, 1]: 0 while its lid gap is at least
    CLOSING_FROM of the portrait's, 1 from SHUT down, smooth in between."""
    shares = np.stack([lid_gap(target_points, eye) / max(float(lid_gap(source_points, eye)), 1e-6)
                       for eye in range(2)], axis=-1)
    x = np.clip((CLOSING_FROM - shares) / (CLOSING_FROM - SHUT), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def closed_eye_layer(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The portrait (H, W, 3) uint8 with each eye filled in from what surrounds it, plus a
    fourth channel: where the eyes are (255 inside, feathered over a pixel): (H, W, 4) uint8."""
    out = np.ascontiguousarray(image).copy()
    mask_all = np.zeros(image.shape[:2], np.uint8)
    p = np.asarray(points, np.float64)
    for polygon, _ in EYES:
        eye = p[polygon]
        width = max(float(np.linalg.norm(eye[3] - eye[0])), 2.0)
        pad = int(np.ceil(width))
        x0, y0 = np.maximum(np.floor(eye.min(axis=0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(eye.max(axis=0)).astype(int) + pad + 1, image.shape[1::-1])
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((eye - (x0, y0)) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        region = np.ascontiguousarray(out[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = cv2.inpaint(region, (mask > 0).astype(np.uint8),
                                        max(1.0, FILL_RADIUS * width), cv2.INPAINT_TELEA)
        mask_all[y0:y1, x0:x1] = np.maximum(mask_all[y0:y1, x0:x1], mask)
    return np.dstack([out, mask_all])
