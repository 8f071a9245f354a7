"""Index tables of the 478-point face mesh layout, and the iBUG-68 points read off it.

The layout is MediaPipe's `refine_landmarks=True` order: 468 face-mesh vertices, then the five
iris points (centre, then four on the iris edge) of the eye around vertices 33/133, then those
of the eye around 362/263. Vertex 33 is the outer corner of the eye on the image's left for a
face looking at the camera (the person's right eye), 263 the outer corner of the other one.

The 68 points are our own map: each iBUG point is a position along a short polyline of mesh
vertices, at a fraction of its arc length (a single vertex is a polyline of one). The eyelid
points sit on the iris model's refined lid contours, so the lid gap closes in a blink.
"""

from __future__ import annotations

import numpy as np

NUM_MESH = 468
NUM_POINTS = 478  # 468 mesh + 5 iris points per eye
IRIS = ((468, 473), (473, 478))  # [start, end) of each eye's iris points, eyes as EYE_CORNERS

# Eyes in the order of the iBUG-68 layout and Face.pupils: index 0 is the eye on the image's
# left (iBUG 36-41, mesh corners 33 outer / 133 inner), index 1 the other (42-47, 362 / 263).
# EYE_CORNERS are the start -> end of each eye crop's x axis; the iris model was trained on one
# eye side only, so the other eye's crop is mirrored (as MediaPipe's Iris pipeline does).
EYE_CORNERS = ((33, 133), (362, 263))
EYE_FLIP = (False, True)
# The iris model's five points are centre, then the edge at +x, -y, -x, +y of its crop; in the
# mirrored crop +x is the image's -x, so that eye's edge points 1 and 3 trade places to keep
# MediaPipe's order (469/474 towards +x of the image, 470/475 up, 471/476 -x, 472/477 down).
IRIS_ORDER = ((0, 1, 2, 3, 4), (0, 3, 2, 1, 4))
# The iris model gives 71 eye-region points per eye: first the eyelid outline (lower lid corner
# to corner, then the upper lid between the corners), then four rings ("halos") out to the brow.
# MediaPipe's Iris pipeline writes all 71 into the mesh; we write only the 16 lid points, which
# are where the iris model is better. Against MediaPipe's attention mesh on 4 clips (median px)
# the iris model's lids were 2.1-2.6 (the face mesh's 2.2-3.6), but its outer rings 3.5-15 (the
# face mesh's 2.0-4.0): its crop often ends below the brow, so its "brow" ring is not on it.
# These are the mesh vertices of the 16 lid points, in the model's output order.
EYELID = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
)
# The face crop's rotation follows the line between the outer eye corners. (MediaPipe's
# published graph names 33 -> 133, but the 0.10.21 wheel turns along 33 -> 263: with that our
# mesh matches its face mesh to 0.02 px on consecutive video frames, against 1.2 px with 133.)
FACE_ROI_CORNERS = (33, 263)

# Mesh polylines the 68 points are read from (image-left to image-right for a frontal face).
# The fractions along them were fitted once to dlib's 68 points on the 49 near-frontal faces of
# ../shared/data (median projection of each dlib point onto its polyline, then made mirror
# symmetric): the jaw turned out evenly spaced along the lower face oval, 127 to 356.
_LOWER_OVAL = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
               377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356)
_BROW_LEFT = (156, 70, 63, 105, 66, 107, 55, 193)  # upper brow contour, outer -> inner end
_BROW_RIGHT = (417, 285, 336, 296, 334, 293, 300, 383)  # inner -> outer end
_NOSE_RIDGE = (168, 6, 197, 195, 5, 4, 1)
_NOSE_BASE = (240, 97, 2, 326, 460)
_EYE_LEFT_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
_EYE_LEFT_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
_EYE_RIGHT_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
_EYE_RIGHT_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
_LIP_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
_LIP_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
_LIP_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_LIP_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)


def _along(line, fractions):
    return [(line, float(f)) for f in fractions]


