"""Piecewise-affine warp of a face crop by landmark correspondence (torch grid_sample).

The triangulation is fixed: Delaunay on the SOURCE crop's vertices, which are the 68 landmarks,
a few virtual forehead points extrapolated from them, a fixed ring around the face and fixed
anchors on the crop border. Only the target positions of the moving vertices change per frame.
For each target frame we rasterize which target triangle covers each pixel (cv2, at the working
resolution S) and apply that triangle's target->source affine per pixel, giving a backward
sampling map. The map is continuous (affine per triangle, shared edges), so it can be
upsampled bilinearly to a larger paste resolution without seams.

The triangulation is Delaunay on an OPENED layout of the source (its mouth and eyes pulled
open, `opened_layout`), not on the source itself: on a closed mouth the upper and lower lips
nearly touch, Delaunay joins them with triangles across the mouth, and opening the mouth then
flips those triangles -- a fold, seen as a torn vertical streak through the lips. On the
layout every triangle has a definite orientation, and `untangle` keeps each target triangle
oriented like it (pulling the vertices of a flipped one towards the layout), so the warp never
folds. Triangles of a closed source mouth or eye have no area in the source: the warp stretches
their line over what the target opens, and the mouth fill paints there.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial import Delaunay

from talkanim.motion.retarget import CHIN
from talkanim.render.eyelids import lid_gap

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
# The layout opens the mouth by this fraction of its width (inner lips apart, outer lips with
# them) and the eyes by this fraction of their width.
LAYOUT_MOUTH_OPEN = 0.15
LAYOUT_EYE_OPEN = 0.12
# A triangle outside the openings squeezed below this fraction of its source area counts as a fold.
MIN_AREA_RATIO = 0.2
# Twice the area (px^2 at S) a triangle must be turned over by to count as flipped: what float
# rounding does to a triangle of a closed mouth is far below it.
FLIP_AREA = 0.5
# Vertices of the openings that may close to a line: the inner lips, each eye with its pupil
# (the pupils follow the 78 landmarks and forehead points among the moving vertices).
OPENINGS = (np.arange(60, 68), np.r_[36:42, 78], np.r_[42:48, 79])
SHUT_GAP = 0.25  # an eye whose lid gap is below this share of the source's counts as shut
# Each step of the fold guard keeps this share of the displacement of a flipped or crushed
# triangle's moving vertices; after UNTANGLE_STEPS steps they are set to the source.
UNTANGLE_KEEP = 0.5
# ... and this share where the chin is crushed against a fixed anchor (the ring, the anchors
# beside the jaw): a dropped chin pressed against the ring, pulled halfway home at once,
# crushed the skin above it in turn, and the lips followed, closing to 0.43 of the opening asked
# (art_14 driven by d6's widest frames); a fifth at a time, the chin gives way only as far as it
# must. Elsewhere the halving stays: it leaves a triangle clear of the limit, where a gentler pull
# left thrown-up brows' triangles on it and the map folded between them.
UNTANGLE_KEEP_CHIN = 0.8
UNTANGLE_STEPS = 20


def opened_layout(vertices: np.ndarray) -> np.ndarray:
    """The source vertices (V, 2; the 68 landmarks first) with the mouth and eyes opened: the
    shape the triangulation is built on. Vertices past the landmarks are kept as they are."""
    v = np.asarray(vertices, np.float64).copy()
    if len(v) < 68:
        return v
    up = v[27] - v[8]  # chin -> nose bridge: "up" in the face
    up /= max(np.linalg.norm(up), 1e-9)
    mouth = LAYOUT_MOUTH_OPEN * np.linalg.norm(v[54] - v[48]) / 2.0
    v[[49, 50, 51, 52, 53, 61, 62, 63]] += mouth * up
    v[[55, 56, 57, 58, 59, 65, 66, 67]] -= mouth * up
    for corners, upper, lower in (((36, 39), (37, 38), (40, 41)), ((42, 45), (43, 44), (46, 47))):
        eye = LAYOUT_EYE_OPEN * np.linalg.norm(v[corners[1]] - v[corners[0]]) / 2.0
        v[list(upper)] += eye * up
        v[list(lower)] -= eye * up
    return v


# Facing lid and lip points: (upper, lower) pairs that may touch but never cross.
FACING = ((61, 67), (62, 66), (63, 65), (37, 41), (38, 40), (43, 47), (44, 46))


def uncrossed(vertices: np.ndarray) -> np.ndarray:
    """Vertices (V, 2; the 68 landmarks first) with any lower lip or lid point that a tracker
    put above its upper partner (a closed mouth read a fraction of a pixel crossed) moved,
    with its partner, to where they meet."""
    v = np.array(vertices, np.float32, copy=True)
    if len(v) < 68:
        return v
    up = v[27] - v[8]
    up /= max(float(np.linalg.norm(up)), 1e-9)
    for top, bottom in FACING:
        if float((v[top] - v[bottom]) @ up) < 0:
            v[top] = v[bottom] = (v[top] + v[bottom]) / 2
    return v


def _signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle: (..., T) for vertices (..., V, 2)."""
    t = vertices[..., triangles, :]
    d, e = t[..., 1, :] - t[..., 0, :], t[..., 2, :] - t[..., 0, :]
    return d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]


