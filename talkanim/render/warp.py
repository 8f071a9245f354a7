"""Piecewise-affine warp of a face crop by landmark correspondence (torch grid_sample).

The triangulation is fixed: Delaunay on the SOURCE crop's vertices, which are the 68 landmarks,
a few virtual forehead points extrapolated from them, a fixed ring around the face and fixed
anchors on the crop border. Only the target positions of the moving vertices change per frame.
For each target frame we rasterize which target triangle covers each pixel (cv2, at the working
resolution S) and apply that triangle's target->source affine per pixel, giving a backward
sampling map. The map is continuous (affine per triangle, shared edges), so it can be
upsampled bilinearly to a larger paste resolution without seams.

Folded (flipped) target triangles: drawn first, so well-oriented triangles win overlaps; pixels
no triangle covers (a fold's hole) map to themselves (identity), which at worst shows the
source's own pixels there.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial import Delaunay

# Virtual forehead points: the brows (17-26) lifted perpendicular to the eye line by this
# fraction of the outer eye corners' distance, so the forehead moves with the head. (It was
# 0.45 of the chin -> nose-bridge distance, the same length on average over our clips, but then
# opening the mouth lifted the forehead: evaluate, T = 1, SSIM 0.697 -> 0.705 with the eye line.)
FOREHEAD_LIFT = 0.61
FOREHEAD = slice(68, 78)  # where extend_points puts them among the moving vertices
NUM_RING = 16
NUM_EDGE = 4  # anchors per crop side (corners included once)
RING_FRACTION = 0.7  # ring radius / crop half side; measured 0.6: SSIM .734, 0.7: .736, 0.8: .722
# The forehead points stay this far (fraction of the crop side) inside the fixed ring, or where
# the source has them if that is farther out: a face that grows or rises past the ring would
# otherwise fold the triangles between them, a skin-coloured patch with a hard edge cut into
# the hair (measured: 0.00 -> 0.03 -> 0.08 gave SSIM 0.704 / 0.706 / 0.705 at T = 1).
FENCE_GAP = 0.03


def extend_points(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) landmarks -> (..., 78, 2): landmarks + 10 virtual forehead points."""
    points = np.asarray(points, np.float32)
    eyes = points[..., 45, :] - points[..., 36, :]  # outer eye corners, left to right in the picture
    up = np.stack([eyes[..., 1], -eyes[..., 0]], axis=-1)  # the eye line turned 90 degrees, pointing up
    forehead = points[..., 17:27, :] + FOREHEAD_LIFT * up[..., None, :]
    return np.concatenate([points, forehead], axis=-2)


def moving_vertices(points: np.ndarray, pupils: np.ndarray) -> np.ndarray:
    """The warp's moving vertices (B, 80, 2): 68 landmarks, the virtual forehead points and the
    two pupils (B, 2, 2), so the eyes' gaze moves with its own triangles."""
    return np.concatenate([extend_points(points), np.asarray(pupils, np.float32)], axis=1).astype(np.float32)


def face_anchors(size: int) -> tuple[np.ndarray, float]:
    """The fixed anchors of a face crop of side `size` (its border and the ring at RING_FRACTION
    about its centre) and the fence radius for `PiecewiseAffineWarp`."""
    centre = np.full(2, (size - 1) / 2.0, np.float32)
    radius = RING_FRACTION * size / 2.0
    return fixed_anchors(size, centre, radius), radius - FENCE_GAP * size


def fixed_anchors(size: int, ring_centre: np.ndarray, ring_radius: float) -> np.ndarray:
    """Border anchors of the crop plus a ring around the face (all fixed), crop pixel coords."""
    hi = size - 1.0
    ticks = np.linspace(0.0, hi, NUM_EDGE + 1)[:-1]
    border = np.concatenate([
        np.stack([ticks, np.zeros_like(ticks)], 1),
        np.stack([np.full_like(ticks, hi), ticks], 1),
        np.stack([hi - ticks, np.full_like(ticks, hi)], 1),
        np.stack([np.zeros_like(ticks), hi - ticks], 1),
    ])
    angles = np.linspace(0, 2 * np.pi, NUM_RING, endpoint=False)
    ring = ring_centre + ring_radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    margin = 0.04 * size
    inside = ((ring > margin) & (ring < hi - margin)).all(axis=1)
    return np.concatenate([border, ring[inside]]).astype(np.float32)


