"""Where the mesh and iris networks look: rotated square crops, as MediaPipe builds them.

A crop (`Roi`) is a square of side `size` pixels centred at (cx, cy), its x axis turned by
`angle` radians (image coordinates, y down). Output pixel (u, v) of an n x n crop samples the
image at  centre + R(angle) @ ((u / n - 0.5) * size, (v / n - 0.5) * size)  — MediaPipe's
ImageToTensor convention — and a network's output coordinates map back through the same
affine, so sampling and projection can never disagree. A mirrored crop (the iris model's
second eye) negates the first term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .mesh_layout import EYE_CORNERS, FACE_ROI_CORNERS, NUM_MESH

FACE_SCALE = 1.5  # face crop side / long side of the mesh's bounding box
EYE_SCALE = 2.3  # eye crop side / long side of the two corners' bounding box


@dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    size: float
    angle: float  # radians, rotation of the crop's x axis in the image

    def matrix(self, n: int, flip: bool = False) -> np.ndarray:
        """2x3 affine taking crop pixels (u, v) of an n x n crop to image pixels (x, y)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / n
        ku = -k if flip else k
        # x = cx + c*(ku*u - sx) - s*(k*v - size/2), with sx = +-size/2 at u = 0
        ox = (self.size / 2) if flip else (-self.size / 2)
        oy = -self.size / 2
        return np.array([
            [c * ku, -s * k, self.cx + c * ox - s * oy],
            [s * ku, c * k, self.cy + s * ox + c * oy],
        ])


def _roi(points: np.ndarray, start: int, end: int, scale: float) -> Roi:
    """MediaPipe's landmarks -> rect: the points' bounding-box centre, rotated along
    points[start] -> points[end], the long side of the box scaled (square)."""
    x0, y0 = points[:, 0].min(), points[:, 1].min()
    x1, y1 = points[:, 0].max(), points[:, 1].max()
    dx, dy = points[end, 0] - points[start, 0], points[end, 1] - points[start, 1]
    return Roi(float(x0 + x1) / 2, float(y0 + y1) / 2, float(scale * max(x1 - x0, y1 - y0)),
               math.atan2(float(dy), float(dx)))


def face_roi_from_mesh(mesh: np.ndarray) -> Roi:
    """The face crop for the next frame from this frame's mesh (468 or 478 points, pixels)."""
    pts = np.asarray(mesh, dtype=np.float64)[:NUM_MESH, :2]
    return _roi(pts, FACE_ROI_CORNERS[0], FACE_ROI_CORNERS[1], FACE_SCALE)


def face_roi_from_points(points: np.ndarray) -> Roi:
    """A first face crop from iBUG-68 points (a detector's fit): the 68 points miss the
    forehead, which the mesh covers, so the box is grown upward by a third of its height
    first; the angle follows the outer eye corners 36 -> 45 like the mesh's 33 -> 263."""
    p = np.asarray(points, dtype=np.float64)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    top = y0 - (y1 - y0) / 3
    d = p[45] - p[36]
    return Roi(float(x0 + x1) / 2, float(top + y1) / 2, float(FACE_SCALE * max(x1 - x0, y1 - top)),
               math.atan2(float(d[1]), float(d[0])))


def eye_rois(mesh: np.ndarray) -> list[Roi]:
    """The two eye crops (EYE_CORNERS order) from a mesh: centred between the corners, along
    them, 2.3 x the long side of their bounding box."""
    pts = np.asarray(mesh, dtype=np.float64)[:, :2]
    return [_roi(pts[[a, b]], 0, 1, EYE_SCALE) for a, b in EYE_CORNERS]


def project(matrix: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Crop coordinates (..., 2) -> image pixels through a crop's 2x3 matrix."""
    return uv @ matrix[:, :2].T + matrix[:, 2]


def pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """A crop matrix that samples crop pixel (u, v) at (u + 0.5, v + 0.5) of `matrix`."""
    out = np.array(matrix, dtype=np.float64)
    out[:, 2] += 0.5 * (out[:, 0] + out[:, 1])
    return out