def extend_points(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) landmarks -> (..., 78, 2): landmarks + 10 virtual forehead points."""
    points = np.asarray(points, np.float32)
    eyes = points[..., 45, :] - points[..., 36, :]  # outer eye corners, left to right in the picture
    up = np.stack([eyes[..., 1], -eyes[..., 0]], axis=-1)  # the eye line turned 90 degrees, pointing up
    forehead = points[..., 17:27, :] + FOREHEAD_LIFT * up[..., None, :]
    return np.concatenate([points, forehead], axis=-2)


def moving_vertices(points: np.ndarray, pupils: np.ndarray, forehead: np.ndarray | None = None) -> np.ndarray:
    """The warp's moving vertices (B, 80, 2): 68 landmarks, the virtual forehead points and the
    two pupils (B, 2, 2), so the eyes' gaze moves with its own triangles. Each pupil is kept
    inside its eye's lids (on the lid line of a closed eye), where its triangles stay unfolded.

    `forehead` (10, 2): where the forehead points go (the source's own, for an expression in the
    source's pose: raised brows stretch the forehead, they do not lift the hairline); None:
    extrapolated from the brows of `points`."""
    points = np.asarray(points, np.float32)
    pupils = pupils_inside(points, np.asarray(pupils, np.float32))
    extended = extend_points(points)
    if forehead is not None:
        extended[..., FOREHEAD, :] = np.asarray(forehead, np.float32)
    return np.concatenate([extended, pupils], axis=1).astype(np.float32)


# Fixed points this fraction of the jaw width outside the sides of the face (jaw points 0-5 and
# 11-16, temple to jaw angle): the hair, ears and background beside a face stay where they are
# when the jaw drops or the cheeks move; only the skin under the chin stretches.
SKIRT_MARGIN = 0.1
SKIRT_POINTS = np.r_[0:6, 11:17]


def face_skirt(points: np.ndarray) -> np.ndarray:
    """(12, 2) fixed anchors just outside the sides of the face of `points` (68, 2)."""
    p = np.asarray(points, np.float64)
    centre = p[27:36].mean(axis=0)
    width = np.linalg.norm(p[16] - p[0])
    out = p[SKIRT_POINTS] - centre
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return (p[SKIRT_POINTS] + SKIRT_MARGIN * width * out).astype(np.float32)


# Per eye: the corners, the upper lid (corner to corner) and the lower lid (corner to corner).
_EYE_LIDS = (((36, 39), (36, 37, 38, 39), (36, 41, 40, 39)), ((42, 45), (42, 43, 44, 45), (42, 47, 46, 45)))
_PUPIL_MARGIN = 0.2  # a pupil stays this fraction of the lid gap (and of the eye width) inside


def pupils_inside(points: np.ndarray, pupils: np.ndarray) -> np.ndarray:
    """`pupils` (..., 2, 2) moved into their eyes (points (..., 68, 2)): along the eye at most
    to within _PUPIL_MARGIN of a corner, across it between the lids with the same margin."""
    p = np.asarray(points, np.float64)
    out = np.array(pupils, np.float64, copy=True)
    for eye, (corners, upper, lower) in enumerate(_EYE_LIDS):
        a, b = p[..., corners[0], :], p[..., corners[1], :]
        axis = b - a
        width = np.maximum(np.linalg.norm(axis, axis=-1), 1e-9)
        ex = axis / width[..., None]
        ey = np.stack([-ex[..., 1], ex[..., 0]], -1)
        local = lambda q: (((q - a[..., None, :]) * ex[..., None, :]).sum(-1) / width[..., None],  # noqa: E731
                           ((q - a[..., None, :]) * ey[..., None, :]).sum(-1) / width[..., None])
        ux, uy = local(p[..., list(upper), :])
        lx, ly = local(p[..., list(lower), :])
        px, py = local(out[..., eye:eye + 1, :])
        t = np.clip(px[..., 0], _PUPIL_MARGIN, 1.0 - _PUPIL_MARGIN)
        y_up = np.array([np.interp(ti, np.maximum.accumulate(xs), ys) for ti, xs, ys in
                         zip(np.atleast_1d(t), ux.reshape(-1, 4), uy.reshape(-1, 4))]).reshape(t.shape)
        y_low = np.array([np.interp(ti, np.maximum.accumulate(xs), ys) for ti, xs, ys in
                          zip(np.atleast_1d(t), lx.reshape(-1, 4), ly.reshape(-1, 4))]).reshape(t.shape)
        top, bottom = np.minimum(y_up, y_low), np.maximum(y_up, y_low)
        gap = bottom - top
        y = np.clip(py[..., 0], top + _PUPIL_MARGIN * gap, bottom - _PUPIL_MARGIN * gap)
        out[..., eye, :] = a + (t * width)[..., None] * ex + (y * width)[..., None] * ey
    return out.astype(np.float32)


def face_anchors(size: int) -> tuple[np.ndarray, float]:
    """The fixed anchors of a face crop of side `size` (its border and the ring at RING_FRACTION
    about its centre) and the fence radius for `PiecewiseAffineWarp`."""
    centre = np.full(2, (size - 1) / 2.0, np.float32)
    radius = RING_FRACTION * size / 2.0
    return fixed_anchors(size, centre, radius), radius - FENCE_GAP * size


def face_warp(points: np.ndarray, pupils: np.ndarray, size: int, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> "PiecewiseAffineWarp":
    """The warp of a portrait's face crop at `size`, as the renderer builds it: the landmarks
    (68, 2) and pupils (2, 2) in crop px among the moving vertices, the crop's fixed ring and
    border, and anchors just beside the jaw (`face_skirt`)."""
    moving = moving_vertices(np.asarray(points, np.float32)[None], np.asarray(pupils, np.float32)[None])[0]
    anchors, fence = face_anchors(size)
    return PiecewiseAffineWarp(moving, np.concatenate([anchors, face_skirt(points)]), size, fence=fence,
                               device=device, dtype=dtype)


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
        self.source_vertices = np.concatenate([uncrossed(np.asarray(source_moving, np.float32)), self.anchors])
        self._centre = np.full(2, (self.size - 1) / 2.0)
        self._forehead_reach = None
        if fence is not None:
            source_reach = np.linalg.norm(self.source_vertices[FOREHEAD] - self._centre, axis=-1)
            self._forehead_reach = np.maximum(source_reach, fence)  # (10,)
        self.layout = opened_layout(self.source_vertices)
        tri = Delaunay(self.layout)
        self.triangles = np.ascontiguousarray(tri.simplices, dtype=np.int64)  # (T, 3)
        self._neighbours = np.ascontiguousarray(tri.neighbors, dtype=np.int64)  # across the edge opposite each vertex
        # per triangle, the triangles sharing a corner with it (itself first), padded with itself
        fans = [np.flatnonzero(np.isin(self.triangles, t).any(axis=1)) for t in self.triangles]
        width = max(len(f) for f in fans)
        self._fan = np.array([np.r_[i, f[f != i], np.full(width - len(f), i)] for i, f in enumerate(fans)], np.int64)
        self.num_triangles = len(self.triangles)
        # the triangles joining the chin to a fixed anchor: the fold guard pulls them back gently
        self._chin_on_anchor = ((self.triangles >= self.num_moving).any(axis=1)
                                & np.isin(self.triangles, CHIN).any(axis=1))
        # each triangle's orientation: the source's where it has an area, else the layout's (a
        # closed mouth or eye), so the source itself is never "folded"
        source_signed = _signed_areas(self.source_vertices.astype(np.float64), self.triangles)
        self.orientation = np.where(np.abs(source_signed) > FLIP_AREA, np.sign(source_signed),
                                    np.sign(_signed_areas(self.layout, self.triangles)))  # (T,)
        # how small each triangle may get before it counts as crushed: none inside the mouth and
        # eye openings, which close to a line
        inside = np.zeros(self.num_triangles, bool)
        for opening in OPENINGS:
            inside |= np.isin(self.triangles, opening).all(axis=1)
        # the inside of each eye: once its lids meet, the pupil's triangles there overlap in
        # pairs on the lid line (no area is shown inverted), so they are not folds
        self._eye_inside = [np.isin(self.triangles, opening).all(axis=1) for opening in OPENINGS[1:]] \
            if self.num_moving >= 80 else []
        self._eye_gap = [float(lid_gap(self.source_vertices, eye)) for eye in range(len(self._eye_inside))]
        source_areas = _signed_areas(self.source_vertices.astype(np.float64), self.triangles) * self.orientation
        self._source_areas = np.where(inside, 0.0, np.maximum(source_areas, 0.0))
        self._src_tri = self.source_vertices[self.triangles].astype(np.float32)  # (T, 3, 2)
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
        full = np.concatenate([target_moving, np.broadcast_to(self.anchors, (b, *self.anchors.shape))], axis=1)
        return self.untangle(full)

    def flipped(self, target_vertices: np.ndarray) -> np.ndarray:
        """(B, T) bool: target triangles turned over relative to the layout (a fold), or, outside
        the mouth and eye openings, squeezed below MIN_AREA_RATIO of their source area (skin
        crushed into a seam, e.g. a dropped jaw pressed against the fixed ring)."""
        target_vertices = np.asarray(target_vertices, np.float64)
        areas = _signed_areas(target_vertices, self.triangles) * self.orientation
        bad = (areas < -FLIP_AREA) | (areas < MIN_AREA_RATIO * self._source_areas)
        for eye, inside in enumerate(self._eye_inside):
            shut = lid_gap(target_vertices, eye) < SHUT_GAP * max(self._eye_gap[eye], 1e-6)
            bad &= ~(shut[:, None] & inside[None])
        return bad

    def untangle(self, target_vertices: np.ndarray) -> np.ndarray:
        """The targets (B, V, 2) with every flipped triangle's moving vertices pulled back
        towards the source until none is flipped (the source itself has none)."""
        out = np.asarray(target_vertices, np.float64).copy()
        layout = self.source_vertices.astype(np.float64)
        for step in range(UNTANGLE_STEPS + 1):
            bad = self.flipped(out)
            if not bad.any():
                break
            last = step == UNTANGLE_STEPS
            for i in np.flatnonzero(bad.any(axis=1)):
                strong = np.unique(self.triangles[bad[i] & ~self._chin_on_anchor])
                gentle = np.setdiff1d(self.triangles[bad[i] & self._chin_on_anchor], strong)
                for verts, keep in ((strong, UNTANGLE_KEEP), (gentle, UNTANGLE_KEEP_CHIN)):
                    verts = verts[verts < self.num_moving]
                    out[i, verts] = layout[verts] + (0.0 if last else keep) * (out[i, verts] - layout[verts])
        return out.astype(np.float32)

    def barycentric(self, target_vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per target triangle, the matrix (B, T, 3, 3) taking [x, y, 1] to the pixel's
        barycentric coordinates in it, and whether the triangle has an area (B, T): one without
        (a closed mouth's) covers no pixel, and its matrix gives its centroid."""
        tgt = np.asarray(target_vertices, np.float64)[:, self.triangles]  # (B, T, 3, 2)
        a = np.concatenate([np.swapaxes(tgt, -1, -2), np.ones((*tgt.shape[:2], 1, 3))], axis=-2)  # rows x, y, 1
        ok = np.abs(np.linalg.det(a)) > 1e-6
        centroid = np.zeros((3, 3))
        centroid[:, 2] = 1.0 / 3.0
        return np.where(ok[..., None, None], np.linalg.inv(np.where(ok[..., None, None], a, np.eye(3))), centroid), ok

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
        for i in range(b):
            # a triangle with no area (collinear border anchors, a closed mouth) covers no
            # pixel: the pixels of its line go to its neighbours (_close_seams)
            flipped = np.sign(area[i]) != self.orientation
            order = np.concatenate([np.nonzero(flipped & (area[i] != 0))[0], np.nonzero(~flipped)[0]])
            canvas = out[i]
            pts_i = tri_pts[i]
            for t in order:
                cv2.fillConvexPoly(canvas, pts_i[t], int(t), lineType=cv2.LINE_8, shift=shift)
            _close_seams(canvas, self.num_triangles)
        return out

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
        to_r = (r - 1) / (s - 1)
        idx = self.index_maps(verts * to_r, r)  # (B, R, R)
        none = (idx == self.num_triangles).reshape(-1)
        tri = np.where(none, 0, idx.reshape(-1))  # (N,) for N = B R R pixels
        systems, has_area = self.barycentric(verts)
        systems = systems.astype(np.float32).reshape(-1, 3, 3)  # (B T, 3, 3)
        has_area = has_area.reshape(-1)
        x, y = np.broadcast_arrays(*self._pix_r)
        frame_base = np.repeat(np.arange(b) * self.num_triangles, r * r)
        px, py = np.tile(x.reshape(-1), b), np.tile(y.reshape(-1), b)

        def coordinates(t: np.ndarray, at: np.ndarray) -> np.ndarray:  # barycentric coordinates in triangle t
            m = systems[frame_base[at] + t]  # (n, 3, 3)
            return m[..., 0] * px[at, None] + m[..., 1] * py[at, None] + m[..., 2]

        # The raster is generous at edges: a pixel near one may be handed to a triangle that does
        # not contain it (and a thin triangle's affine, continued past its edge, lands far
        # away). Such a pixel moves to the neighbour across the edge it is beyond or, failing that,
        # to the triangle around its raster triangle (sharing a corner with it) it lies deepest
        # inside (triangles without area never count); what is still outside is clamped onto an edge.
        lam = coordinates(tri, slice(None))
        outside = np.flatnonzero(lam.min(-1) < -1e-5)
        if outside.size:  # most are just across the edge they are beyond
            across = self._neighbours[tri[outside], lam[outside].argmin(-1)]
            step = (across >= 0) & has_area[frame_base[outside] + np.maximum(across, 0)]
            moved = outside[step]
            moved_lam = coordinates(across[step], moved)
            inside = moved_lam.min(-1) >= -1e-5
            tri[moved[inside]], lam[moved[inside]] = across[step][inside], moved_lam[inside]
            outside = np.setdiff1d(outside, moved[inside], assume_unique=True)
        if outside.size:
            fan = self._fan[tri[outside]]  # (n, K)
            cand = np.stack([coordinates(fan[:, k], outside) for k in range(fan.shape[1])], 1)  # (n, K, 3)
            depth = np.where(has_area[frame_base[outside, None] + fan], cand.min(-1), -np.inf)
            best = depth.argmax(-1)
            tri[outside] = fan[np.arange(len(outside)), best]
            lam[outside] = cand[np.arange(len(outside)), best]
        lam = np.clip(lam, 0.0, None)
        lam /= np.maximum(lam.sum(-1, keepdims=True), 1e-12)
        corners = self._src_tri[tri]  # (N, 3, 2)
        sx = np.where(none, px, (lam * corners[..., 0]).sum(-1)).reshape(b, r, r)
        sy = np.where(none, py, (lam * corners[..., 1]).sum(-1)).reshape(b, r, r)
        out = torch.from_numpy(np.stack([sx, sy], 1)).to(self.device, self.dtype)  # (B, 2, R, R)
        if r != s:
            out = torch.nn.functional.interpolate(out, size=(s, s), mode="bilinear", align_corners=True)
        return out.permute(0, 2, 3, 1)


def _close_seams(index: np.ndarray, none: int, passes: int = 2) -> None:
    """Give pixels that no triangle claimed (rasterization leaves one-pixel seams between
    neighbours) the triangle of a neighbouring pixel, in place: its affine, continued a pixel
    past its edge, is what the seam's pixel should have had. A seam pixel left at identity would
    sample the source somewhere else entirely -- a speck."""
    h, w = index.shape
    for _ in range(passes):
        holes = index == none
        if not holes.any():
            return
        padded = np.pad(index, 1, constant_values=none)
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            neighbour = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            take = holes & (neighbour != none)
            index[take] = neighbour[take]
            holes &= ~take


def to_normalized(coords: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel coords (pixel centres at integers) -> grid_sample coords with align_corners=True."""
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=coords.dtype, device=coords.device)
    return coords * scale - 1.0
