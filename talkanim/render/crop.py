"""Square face crops: where the face sits in a picture, and how points move in and out of it.

Pure geometry on numpy arrays. A crop is axis-aligned (no rotation) so that pasting it back into
the original picture is a plain resize and blend.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square region of a picture, in that picture's pixel coordinates.

    It may extend past the picture's borders; `crop_image` fills the outside by replicating the
    edge pixels.
    """

    x0: float
    y0: float
    side: float

    def to_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """Picture coordinates -> coordinates in a `size`x`size` crop."""
        scale = size / self.side
        return ((np.asarray(points, np.float32) - (self.x0, self.y0)) * scale).astype(np.float32)

    def from_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """Coordinates in a `size`x`size` crop -> picture coordinates."""
        scale = self.side / size
        return (np.asarray(points, np.float32) * scale + (self.x0, self.y0)).astype(np.float32)

    def affine(self, size: int) -> np.ndarray:
        """The 2x3 matrix taking picture coordinates to crop coordinates (for cv2.warpAffine)."""
        s = size / self.side
        return np.array([[s, 0.0, -self.x0 * s], [0.0, s, -self.y0 * s]], np.float32)


def face_crop_box(points: np.ndarray, scale: float) -> CropBox:
    """The square crop centred on the landmarks, `scale` times their bounding box's larger side.

    The centre is moved up a little (towards the forehead), because the 68 landmarks stop at
    the brows while the head goes on above them.
    """
    points = np.asarray(points, np.float32)
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float(max(hi - lo))
    cx, cy = (lo + hi) / 2.0
    cy -= 0.12 * extent
    side = max(scale * extent, 8.0)
    return CropBox(float(cx - side / 2), float(cy - side / 2), float(side))


def crop_image(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Resample the crop `box` of `image` (H, W, C uint8) to `size`x`size`."""
    shrink = box.side / size
    interpolation = cv2.INTER_AREA if shrink > 1.5 else cv2.INTER_LINEAR
    if interpolation == cv2.INTER_AREA:
        # warpAffine has no area filter: blur-free shrink by cropping first, then resizing.
        x0, y0, side = int(np.floor(box.x0)), int(np.floor(box.y0)), int(np.ceil(box.side)) + 1
        padded = _padded_region(image, x0, y0, side)
        sub = CropBox(box.x0 - x0, box.y0 - y0, box.side)
        big = int(round(side))
        region = cv2.warpAffine(padded, sub.affine(big), (big, big), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(image, box.affine(size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _padded_region(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The region [y0, y0+side) x [x0, x0+side) of `image`, edge-replicated where it falls outside."""
    h, w = image.shape[:2]
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - h), max(0, x0 + side - w)
    inner = image[max(0, y0):min(h, y0 + side), max(0, x0):min(w, x0 + side)]
    if top or left or bottom or right:
        inner = cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return inner
