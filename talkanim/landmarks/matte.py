"""The person's matte in a portrait: head, hair and shoulders in, background out.

MediaPipe's selfie segmentation network (256 x 256 in, person probability out; run in torch
through `tfgraph`) sees a square crop around the head and shoulders, a few face sizes wide, so
the head gets most of its resolution; where that crop does not cover the picture, a second
pass over the whole picture fills the rest, blended across the crop's edge. The probability is
resized back smoothly (bilinear), the face's landmark hull is forced in (the network can doubt
a painted face) and small holes inside the person are filled.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from ..devices import resolve_device
from .mesh_layout import NUM_MESH
from .tfgraph import load_shipped, torch_threads
from .types import Face

INPUT = 256
# The head-and-shoulders crop: side = CROP_SIDE x the face's size (long side of its landmarks
# box), centred CROP_DROP x that size below the face's centre (more body than sky).
CROP_SIDE = 4.0
CROP_DROP = 0.6
# Holes (background pixels enclosed by the person) smaller than this many face areas are filled.
HOLE_FACES = 0.3
# Width of the band inside the head crop's edge where its pass hands over to the whole
# picture's, as a fraction of the crop side.
BLEND = 0.08


def _face_box(face: Face) -> tuple[float, float, float]:
    """Centre x, centre y and long side of the face's landmarks box (mesh when there is one)."""
    pts = face.mesh[:NUM_MESH, :2] if face.mesh is not None else face.points
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return float(x0 + x1) / 2, float(y0 + y1) / 2, float(max(x1 - x0, y1 - y0, 1.0))


def _square_crop_matrix(cx: float, cy: float, side: float) -> np.ndarray:
    """2x3 affine taking INPUT x INPUT network pixels to image pixels (axis-aligned square)."""
    k = side / INPUT
    return np.array([[k, 0.0, cx - side / 2 + 0.5 * k - 0.5], [0.0, k, cy - side / 2 + 0.5 * k - 0.5]])


def _hull_mask(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """1 inside the convex hull of the face's landmarks (mesh when there is one), else 0."""
    pts = face.mesh[:NUM_MESH, :2] if face.mesh is not None else face.points
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def fill_holes(matte: np.ndarray, max_area: float) -> np.ndarray:
    """`matte` with the background islands that the person encloses (not touching the picture's
    border) and smaller than `max_area` pixels set to 1."""
    background = (matte < 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    h, w = matte.shape
    out = matte.copy()
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches and area <= max_area:
            out[labels == k] = 1.0
    return out


class PersonMatter:
    """The selfie segmentation network, loaded once; `matte(image, face)` per picture.

    On the CPU it runs on `threads` torch threads (default 1, see `tfgraph.torch_threads`).
    """

    def __init__(self, *, device: str = "cpu", threads: int | None = 1) -> None:
        self.device = resolve_device(device)
        self.threads = threads if self.device.type == "cpu" else None
        self._net = load_shipped("selfie_segmentation").to(self.device)

    def _run(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Person probability (INPUT, INPUT) of the square of `image` that `matrix` maps to."""
        k = math.hypot(matrix[0, 0], matrix[1, 0])
        if k > 1.5:  # shrinking a lot: blur first so the network sees an anti-aliased picture
            sigma = 0.45 * k
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        crop = cv2.warpAffine(image, matrix, (INPUT, INPUT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        # scaled in numpy: NHWC seen as NCHW is channels_last, no copy (as in the mesh backend)
        x = torch.from_numpy(crop.astype(np.float32) * np.float32(1 / 255))[None].permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode(), torch_threads(self.threads):
            (prob,) = self._net(x)
        return prob[0, :, :, 0].float().cpu().numpy()

    @staticmethod
    def _to_image(prob: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A network-sized probability map resampled (bilinear) onto the picture's pixels."""
        return cv2.warpAffine(prob, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def probability(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The network's person probability (H, W) float32 in [0, 1], before the face hull and
        hole filling: the head-and-shoulders crop's pass, the whole picture's outside it."""
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        cx, cy, size = _face_box(face)
        side = CROP_SIDE * size
        whole_side = float(max(h, w))
        whole = _square_crop_matrix((w - 1) / 2, (h - 1) / 2, whole_side)
        if side >= whole_side:  # a small picture: the whole of it is the crop
            return self._to_image(self._run(image, whole), whole, (h, w)).clip(0, 1)
        hy = cy + CROP_DROP * size
        head = _square_crop_matrix(cx, hy, side)
        prob_head = self._to_image(self._run(image, head), head, (h, w))
        prob_whole = self._to_image(self._run(image, whole), whole, (h, w))
        # weight of the head pass: 1 inside its square, falling to 0 across a band at its edge
        ys, xs = np.ogrid[0:h, 0:w]
        inside = np.minimum(side / 2 - np.abs(xs - cx), side / 2 - np.abs(ys - hy))
        weight = np.clip(inside / (BLEND * side), 0.0, 1.0).astype(np.float32)
        return (weight * prob_head + (1 - weight) * prob_whole).clip(0, 1).astype(np.float32)

    def matte(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The person matte (H, W) float32 in [0, 1], hair included: `probability`, with the
        face's landmark hull forced to 1 and small holes inside the person filled."""
        prob = self.probability(image, face)
        prob = np.maximum(prob, _hull_mask(face, prob.shape).astype(np.float32))
        size = _face_box(face)[2]
        return fill_holes(prob, HOLE_FACES * size * size).astype(np.float32)


def person_matte(image: np.ndarray, face: Face, *, matter: PersonMatter | None = None) -> np.ndarray:
    """The person matte of `face`'s person in an RGB uint8 picture: (H, W) float32 in [0, 1].

    Pass a `PersonMatter` to reuse its loaded network across pictures.
    """
    return (matter or PersonMatter()).matte(image, face)
