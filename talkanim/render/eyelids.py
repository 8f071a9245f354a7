"""Eyes that close under their lids: skin where the eye was, not the eye squashed to a line.

The warp closes an eye by bringing its upper lid down to the lower one: the lid's skin
stretches down over the eye (as a real lid does) and the eye between the lids collapses onto
the line where they meet. That line is where the map jumps from upper-lid skin to lower-lid
skin, and interpolating the map across the jump shows the squashed eye -- white and iris --
smeared over a few pixels: a closed eye that still looks open (a face mesh read it so).

So each portrait also gets a closed-eye layer: the picture with each eye, and the liners
painted around it, covered by the skin around them, and one lash line drawn where the lids
meet. As an eye's lids come together, what the warp samples around that eye is taken more and
more from this layer: a shut eye shows lid skin and one lash line, an open one the portrait's
own eye. (With the eye alone filled and the liners left in, a face mesh read the shut eyes of
nine portraits at 0.63 of open on average, as a squint; with the cover, 0.43.)
"""

from __future__ import annotations

import cv2
import numpy as np

# Per eye: its six landmarks (a polygon) and the facing lid pairs.
EYES = ((np.arange(36, 42), ((37, 41), (38, 40))), (np.arange(42, 48), ((43, 47), (44, 46))))
CLOSING_FROM = 0.7  # the eye starts turning to skin when its lid gap falls below this share...
SHUT = 0.1  # ...and is all skin below this share of the portrait's gap
# What a shut lid covers, as fractions of the eye's width: the upper liner above the upper lid's
# landmarks, the lower lid's rim and lashes under its landmarks, past each corner, and all round
# (the feather); and the width of a shut eye's lash line.
UPPER_LINER = 0.1
LOWER_RIM = 0.12
CORNER_REACH = 0.05
GROW = 0.04
FILL_RADIUS = 0.12  # inpainting radius, as a fraction of the eye's width
LASH_WIDTH = 0.08


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
    """The portrait (H, W, 3) uint8 with each eye shut: the eye and the liners around it covered
    by lid skin and one lash line drawn along the lower lid, where the lids meet; plus a fourth
    channel: where that differs from the portrait (255 inside, feathered): (H, W, 4) uint8."""
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
        region = out[y0:y1, x0:x1]
        mask, lid = _shut_eye(region, eye - (x0, y0), width)
        alpha = mask.astype(np.float32)[..., None] / 255.0
        region[:] = np.round(alpha * lid + (1.0 - alpha) * region).astype(np.uint8)
        mask_all[y0:y1, x0:x1] = np.maximum(mask_all[y0:y1, x0:x1], mask)
    return np.dstack([out, mask_all])


def _shut_eye(region: np.ndarray, eye: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The shut eye painted over `region` (its landmarks `eye` (6, 2) in the region's pixels):
    where the lid covers it (a feathered uint8 mask) and what shows there (float32, like
    `region`): the region inpainted under the cover, with a lash line in the eye's darkest paint.

    The cover reaches past the landmarks: painted liners above and below an eye, left in, are
    two dark lines with the rim between them once the lids meet (an eye a face mesh reads half
    open), and on a painting the landmarks can sit inside the white of the eye, whose white an
    inpainting from the cover's edge would carry into the lid."""
    axis = (eye[3] - eye[0]) / width
    down = np.array([-axis[1], axis[0]])
    cover = eye.copy()
    cover[[0, 3]] += np.array([-1.0, 1.0])[:, None] * CORNER_REACH * width * axis
    cover[1:3] -= UPPER_LINER * width * down
    cover[4:6] += LOWER_RIM * width * down
    hard = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(hard, [np.round(cover * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    grow = max(1, int(round(GROW * width)))
    grown = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask = cv2.GaussianBlur(grown, (0, 0), max(0.5, grow / 2.0))
    lid = cv2.inpaint(np.ascontiguousarray(region), (grown > 0).astype(np.uint8), max(1.0, FILL_RADIUS * width),
                      cv2.INPAINT_TELEA).astype(np.float32)
    inside = region[hard > 0].astype(np.float32)
    lashes = np.percentile(inside, 5, axis=0) if len(inside) else np.zeros(3)
    # the lash line lies just under the lower lid's landmarks: the lids meet on them, and what
    # lies above them in the portrait (the eye) closes to nothing
    thickness = max(1, int(round(LASH_WIDTH * width)))
    lash_line = eye[[0, 5, 4, 3]] + (0.5 * thickness + 1.0) * down
    cv2.polylines(lid, [np.round(lash_line * 16).astype(np.int32)], False, tuple(float(c) for c in lashes),
                  thickness=thickness, lineType=cv2.LINE_AA, shift=4)
    return mask, lid
