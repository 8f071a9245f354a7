"""Side-by-side preview: source | driver | result, scaled to one height, even dimensions."""

from __future__ import annotations

import cv2
import numpy as np


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image[..., :3]), (width, height), interpolation=interp)


def make_preview(source: np.ndarray, driver_frame: np.ndarray | None, result: np.ndarray,
                 height: int = 256) -> np.ndarray:
    """Panels of `source`, `driver_frame` (skipped when None) and `result` at the same height.

    Height and total width are even (H.264 yuv420p); the width is padded with black if needed.
    """
    height = max(2, int(height) + (int(height) % 2))
    panels = [_fit_height(p, height) for p in (source, driver_frame, result) if p is not None]
    out = np.concatenate(panels, axis=1)
    if out.shape[1] % 2:
        out = np.concatenate([out, np.zeros((height, 1, 3), out.dtype)], axis=1)
    return out.astype(np.uint8)
