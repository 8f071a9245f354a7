"""The head moves as one body; the neck blends into a still torso.

Each frame the motion stage gives the head's similarity H (portrait -> output picture). Every
point p of the portrait moves by

    G(p) = p + E[ w(p) (H p - p) + (1 - w(p)) t(p) s ]

with w = 1 on the head (face, hair, ears, hat: everything above the chin and not far to the
side), falling smoothly to 0 down the neck and far to the sides (a chair beside the face does
not swing with a nod). The torso below stays still while the head nods and turns; when the head
travels further than a neck can lean (a person swaying across the picture) the torso comes
along: s is the part of the neck's travel beyond NECK_LEAN face heights, t its weight (the
body, not what lies far to its sides). E fades out, towards each picture edge the person
touches, the part of the motion that points away from that edge into the picture: that part
would show what lies beyond the edge, which a head cut by the frame cannot; motion along the
edge and out of the picture shows only the picture, so hair cut by the top of the frame still
turns with the head. Only where the person touches the edge: shoulders cut by the picture's
side leave the hair above them, with background between it and the edge, free to move as one
body (what it uncovers is the plate's). The renderer needs the inverse -- which portrait point
lands on output pixel x -- found by damped fixed-point steps p <- p + a (x - D(p) - p), D the
displacement above.

G is a bijection (no fold, no tear) while it squeezes no area to nothing. The motion people
make while talking stays far from that; for the rest (a person who fills the picture, a head
that flies off) `limit` takes the pose back towards rest until the map keeps MIN_STRETCH of
every area. Pure torch, batched, device- and dtype-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Neck: the weight starts falling NECK_START eye-to-chin distances below the chin and reaches 0
# NECK_BAND of them further down, where a neck meets the shoulders.
NECK_START = 0.2
NECK_BAND = 1.0
# Sides, in jaw widths from the face's vertical axis: full weight within SIDE_START (a wide
# hair-do), none past SIDE_START + SIDE_BAND.
SIDE_START = 1.5
SIDE_BAND = 1.0
# Edges of the picture the person touches: the weight rises from 0 over the whole gap between
# the edge and the face (its landmarks, the forehead taken as FOREHEAD eye-to-chin distances
# above the brows), at least this fraction of the picture's shorter side. Spread over the gap,
# a head moving towards the edge squeezes what lies between evenly instead of folding it.
EDGE_BAND = 0.12
FOREHEAD = 0.3
# The torso: full weight within TORSO_SIDE jaw widths of the face's axis, none past
# TORSO_SIDE + TORSO_BAND; it follows the neck's travel beyond NECK_LEAN eye-to-chin distances.
TORSO_SIDE = 2.0
TORSO_BAND = 3.0
NECK_LEAN = 0.25
# Along an edge, the fade eases off over this fraction of the picture's shorter side past the
# stretch of the edge the person touches.
CONTACT_BAND = 0.12
# Per picture edge: the coordinate (0: x, 1: y) and sign of the direction into the picture.
INWARD = {"left": (0, 1.0), "top": (1, 1.0), "right": (0, -1.0), "bottom": (1, -1.0)}
MIN_STRETCH = 0.3  # the body map may squeeze an area to this fraction, no further (0 would fold)
CHECK_GRID = 48  # points per side of the grid the fold check runs on
LIMIT_STEPS = 8  # bisection steps when a head pose has to be taken back
# Fixed-point steps of the inverse, each going DAMPING of the way: where the motion fades out
# over a narrow edge band its slope passes 1 and full steps swing back and forth. A point steps
# until its landing is within SETTLED px of its pixel: most of a picture (the head, what lies
# still) starts exact, and in the bands, where a fixed six steps left up to 1.3 px (the
# astronaut turned 12 degrees), it now lands within 0.01 px in less time. MAX_STEPS only bounds
# a map that would not converge.
DAMPING = 0.6
SETTLED = 1e-2
MAX_STEPS = 40
COMPACT = 0.75  # the points still stepping are gathered anew once this share of them is left


@dataclass(frozen=True)
class BodyFrame:
    """Where the head is in the portrait: the frame the weight field is measured in."""

    chin: np.ndarray  # (2,) picture px
    down: np.ndarray  # (2,) unit vector, eye line centre -> chin
    height: float  # eye line centre -> chin, px
    width: float  # jaw width (points 0 -> 16), px
    extent: tuple[float, float, float, float]  # (x0, y0, x1, y1) the face, forehead included, px

    @staticmethod
    def from_points(points: np.ndarray) -> "BodyFrame":
        """The frame of a face from its iBUG-68 landmarks (picture px)."""
        p = np.asarray(points, np.float64)
        eyes = (p[36:42].mean(axis=0) + p[42:48].mean(axis=0)) / 2.0
        axis = p[8] - eyes
        height = max(float(np.linalg.norm(axis)), 1.0)
        (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
        return BodyFrame(chin=p[8].copy(), down=axis / height, height=height,
                         width=max(float(np.linalg.norm(p[16] - p[0])), 1.0),
                         extent=(float(x0), float(y0 - FOREHEAD * height), float(x1), float(y1)))


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class BodyWarp:
    """Backward maps of the body motion for one portrait and many head poses.

    `size` (width, height) is the picture's; `pinned_edges` maps the picture edges ("left",
    "top", "right", "bottom") the person touches, where the motion fades out, to the stretch
    (first, last px along the edge: y on the sides, x on the top and bottom) they touch it.
    """

    def __init__(self, frame: BodyFrame, size: tuple[int, int],
                 pinned_edges: dict[str, tuple[float, float]] | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.frame = frame
        self.size = (int(size[0]), int(size[1]))
        self.pinned_edges = dict(pinned_edges or {})
        self.device = torch.device(device)
        self.dtype = dtype
        as_tensor = lambda v: torch.tensor(np.asarray(v, np.float64), device=self.device, dtype=dtype)  # noqa: E731
        self._chin = as_tensor(frame.chin)
        self._down = as_tensor(frame.down)
        self._right = as_tensor([-frame.down[1], frame.down[0]])

    def bands(self) -> np.ndarray:
        """The neck and side bands (2,), px."""
        f = self.frame
        return np.array([NECK_BAND * f.height, SIDE_BAND * f.width])

    def edge_bands(self) -> dict[str, float]:
        """The band each pinned edge's fade runs over, px."""
        x0, y0, x1, y1 = self.frame.extent
        width, height = self.size
        gap = {"left": x0, "top": y0, "right": width - 1 - x1, "bottom": height - 1 - y1}
        least = EDGE_BAND * min(self.size)
        return {edge: max(least, gap[edge]) for edge in self.pinned_edges}

    def head_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) picture px bounding where the head's share w is above 0."""
        f = self.frame
        neck, side_band = self.bands()
        return self._box(SIDE_START * f.width + side_band, NECK_START * f.height + neck)

    def support_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) picture px bounding where anything can move (head and torso)."""
        return self._box((TORSO_SIDE + TORSO_BAND) * self.frame.width, 4.0 * max(self.size))

    def _box(self, side: float, below: float) -> tuple[float, float, float, float]:
        """The box around the face's axis `side` px to either side, from the picture's top to
        `below` px under the chin, clipped to the picture."""
        f = self.frame
        right = np.array([-f.down[1], f.down[0]])
        bottom = f.chin + below * f.down
        far_up = f.chin - 4.0 * max(self.size) * f.down  # everything above the chin, clipped below
        corners = np.stack([bottom + side * right, bottom - side * right, far_up + side * right, far_up - side * right])
        w, h = self.size
        x0, y0 = np.clip(corners.min(axis=0), 0, [w, h])
        x1, y1 = np.clip(corners.max(axis=0), 0, [w, h])
        return float(x0), float(y0), float(x1), float(y1)

    def weight(self, points: torch.Tensor) -> torch.Tensor:
        """w at picture points (..., 2), the head's share of its motion (edges not included): (...)."""
        f = self.frame
        neck_band, side_band = self.bands().tolist()
        rel = points - self._chin.to(points.dtype)
        along = rel @ self._down.to(points.dtype) - NECK_START * f.height
        across = (rel @ self._right.to(points.dtype)).abs() - SIDE_START * f.width
        return (1.0 - _smoothstep(along / neck_band)) * (1.0 - _smoothstep(across / side_band))

    def torso_weight(self, points: torch.Tensor) -> torch.Tensor:
        """t at picture points (..., 2): how much of the torso's shift they take (...)."""
        f = self.frame
        across = ((points - self._chin.to(points.dtype)) @ self._right.to(points.dtype)).abs()
        return 1.0 - _smoothstep((across - TORSO_SIDE * f.width) / (TORSO_BAND * f.width))

    def torso_shifts(self, heads: np.ndarray) -> np.ndarray:
        """s (B, 2): how far the torso follows each head pose -- the neck's travel beyond what
        a neck can lean."""
        f = self.frame
        neck = f.chin + NECK_START * f.height * f.down
        travel = np.einsum("nij,j->ni", heads[:, :2, :2], neck) + heads[:, :2, 2] - neck
        length = np.linalg.norm(travel, axis=-1, keepdims=True)
        return travel * np.clip(1.0 - NECK_LEAN * f.height / np.maximum(length, 1e-9), 0.0, None)

    def _per_frame(self, heads: np.ndarray, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame's H - I as coefficients (6, B, 1, ..) and torso shift s (B, 1, .., 2),
        broadcasting against points (B, ..., 2)."""
        shape = (len(heads),) + (1,) * (points.dim() - 2)
        as_tensor = lambda v: torch.tensor(v, device=points.device, dtype=points.dtype)  # noqa: E731
        return (as_tensor(_coefficients(heads, minus_identity=True)).view(6, *shape),
                as_tensor(self.torso_shifts(heads)).view(*shape, 2))

    def _displacement(self, heads: np.ndarray, points: torch.Tensor) -> torch.Tensor:
        """G(p) - p for points (B, ..., 2) under `heads` (B, 3, 3)."""
        return self._moved(points, *self._per_frame(heads, points))

    def _moved(self, points: torch.Tensor, head: torch.Tensor, torso: torch.Tensor) -> torch.Tensor:
        """G(p) - p for points (..., 2), given H - I as coefficients `head` (6, ...) and the
        torso shift `torso` (..., 2), both broadcasting against the points."""
        w = self.weight(points).unsqueeze(-1)
        moved = w * _affine(head, points)
        moved = moved + (1.0 - w) * self.torso_weight(points).unsqueeze(-1) * torso
        return self._pinned(points, moved)

    def _pinned(self, points: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """E of the module docstring: displacements `moved` (..., 2) at `points` (..., 2) with
        their part pointing away from each pinned edge, into the picture, faded out towards it."""
        for edge, fade in self._edge_fades(points):
            axis, sign = INWARD[edge]
            inward = (sign * moved[..., axis]).clamp(min=0.0)  # motion away from the edge, px
            moved = moved.clone()
            moved[..., axis] = moved[..., axis] - sign * (1.0 - fade) * inward
        return moved

    def edge_weight(self, points: torch.Tensor) -> torch.Tensor:
        """The factor (...) that fades any motion out towards the pinned edges, at picture
        points (..., 2): 1 away from them, 0 on them."""
        w = torch.ones_like(points[..., 0])
        for _, fade in self._edge_fades(points):
            w = w * fade
        return w

    def _edge_fades(self, points: torch.Tensor):
        """(edge, fade (...)) per pinned edge at picture points (..., 2): 0 on the stretch of
        the edge the person touches, rising smoothly to 1 over its band into the picture and
        over CONTACT_BAND along the edge past the stretch."""
        width, height = self.size
        x, y = points[..., 0], points[..., 1]
        along_band = CONTACT_BAND * min(self.size)
        for edge, band in self.edge_bands().items():
            distance = {"left": x, "top": y, "right": width - 1 - x, "bottom": height - 1 - y}[edge]
            along = y if edge in ("left", "right") else x
            first, last = self.pinned_edges[edge]
            past = (first - along).clamp(min=0.0) + (along - last).clamp(min=0.0)
            yield edge, 1.0 - (1.0 - _smoothstep(distance / band)) * (1.0 - _smoothstep(past / along_band))

    def inverse(self, pixels: torch.Tensor, heads: np.ndarray) -> torch.Tensor:
        """Portrait points p with G(p) = pixels. `pixels` (B, h, w, 2) or (h, w, 2) picture px,
        `heads` (B, 3, 3) portrait -> output similarities. Returns (B, h, w, 2)."""
        heads = np.asarray(heads, np.float64).reshape(-1, 3, 3)
        if pixels.dim() == 3:
            pixels = pixels.expand(len(heads), *pixels.shape)
        head, torso = self._per_frame(heads, pixels)
        # start from the rigid inverse on the head and the torso's shift undone below it, each
        # by its weight: exact on the head and on the body
        rigid = _affine(torch.tensor(_coefficients(np.linalg.inv(heads)), device=pixels.device,
                                     dtype=pixels.dtype).view(head.shape), pixels)
        w = self.weight(rigid).unsqueeze(-1)
        below = (1.0 - w) * self.torso_weight(pixels - torso).unsqueeze(-1) * torso
        p = pixels + self.edge_weight(rigid).unsqueeze(-1) * (w * (rigid - pixels) - below)
        step = pixels - self._moved(p, head, torso) - p
        p = p + DAMPING * step
        # The first step runs on every point with each frame's pose broadcast (gathered per point
        # from the start, the inverse took a third longer); the later ones on the points still
        # on their way, gathered into short arrays.
        at = torch.nonzero(step.abs().amax(dim=-1).reshape(-1) > SETTLED).squeeze(-1)
        flat = p.view(-1, 2)
        frame = at // (p[..., 0].numel() // len(heads))
        moving, target = flat.index_select(0, at), pixels.reshape(-1, 2).index_select(0, at)
        head, torso = head.reshape(6, -1).index_select(1, frame), torso.reshape(-1, 2).index_select(0, frame)
        gathered = len(at)
        for _ in range(MAX_STEPS - 1):
            if not len(at):
                break
            step = target - self._moved(moving, head, torso) - moving
            moving = moving + DAMPING * step
            going = step.abs().amax(dim=-1) > SETTLED
            if int(going.sum()) <= COMPACT * gathered:  # put back where they are; keep those going
                flat.index_copy_(0, at, moving)
                keep = torch.nonzero(going).squeeze(-1)
                at, moving = at.index_select(0, keep), moving.index_select(0, keep)
                target, head, torso = target.index_select(0, keep), head.index_select(1, keep), torso.index_select(0, keep)
                gathered = len(at)
        flat.index_copy_(0, at, moving)
        return p

    def forward(self, points: torch.Tensor, heads: np.ndarray) -> torch.Tensor:
        """G(p) for portrait points (B, ..., 2): where each lands in the output."""
        heads = np.asarray(heads, np.float64).reshape(-1, 3, 3)
        return points + self._displacement(heads, points)

    def limit(self, heads: np.ndarray) -> np.ndarray:
        """The head poses (B, 3, 3), each taken only as far towards its pose as the body map
        stays unfolded (it keeps MIN_STRETCH of every area on a grid over the region it
        moves): all the way for the motion people make, less for a person who fills the
        picture or a head that flies off. H' = I + t (H - I) scales every displacement by t."""
        heads = np.asarray(heads, np.float64).reshape(-1, 3, 3)
        out = heads.copy()
        for i, head in enumerate(heads):
            if self._min_stretch(head) > MIN_STRETCH:
                continue
            lo, hi = 0.0, 1.0
            for _ in range(LIMIT_STEPS):
                mid = (lo + hi) / 2.0
                if self._min_stretch(np.eye(3) + mid * (head - np.eye(3))) > MIN_STRETCH:
                    lo = mid
                else:
                    hi = mid
            out[i] = np.eye(3) + lo * (head - np.eye(3))
        return out

    def _min_stretch(self, head: np.ndarray) -> float:
        """The smallest Jacobian determinant of G on a grid over the head's box (the neck
        included)."""
        x0, y0, x1, y1 = self.head_box()
        xs = torch.linspace(x0, x1, CHECK_GRID, dtype=torch.float64)
        ys = torch.linspace(y0, y1, CHECK_GRID, dtype=torch.float64)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)
        moved = self.forward(grid[None], head[None])[0]
        dx = (moved[:, 1:] - moved[:, :-1]) / max(float(xs[1] - xs[0]), 1e-9)
        dy = (moved[1:] - moved[:-1]) / max(float(ys[1] - ys[0]), 1e-9)
        det = dx[:-1, :, 0] * dy[:, :-1, 1] - dx[:-1, :, 1] * dy[:, :-1, 0]
        return float(det.min())


def _coefficients(heads: np.ndarray, minus_identity: bool = False) -> np.ndarray:
    """Similarities (B, 3, 3) as coefficients (6, B) [a, b, c, d, e, f] of (a x + b y + c,
    d x + e y + f), the identity taken off when `minus_identity` (giving H p - p)."""
    m = np.asarray(heads, np.float64)[:, :2, :].reshape(-1, 6).T.copy()
    if minus_identity:
        m[0] -= 1.0
        m[4] -= 1.0
    return m


def _affine(coef: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(a x + b y + c, d x + e y + f) for points (..., 2) and coefficients (6, ...) broadcasting
    against them, written out: batched 2x2 matrix products of torch are slow on the CPU."""
    a, b, c, d, e, f = coef
    x, y = points[..., 0], points[..., 1]
    return torch.stack([a * x + b * y + c, d * x + e * y + f], -1)