def _ibug_spec() -> list[tuple[tuple[int, ...], float]]:
    """(polyline, arc-length fraction) of each of the 68 points, in iBUG order."""
    spec = []
    spec += _along(_LOWER_OVAL, np.linspace(0.0, 1.0, 17))  # jaw 0-16
    spec += _along(_BROW_LEFT, (0.07, 0.25, 0.43, 0.62, 0.81))  # 17-21
    spec += _along(_BROW_RIGHT, (0.19, 0.38, 0.57, 0.75, 0.93))  # 22-26
    spec += _along(_NOSE_RIDGE, (0.04, 0.32, 0.60, 0.88))  # 27-30
    spec += _along(_NOSE_BASE, (0.06, 0.28, 0.5, 0.72, 0.94))  # 31-35
    # eyes: corner, upper lid at 1/3 and 2/3, corner, lower lid at 2/3 and 1/3 (clockwise);
    # on the iris model's refined lids, so the gap closes in a blink
    spec += [(_EYE_LEFT_UPPER, 0.0), (_EYE_LEFT_UPPER, 1 / 3), (_EYE_LEFT_UPPER, 2 / 3),
             (_EYE_LEFT_UPPER, 1.0), (_EYE_LEFT_LOWER, 2 / 3), (_EYE_LEFT_LOWER, 1 / 3)]  # 36-41
    spec += [(_EYE_RIGHT_UPPER, 0.0), (_EYE_RIGHT_UPPER, 1 / 3), (_EYE_RIGHT_UPPER, 2 / 3),
             (_EYE_RIGHT_UPPER, 1.0), (_EYE_RIGHT_LOWER, 2 / 3), (_EYE_RIGHT_LOWER, 1 / 3)]  # 42-47
    # lips: outer 48-59 (corner, upper lip to the other corner, lower lip back), inner 60-67
    spec += _along(_LIP_OUTER_UPPER, (0.0, 0.19, 0.37, 0.5, 0.63, 0.81, 1.0))  # 48-54
    spec += _along(_LIP_OUTER_LOWER, (0.8, 0.62, 0.5, 0.38, 0.2))  # 55-59
    spec += _along(_LIP_INNER_UPPER, (0.0, 0.34, 0.5, 0.66, 1.0))  # 60-64
    spec += _along(_LIP_INNER_LOWER, (0.66, 0.5, 0.34))  # 65-67
    assert len(spec) == 68
    return spec


def _ibug_table() -> tuple[np.ndarray, np.ndarray]:
    """The spec as arrays: vertex indices (68, K) padded by repeating a polyline's last vertex
    (zero-length segments change nothing), and fractions (68,)."""
    spec = _ibug_spec()
    k = max(len(line) for line, _ in spec)
    index = np.array([list(line) + [line[-1]] * (k - len(line)) for line, _ in spec], dtype=np.int64)
    return index, np.array([f for _, f in spec], dtype=np.float64)


IBUG_INDEX, IBUG_FRACTION = _ibug_table()


def ibug68_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """The iBUG-68 points (..., 68, 2) float32 of meshes (..., 478 or 468, >= 2), pixels."""
    poly = np.asarray(mesh, dtype=np.float64)[..., :2][..., IBUG_INDEX, :]  # (..., 68, K, 2)
    seg = np.linalg.norm(np.diff(poly, axis=-2), axis=-1)  # (..., 68, K-1)
    cum = np.cumsum(seg, axis=-1)
    target = IBUG_FRACTION * cum[..., -1]  # (..., 68)
    # the segment holding the target: how many segment ends lie before it
    j = np.minimum((cum < target[..., None]).sum(axis=-1), seg.shape[-1] - 1)
    start = np.take_along_axis(cum, j[..., None], axis=-1)[..., 0] - np.take_along_axis(seg, j[..., None], axis=-1)[..., 0]
    length = np.take_along_axis(seg, j[..., None], axis=-1)[..., 0]
    t = np.clip((target - start) / np.maximum(length, 1e-9), 0.0, 1.0)[..., None]
    a = np.take_along_axis(poly, j[..., None, None], axis=-2)[..., 0, :]
    b = np.take_along_axis(poly, (j + 1)[..., None, None], axis=-2)[..., 0, :]
    return (a + (b - a) * t).astype(np.float32)
