"""The portrait split into a person layer and a background plate.

The person layer is the portrait itself with a matte (1 on the person, hair included). The
background plate is the portrait with the person removed and the hole filled, made once per
portrait: when the head moves, what it uncovers is taken from the plate, so the background
stays still instead of being dragged or stretched along with the head.

The hole is filled at a reduced resolution (only thin slivers next to the head are ever
uncovered, so a smooth continuation of the surrounding background is what a viewer expects
there), then put back at full resolution inside the hole only: outside it the plate IS the
portrait, pixel for pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

# Matte values above this belong to the person for the hole (hair fringes included)...
HOLE_THRESHOLD = 0.02
# ...grown by this fraction of the face size, so no fringe colour is left to smear in.
HOLE_GROWTH = 0.04
FILL_SIDE = 320  # longest side, px, at which the hole is filled
# The matte's soft edge is remapped so values below EDGE_LOW are background, above EDGE_HIGH person.
EDGE_LOW, EDGE_HIGH = 0.3, 0.7
# A person touching a picture edge over more than this fraction of it is cut by the frame there.
EDGE_CONTACT = 0.04


def landmark_matte(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """A rough matte from the face's landmarks alone (H, W) float32: the face and a head-sized
    ellipse above it, and the neck below. For callers without a segmentation; `animate` uses a
    real person matte."""
    p = np.asarray(points, np.float64)
    h, w = shape[:2]
    centre = p.mean(axis=0)
    width = np.linalg.norm(p[16] - p[0])
    eyes = (p[36:42].mean(axis=0) + p[42:48].mean(axis=0)) / 2.0
    down = (p[8] - eyes) / max(np.linalg.norm(p[8] - eyes), 1e-6)
    angle = float(np.degrees(np.arctan2(down[0], down[1])))
    matte = np.zeros((h, w), np.float32)
    head_centre = centre - 0.35 * width * down
    axes = (int(round(0.75 * width)), int(round(0.95 * width)))
    cv2.ellipse(matte, (int(round(head_centre[0])), int(round(head_centre[1]))), axes, -angle, 0, 360, 1.0, -1)
    neck_top = p[8] - 0.2 * width * down
    neck = np.array([neck_top - 0.3 * width * np.array([down[1], -down[0]]),
                     neck_top + 0.3 * width * np.array([down[1], -down[0]])])
    neck = np.concatenate([neck, neck[::-1] + 1.2 * width * down])
    cv2.fillConvexPoly(matte, np.round(neck).astype(np.int32), 1.0)
    cv2.fillConvexPoly(matte, cv2.convexHull(np.round(p).astype(np.int32)), 1.0)
    return cv2.GaussianBlur(matte, (0, 0), max(0.02 * width, 0.5))


def clean_matte(matte: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`matte` kept only on the person whose face `points` (68, 2) mark: blobs not connected to
    the face (a segmentation's false positives in the background) are removed, soft edges kept."""
    matte = np.clip(np.asarray(matte, np.float32), 0.0, 1.0)
    p = np.asarray(points, np.float64)
    solid = (matte > 0.5).astype(np.uint8)
    cv2.fillConvexPoly(solid, cv2.convexHull(np.round(p).astype(np.int32)), 1)
    count, labels = cv2.connectedComponents(solid, connectivity=8)
    if count <= 2:
        keep = solid
    else:
        face = np.zeros_like(solid)
        cv2.fillConvexPoly(face, cv2.convexHull(np.round(p).astype(np.int32)), 1)
        ids = np.unique(labels[(face > 0) & (solid > 0)])
        keep = np.isin(labels, ids[ids > 0]).astype(np.uint8)
    size = np.linalg.norm(p.max(axis=0) - p.min(axis=0))
    grow = max(1, int(round(0.05 * size)))
    near = cv2.dilate(keep, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), grow / 2.0)
    out = matte * np.clip(near * 1.5, 0.0, 1.0)
    out[keep > 0] = np.maximum(out[keep > 0], matte[keep > 0])
    # a segmentation's soft edge spans several pixels; over a moving head it would let the plate
    # show through the person's outline, so the edge is steepened to a couple of pixels
    x = np.clip((out - EDGE_LOW) / (EDGE_HIGH - EDGE_LOW), 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)


def pinned_edges(matte: np.ndarray) -> dict[str, tuple[int, int]]:
    """The picture edges the person touches (over EDGE_CONTACT of their length), each with the
    stretch it touches: (first, last) px along it, y on the sides, x on the top and bottom."""
    m = np.asarray(matte) > 0.5
    edges = {"left": m[:, 0], "top": m[0, :], "right": m[:, -1], "bottom": m[-1, :]}
    return {name: (int(np.argmax(line)), len(line) - 1 - int(np.argmax(line[::-1])))
            for name, line in edges.items() if line.mean() > EDGE_CONTACT}


def background_plate(image: np.ndarray, matte: np.ndarray, face_size: float) -> np.ndarray:
    """The portrait (H, W, 3) uint8 with the person (`matte` (H, W) in [0, 1]) removed and the
    hole filled from the surrounding background."""
    h, w = image.shape[:2]
    hole = (np.asarray(matte) > HOLE_THRESHOLD).astype(np.uint8)
    grow = max(1, int(round(HOLE_GROWTH * face_size)))
    hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    if not hole.any():
        return image.copy()
    if hole.all():  # nothing around the person to continue
        return np.full_like(image, int(np.median(image)))
    scale = min(1.0, FILL_SIDE / max(h, w))
    small_size = (max(2, int(round(w * scale))), max(2, int(round(h * scale))))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    small_hole = (cv2.resize(hole, small_size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))  # the reduction blurs the edge
    filled = cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA)
    filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    plate = image.copy()
    plate[hole > 0] = filled[hole > 0]
    return plate