class PiecewiseAffineWarp:
    """Backward sampling maps for one source (fixed triangulation) and many targets.

    `source_moving` are the source's moving vertices (landmarks + virtual points) in crop
    pixel coordinates at working resolution `size`; anchors are fixed. `fence`: radius about
    the crop centre that the target's virtual forehead points may not pass (each may still
    reach as far out as it is in the source), see FENCE_GAP; None lets them go anywhere.
    """

    def __init__(self, source_moving: np.ndarray, anchors: np.ndarray, size: int, *,
                 fence: float | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, raster: int | None = None):
        self.size = int(size)
        self.device = torch.device(device)
        self.dtype = dtype
        self.anchors = np.asarray(anchors, np.float32)
        self.num_moving = len(source_moving)
        self.source_vertices = np.concatenate([np.asarray(source_moving, np.float32), self.anchors])
        self._centre = np.full(2, (self.size - 1) / 2.0)
        self._forehead_reach = None
        if fence is not None:
            source_reach = np.linalg.norm(self.source_vertices[FOREHEAD] - self._centre, axis=-1)
            self._forehead_reach = np.maximum(source_reach, fence)  # (10,)
        tri = Delaunay(self.source_vertices.astype(np.float64))
        self.triangles = np.ascontiguousarray(tri.simplices, dtype=np.int64)  # (T, 3)
        self.num_triangles = len(self.triangles)
        src_tri = self.source_vertices[self.triangles].astype(np.float64)  # (T, 3, 2)
        self._src_tri_h = src_tri  # for the affine solve
        s = self.size
        self.raster = int(raster) if raster else max(2, s // 2)
        # S-space coordinates of the raster's pixel centres (align_corners=True spacing)
        lin = np.linspace(0.0, s - 1.0, self.raster, dtype=np.float32)
        self._pix_r = (lin[None, :], lin[:, None])

    def vertices(self, target_moving: np.ndarray) -> np.ndarray:
        """Full target vertex array (B, V, 2) from the moving target vertices (B, M, 2)."""
        target_moving = np.asarray(target_moving, np.float32)
        b = target_moving.shape[0]
        if self._forehead_reach is not None:
            target_moving = target_moving.copy()
            offset = target_moving[:, FOREHEAD].astype(np.float64) - self._centre
            reach = np.linalg.norm(offset, axis=-1)
            shrink = np.minimum(1.0, self._forehead_reach / np.maximum(reach, 1e-9))
            target_moving[:, FOREHEAD] = self._centre + offset * shrink[..., None]
        return np.concatenate([target_moving, np.broadcast_to(self.anchors, (b, *self.anchors.shape))], axis=1)

    def affines(self, target_vertices: np.ndarray) -> np.ndarray:
        """Per-triangle target->source affine (B, T+1, 2, 3); index T is the identity (holes)."""
        tgt = target_vertices[:, self.triangles].astype(np.float64)  # (B, T, 3, 2)
        b = tgt.shape[0]
        ones = np.ones((*tgt.shape[:-1], 1))
        a = np.concatenate([tgt, ones], -1)  # (B, T, 3, 3): rows [x y 1]
        det = np.linalg.det(a)
        ok = np.abs(det) > 1e-6
        a_safe = np.where(ok[..., None, None], a, np.eye(3))
        # solve a @ X = src for X (3, 2): source = [x y 1] @ X
        x = np.linalg.solve(a_safe, np.broadcast_to(self._src_tri_h, tgt.shape))
        mats = np.swapaxes(x, -1, -2)  # (B, T, 2, 3)
        if not ok.all():
            # degenerate target triangle: map it to its source centroid (it covers ~no pixels)
            cen = self._src_tri_h.mean(axis=1)  # (T, 2)
            const = np.zeros((b, self.num_triangles, 2, 3))
            const[..., 2] = cen
            mats = np.where(ok[..., None, None], mats, const)
        ident = np.broadcast_to(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (b, 1, 2, 3))
        return np.concatenate([mats, ident], axis=1)

    def index_maps(self, target_vertices: np.ndarray, size: int | None = None) -> np.ndarray:
        """Which target triangle covers each pixel: (B, size, size) int32; T where none does."""
        b = target_vertices.shape[0]
        s = size or self.size
        out = np.full((b, s, s), self.num_triangles, np.int32)
        shift = 4
        tri_pts = np.ascontiguousarray(np.round(target_vertices[:, self.triangles] * (1 << shift)), dtype=np.int32)
        d = tri_pts[..., 1, :] - tri_pts[..., 0, :]
        e = tri_pts[..., 2, :] - tri_pts[..., 0, :]
        area = d[..., 0].astype(np.int64) * e[..., 1] - d[..., 1].astype(np.int64) * e[..., 0]
        src_area_sign = np.sign(self._signed_source_area())
        for i in range(b):
            flipped = np.sign(area[i]) != src_area_sign
            order = np.concatenate([np.nonzero(flipped)[0], np.nonzero(~flipped)[0]])
            canvas = out[i]
            pts_i = tri_pts[i]
            for t in order:
                cv2.fillConvexPoly(canvas, pts_i[t], int(t), lineType=cv2.LINE_8, shift=shift)
        return out

    def _signed_source_area(self) -> np.ndarray:
        if not hasattr(self, "_src_area"):
            t = self._src_tri_h
            d, e = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
            self._src_area = d[:, 0] * e[:, 1] - d[:, 1] * e[:, 0]
        return self._src_area

    @torch.inference_mode()
    def sample_map(self, target_moving: np.ndarray) -> torch.Tensor:
        """Source crop coordinates (x, y) to sample for each target pixel: (B, S, S, 2).

        The map is rasterized at `raster` pixels per side (S // 2 by default: the per-triangle
        cost dominates) and upsampled bilinearly to S; the piecewise-affine map is continuous,
        so this only rounds off its kinks along triangle edges.
        """
        verts = self.vertices(target_moving)
        b = verts.shape[0]
        r, s = self.raster, self.size
        mats = self.affines(verts).astype(np.float32).reshape(b, -1, 6)  # (B, T+1, 6)
        to_r = (r - 1) / (s - 1)
        idx = self.index_maps(verts * to_r, r)  # (B, R, R)
        coeff = mats[np.arange(b)[:, None, None], idx]  # (B, R, R, 6)
        x, y = self._pix_r
        sx = coeff[..., 0] * x + coeff[..., 1] * y + coeff[..., 2]
        sy = coeff[..., 3] * x + coeff[..., 4] * y + coeff[..., 5]
        out = torch.from_numpy(np.stack([sx, sy], 1)).to(self.device, self.dtype)  # (B, 2, R, R)
        if r != s:
            out = torch.nn.functional.interpolate(out, size=(s, s), mode="bilinear", align_corners=True)
        return out.permute(0, 2, 3, 1)


def to_normalized(coords: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel coords (pixel centres at integers) -> grid_sample coords with align_corners=True."""
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=coords.dtype, device=coords.device)
    return coords * scale - 1.0
