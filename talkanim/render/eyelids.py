"""Upper eyelids that close over the eye: skin slides down, the eye is not squashed.

Moving the lid landmarks together makes a piecewise-affine warp collapse the eye into a line,
and the map's interpolation smears that line over several pixels: a squashed eye that stays
visible through the whole blink (a face mesh read such frames as open). Real lids work like a
curtain: the skin of the upper lid, from its crease to the lashes, unrolls down over the eye.

So the warp keeps each eye OPEN (its lids where the portrait has them, relative to the eye
corners; wider only when the driver's eyes widen), and the lid is drawn over it at the
picture's own resolution (an eye is a dozen pixels at the working resolution): the target's lid
gap, as a share of the open eye's, says how far down the upper lid comes (past the lower lid's
lashes when shut). Between the open lid's crease and that edge, the portrait's band of upper-lid
skin above the lashes is stretched down, a line of the portrait's own lash colour rides on the
edge, and below it the eye shows as it is. Geometry lives in the expression crop at working
resolution S; colours are sampled from the full-resolution picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Per eye: the corners, the upper and lower lids (corner to corner) and their moving points.
EYES = (((36, 39), np.array([36, 37, 38, 39]), np.array([36, 41, 40, 39]), (37, 38, 41, 40)),
        ((42, 45), np.array([42, 43, 44, 45]), np.array([42, 47, 46, 45]), (43, 44, 47, 46)))
LID_BAND = 0.16  # the lid skin stretched over the eye: this fraction of the eye's width above...
LASH = 0.05  # ...the lash line, which is this thick (fractions of the eye's width)
OVERLAP = 0.04  # a shut lid reaches this far past the lower lid's lash line (eye widths)
MIN_COVER = 0.02  # a lid lower than its open place by less than this (eye widths) paints nothing
EDGE_PX = 1.0  # picture px over which the lid's edge fades into the eye below it


@dataclass
class Curtain:
    """One closing upper lid in one frame, in the expression crop (S px)."""

    origin: np.ndarray  # (2,) the eye's first corner
    ex: np.ndarray  # (2,) unit vector towards its other corner
    ey: np.ndarray  # (2,) unit vector across the eye, down
    length: float  # corner to corner
    top: tuple[np.ndarray, np.ndarray]  # the open upper lid's knots along / across
    edge: tuple[np.ndarray, np.ndarray]  # the lid's edge knots
    eye: int  # 0 or 1


def _frame(points: np.ndarray, a: int, b: int):
    o = points[a]
    axis = points[b] - o
    length = max(float(np.linalg.norm(axis)), 1e-3)
    ex = axis / length
    return o, ex, np.array([-ex[1], ex[0]]), length


def _knots(points: np.ndarray, idx: np.ndarray, o, ex, ey):
    rel = points[idx] - o
    return np.maximum.accumulate(rel @ ex), rel @ ey


class EyelidPainter:
    """Closes the upper eyelids over the eyes of a portrait; built once per portrait."""

    def __init__(self, source_points_crop: np.ndarray):
        p = np.asarray(source_points_crop, np.float64)
        self.source_points = p
        # each lid point in its eye's frame (along, across, in eye widths): where the lids sit
        # when open, to follow the eye wherever it moves
        self._open = []
        self._source = []  # per eye: frame and upper-lid knots of the portrait, for the skin
        for (a, b), upper, _, moving in EYES:
            o, ex, ey, length = _frame(p, a, b)
            rel = p[list(moving)] - o
            self._open.append(np.stack([rel @ ex, rel @ ey], -1) / length)
            self._source.append((o, ex, ey, length, _knots(p, upper, o, ex, ey)))

    def open_lids(self, points: np.ndarray) -> np.ndarray:
        """`points` (B, 68, 2) crop px with each eye's lids put back where the portrait has them
        relative to the eye's corners, unless the target's eye is opened wider: the shape the
        warp uses, so an eye is never squashed."""
        out = np.array(points, np.float32, copy=True)
        for ((a, b), _, _, moving), rel in zip(EYES, self._open):
            axis = out[:, b] - out[:, a]
            ex = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-6)
            ey = np.stack([-ex[:, 1], ex[:, 0]], -1)
            width = np.linalg.norm(axis, axis=-1)[:, None]
            opened = out[:, None, a] + width[..., None] * (rel[None, :, :1] * ex[:, None] + rel[None, :, 1:] * ey[:, None])
            gap = lambda lids: ((lids[:, 2:] - lids[:, :2]) * ey[:, None]).sum(-1).mean(-1)  # noqa: E731
            wider = gap(out[:, list(moving)]) > gap(opened)
            out[:, list(moving)] = np.where(wider[:, None, None], out[:, list(moving)], opened)
        return out

    def curtains(self, open_points: np.ndarray, target_points: np.ndarray) -> list[list[Curtain]]:
        """Per frame, the lids that come down: `open_points` are what the warp used (see
        `open_lids`), `target_points` where the motion stage put the lids."""
        frames = []
        for opened, target in zip(np.asarray(open_points, np.float64), np.asarray(target_points, np.float64)):
            lids = []
            for eye, ((a, b), upper, lower, _) in enumerate(EYES):
                o, ex, ey, length = _frame(target, a, b)
                top_x, top_y = _knots(opened, upper, o, ex, ey)
                _, low_y = _knots(opened, lower, o, ex, ey)
                share = np.clip((_knots(target, lower, o, ex, ey)[1] - _knots(target, upper, o, ex, ey)[1])
                                / np.maximum(low_y - top_y, 1e-3), 0.0, 1.0)
                share[[0, -1]] = 1.0  # the corners: the lids meet there anyway
                edge_y = low_y - share * (low_y - top_y) + (1.0 - share) * OVERLAP * length
                if (edge_y - top_y).max() > MIN_COVER * length:
                    lids.append(Curtain(o, ex, ey, length, (top_x, top_y), (top_x, edge_y), eye))
            frames.append(lids)
        return frames

    def box(self, curtain: Curtain) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) S px around what a curtain may paint."""
        band = (LID_BAND + LASH) * curtain.length
        pts = [curtain.origin + x * curtain.ex + (y - band) * curtain.ey for x, y in zip(*curtain.top)]
        pts += [curtain.origin + x * curtain.ex + y * curtain.ey for x, y in zip(*curtain.edge)]
        pts = np.array(pts)
        return (*(pts.min(axis=0) - 1.0), *(pts.max(axis=0) + 1.0))

    def paint(self, colour: np.ndarray, at_s: tuple[np.ndarray, np.ndarray], curtain: Curtain,
              sample: Callable[[np.ndarray, np.ndarray], np.ndarray], px_per_s: float) -> np.ndarray:
        """Draw `curtain` on `colour` (h, w, 3) float32, whose pixels sit at `at_s` (x, y) in the
        expression crop; `sample(x, y)` reads the portrait's colour at crop px (S) positions of
        the SOURCE crop; `px_per_s`: picture px per S px (for the edge's sharpness)."""
        x, y = at_s
        rel_x, rel_y = x - curtain.origin[0], y - curtain.origin[1]
        u = rel_x * curtain.ex[0] + rel_y * curtain.ex[1]
        v = rel_x * curtain.ey[0] + rel_y * curtain.ey[1]
        band = (LID_BAND + LASH) * curtain.length
        top = np.interp(u, *curtain.top) - band  # the crease, above the open lid's lashes
        edge = np.interp(u, *curtain.edge)
        inside = (u > 0) & (u < curtain.length) & (v >= top)
        if not inside.any():
            return colour
        # the portrait's own lid, crease to lashes: its skin stretched from the crease down to
        # just above the edge, its lash line (of constant thickness) on the edge
        o, ex, ey, length, (kx, ky) = self._source[curtain.eye]
        u_s = u * (length / curtain.length)
        lash_t = LASH * curtain.length
        skin_t = np.maximum(edge - top - lash_t, 1e-3)
        depth = v - top  # below the crease
        on_skin = np.clip(depth / skin_t, 0.0, 1.0)
        on_lash = np.clip((depth - skin_t) / lash_t, 0.0, 1.0)
        v_s = np.interp(u_s, kx, ky) - (LID_BAND + LASH) * length + on_skin * LID_BAND * length + on_lash * LASH * length
        sx = o[0] + u_s * ex[0] + v_s * ey[0]
        sy = o[1] + u_s * ex[1] + v_s * ey[1]
        skin = sample(sx.astype(np.float32), sy.astype(np.float32))
        fade = np.clip((edge - v) * px_per_s / EDGE_PX + 0.5, 0.0, 1.0)
        alpha = (fade * fade * (3.0 - 2.0 * fade) * inside)[..., None]
        return colour + (skin - colour) * alpha
