"""The head moves as one body; the neck blends into a still torso.

Each frame the motion stage gives the head's similarity H (portrait -> output picture). Every
point p of the portrait moves by a share of it:

    G(p) = p + w(p) (H p - p)

with w = 1 on the head (face, hair, ears, hat: everything above the chin and not far to the
side), falling smoothly to 0 down the neck (the torso stays still), far to the sides (a chair
beside the face does not swing with a nod) and towards the picture's edges where the person
touches them (a head cut by the frame cannot show what lies beyond it). The renderer needs the
inverse -- which portrait point lands on output pixel x -- found by the fixed-point iteration
p <- x - w(p) (H p - p), a contraction where w varies slowly.

G is a bijection (no fold, no tear) while |grad w| |H p - p| < 1 everywhere, so each frame's
bands are lengthened until that product stays under MAX_SLOPE: a fast head movement bends a
longer stretch of neck instead of folding it. Pure torch, batched, device- and dtype-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Neck: the weight starts falling NECK_START eye-to-chin distances below the chin and reaches 0
# NECK_BAND of them further down, where a neck meets the shoulders.
NECK_START = 0.2
NECK_BAND = 0.7
# Sides, in jaw widths from the face's vertical axis: full weight within SIDE_START (a wide
# hair-do), none past SIDE_START + SIDE_BAND.
SIDE_START = 1.5
SIDE_BAND = 1.0
# Edges of the picture the person touches: the weight rises from 0 over this fraction of the
# picture's shorter side.
EDGE_BAND = 0.12
MAX_SLOPE = 0.6  # largest |grad w| x displacement allowed (1 would fold); smoothstep's slope peaks at 1.5
ITERATIONS = 4  # fixed-point steps of the inverse (each shrinks the error by MAX_SLOPE or better)


@dataclass(frozen=True)
class BodyFrame:
    """Where the head is in the portrait: the frame the weight field is measured in."""

    chin: np.ndarray  # (2,) picture px
    down: np.ndarray  # (2,) unit vector, eye line centre -> chin
    height: float  # eye line centre -> chin, px
    width: float  # jaw width (points 0 -> 16), px

    @staticmethod
    def from_points(points: np.ndarray) -> "BodyFrame":
        """The frame of a face from its iBUG-68 landmarks (picture px)."""
        p = np.asarray(points, np.float64)
        eyes = (p[36:42].mean(axis=0) + p[42:48].mean(axis=0)) / 2.0
        axis = p[8] - eyes
        height = max(float(np.linalg.norm(axis)), 1.0)
        return BodyFrame(chin=p[8].copy(), down=axis / height, height=height,
                         width=max(float(np.linalg.norm(p[16] - p[0])), 1.0))


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class BodyWarp:
    """Backward maps of the body motion for one portrait and many head poses.

    `size` (width, height) is the picture's; `pinned_edges` names the picture edges ("left",
    "top", "right", "bottom") the person touches, where the motion fades out.
    """

    def __init__(self, frame: BodyFrame, size: tuple[int, int], pinned_edges: tuple[str, ...] = (),
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.frame = frame
        self.size = (int(size[0]), int(size[1]))
        self.pinned_edges = tuple(pinned_edges)
        self.device = torch.device(device)
        self.dtype = dtype
        as_tensor = lambda v: torch.tensor(np.asarray(v, np.float64), device=self.device, dtype=dtype)  # noqa: E731
        self._chin = as_tensor(frame.chin)
        self._down = as_tensor(frame.down)
        self._right = as_tensor([-frame.down[1], frame.down[0]])

    def support_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) picture px bounding where w can be above 0 (at the shortest bands)."""
        f = self.frame
        right = np.array([-f.down[1], f.down[0]])
        side = (SIDE_START + SIDE_BAND) * f.width
        bottom = f.chin + (NECK_START + NECK_BAND) * f.height * f.down
        far_up = f.chin - 4.0 * max(self.size) * f.down  # everything above the chin, clipped below
        corners = np.stack([bottom + side * right, bottom - side * right, far_up + side * right, far_up - side * right])
        w, h = self.size
        x0, y0 = np.clip(corners.min(axis=0), 0, [w, h])
        x1, y1 = np.clip(corners.max(axis=0), 0, [w, h])
        return float(x0), float(y0), float(x1), float(y1)

    def bands(self, heads: np.ndarray) -> np.ndarray:
        """Per frame (B, 3): the neck, side and edge bands in px, each at least its default and
        long enough for that frame's displacement not to fold the map."""
        f = self.frame
        heads = np.asarray(heads, np.float64).reshape(-1, 3, 3)
        x0, y0, x1, y1 = self.support_box()
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
        # the displacement H p - p is affine in p: over a box it peaks at a corner
        moved = np.einsum("nij,kj->nki", heads[:, :2, :2], corners) + heads[:, None, :2, 2]
        needed = 1.5 * np.linalg.norm(moved - corners, axis=-1).max(axis=1) / MAX_SLOPE
        defaults = np.array([NECK_BAND * f.height, SIDE_BAND * f.width, EDGE_BAND * min(self.size)])
        return np.maximum(defaults[None], needed[:, None])

    def weight(self, points: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """w at picture points (B, ..., 2) with per-frame bands (B, 3): (B, ...)."""
        f = self.frame
        shape = (-1,) + (1,) * (points.dim() - 2)
        neck_band, side_band, edge_band = (bands[:, i].view(shape) for i in range(3))
        rel = points - self._chin
        along = rel @ self._down - NECK_START * f.height
        across = (rel @ self._right).abs() - SIDE_START * f.width
        w = (1.0 - _smoothstep(along / neck_band)) * (1.0 - _smoothstep(across / side_band))
        width, height = self.size
        x, y = points[..., 0], points[..., 1]
        for edge in self.pinned_edges:
            distance = {"left": x, "top": y, "right": width - 1 - x, "bottom": height - 1 - y}[edge]
            w = w * _smoothstep(distance / edge_band)
        return w

    def _pose(self, heads: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        heads = np.asarray(heads, np.float64).reshape(-1, 3, 3)
        return heads, torch.tensor(self.bands(heads), device=self.device, dtype=self.dtype)

    def _apply(self, heads: np.ndarray, points: torch.Tensor, minus_identity: bool = False) -> torch.Tensor:
        """H p (or H p - p) for points (B, ..., 2), written out per coefficient: batched 2x2
        matrix products of torch are slow on the CPU."""
        shape = (-1,) + (1,) * (points.dim() - 2)
        coef = lambda v: torch.tensor(v, device=self.device, dtype=self.dtype).view(shape)  # noqa: E731
        a, b, c = heads[:, 0, 0] - minus_identity, heads[:, 0, 1], heads[:, 0, 2]
        d, e, f = heads[:, 1, 0], heads[:, 1, 1] - minus_identity, heads[:, 1, 2]
        x, y = points[..., 0], points[..., 1]
        return torch.stack([coef(a) * x + coef(b) * y + coef(c), coef(d) * x + coef(e) * y + coef(f)], -1)

    def inverse(self, pixels: torch.Tensor, heads: np.ndarray) -> torch.Tensor:
        """Portrait points p with G(p) = pixels. `pixels` (B, h, w, 2) or (h, w, 2) picture px,
        `heads` (B, 3, 3) portrait -> output similarities. Returns (B, h, w, 2)."""
        heads, bands = self._pose(heads)
        if pixels.dim() == 3:
            pixels = pixels.expand(len(heads), *pixels.shape)
        # start from the rigid inverse, blended in by its weight: exact on the head
        rigid = self._apply(np.linalg.inv(heads), pixels)
        p = pixels + self.weight(rigid, bands).unsqueeze(-1) * (rigid - pixels)
        for _ in range(ITERATIONS):
            p = pixels - self.weight(p, bands).unsqueeze(-1) * self._apply(heads, p, minus_identity=True)
        return p

    def forward(self, points: torch.Tensor, heads: np.ndarray) -> torch.Tensor:
        """G(p) for portrait points (B, ..., 2): where each lands in the output."""
        heads, bands = self._pose(heads)
        return points + self.weight(points, bands).unsqueeze(-1) * self._apply(heads, points, minus_identity=True)
