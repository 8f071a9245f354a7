"""Landmark sketches: the 68 points (and pupils) drawn as coloured polylines, on the device.

This is the paper's landmark image y, the generator's conditioning. Everything is tensor code
(distance of every pixel to every segment, nearest segment wins), so a batch is drawn in one
go on whatever device the points live on. Coordinates are crop pixels with pixel centres at
integer positions (the OpenCV convention `render.crop` uses).
"""

from __future__ import annotations

import torch

# (name, iBUG-68 indices, closed, RGB colour). Colours are distinct so the generator can tell
# parts apart even where they touch.
LANDMARK_PARTS: list[tuple[str, tuple[int, ...], bool, tuple[float, float, float]]] = [
    ("jaw", tuple(range(0, 17)), False, (1.0, 0.55, 0.0)),
    ("right_brow", tuple(range(17, 22)), False, (0.0, 1.0, 0.0)),
    ("left_brow", tuple(range(22, 27)), False, (0.0, 0.55, 0.0)),
    ("nose_bridge", tuple(range(27, 31)), False, (0.0, 0.0, 1.0)),
    ("nostrils", tuple(range(31, 36)), False, (0.0, 0.6, 1.0)),
    ("right_eye", tuple(range(36, 42)), True, (1.0, 0.0, 1.0)),
    ("left_eye", tuple(range(42, 48)), True, (0.6, 0.0, 1.0)),
    ("outer_lip", tuple(range(48, 60)), True, (1.0, 0.0, 0.0)),
    ("inner_lip", tuple(range(60, 68)), True, (1.0, 1.0, 0.0)),
]
PUPIL_COLOUR = (1.0, 1.0, 1.0)


def _segments() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start index, end index and colour of every polyline segment."""
    starts, ends, colours = [], [], []
    for _, idx, closed, colour in LANDMARK_PARTS:
        pairs = list(zip(idx[:-1], idx[1:])) + ([(idx[-1], idx[0])] if closed else [])
        for a, b in pairs:
            starts.append(a)
            ends.append(b)
            colours.append(colour)
    return torch.tensor(starts), torch.tensor(ends), torch.tensor(colours)


_STARTS, _ENDS, _COLOURS = _segments()
NUM_SEGMENTS = len(_STARTS)

# Elements of the (batch, segments, pixels) distance tensor per chunk: small enough on the CPU
# to stay in cache (measured 3-4x faster than one big chunk at 128 px), large on GPUs.
_CHUNK_ELEMENTS = 1 << 18
_CHUNK_ELEMENTS_GPU = 1 << 24


def _pixel_grid(size: int, device, dtype) -> torch.Tensor:
    """(size*size, 2) pixel centres (x, y), row-major."""
    r = torch.arange(size, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def _segment_distance2(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from pixels p (N, 2) to segments a->b (B, K, 2): (B, K, N).

    Written per coordinate with in-place ops: this is the sketch's whole cost, and it is
    memory-bound, so fewer (B, K, N) temporaries is what makes it fast.
    """
    ab = b - a
    abx, aby = ab[..., 0:1], ab[..., 1:2]  # (B,K,1)
    inv_len2 = 1.0 / (abx * abx + aby * aby).clamp_min(1e-6)
    dx = p[:, 0].view(1, 1, -1) - a[..., 0:1]  # (B,K,N)
    dy = p[:, 1].view(1, 1, -1) - a[..., 1:2]
    t = (dx * abx).add_(dy * aby).mul_(inv_len2).clamp_(0, 1)
    dx.sub_(t * abx)
    dy.sub_(t.mul_(aby))
    return dx.mul_(dx).add_(dy.mul_(dy))


@torch.no_grad()
def draw_sketch(points: torch.Tensor, size: int, pupils: torch.Tensor | None = None) -> torch.Tensor:
    """Rasterize landmarks into the 3-channel landmark image.

    points: (B, 68, 2) crop pixel coordinates at `size`; pupils: (B, 2, 2) or None.
    Returns (B, 3, size, size) in [0, 1] on points.device, in points' dtype when it is floating
    (float32 otherwise). Lines are ~2 px wide at 128 px and scale with `size`; pupils are
    white dots. Not differentiable (nothing needs gradients through the sketch).
    """
    dtype = points.dtype if points.is_floating_point() else torch.float32
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32  # pixel distances need more precision than half gives at 256 px
    device = points.device
    points = points.to(dtype)
    batch = points.shape[0]
    half_width = max(0.75, size / 160.0)  # half line width in px: ~0.8 at 128, 1.6 at 256
    starts, ends = _STARTS.to(device), _ENDS.to(device)
    colours = _COLOURS.to(device=device, dtype=dtype)
    a, b = points[:, starts], points[:, ends]  # (B,K,2)
    grid = _pixel_grid(size, device, dtype)
    out = torch.empty(batch, 3, size * size, device=device, dtype=dtype)
    budget = _CHUNK_ELEMENTS if device.type == "cpu" else _CHUNK_ELEMENTS_GPU
    chunk = max(1, budget // max(1, batch * NUM_SEGMENTS))
    for lo in range(0, size * size, chunk):
        p = grid[lo:lo + chunk]
        dist2, nearest = _segment_distance2(p, a, b).min(dim=1)  # (B,N)
        dist = dist2.sqrt_()
        # Soft edge: full intensity within half_width, linear fall-off over the next pixel.
        ink = (half_width + 0.5 - dist).clamp(0, 1)
        colour = colours[nearest]  # (B,N,3)
        out[:, :, lo:lo + chunk] = (colour * ink.unsqueeze(-1)).permute(0, 2, 1)
        if pupils is not None:
            radius = max(1.5, size / 64.0)
            d = (p.view(1, 1, -1, 2) - pupils.to(dtype).unsqueeze(2)).norm(dim=-1).min(dim=1).values
            dot = (radius + 0.5 - d).clamp(0, 1).unsqueeze(1)  # (B,1,N)
            pupil_colour = torch.tensor(PUPIL_COLOUR, device=device, dtype=dtype).view(1, 3, 1)
            out[:, :, lo:lo + chunk] = torch.maximum(out[:, :, lo:lo + chunk], dot * pupil_colour)
    return out.view(batch, 3, size, size)


# Regions where warping fails (mouth interior, eyelids): where the hybrid generator may paint
# and where the face-region loss looks hardest. (indices, scale of the region around them)
_REGIONS = {"mouth": (tuple(range(48, 68)), 1.35), "right_eye": (tuple(range(36, 42)), 1.8),
            "left_eye": (tuple(range(42, 48)), 1.8)}


@torch.no_grad()
def region_mask(points: torch.Tensor, size: int, regions: tuple[str, ...] = ("mouth", "right_eye", "left_eye"),
                feather: float | None = None) -> torch.Tensor:
    """Soft mask (B, 1, size, size) in [0, 1]: ellipses around the mouth and eyes.

    Each ellipse is the region's landmark bounding box, centred and enlarged (mouth x1.35,
    eyes x1.8, at least 4% of the crop so a closed eye still gets a region), with a feathered
    edge of `feather` px (default size/32).
    """
    dtype = points.dtype if points.dtype in (torch.float32, torch.float64) else torch.float32
    points = points.to(dtype)
    feather = feather if feather is not None else size / 32.0
    grid = _pixel_grid(size, points.device, dtype)  # (N,2)
    mask = torch.zeros(points.shape[0], size * size, device=points.device, dtype=dtype)
    for name in regions:
        idx, scale = _REGIONS[name]
        part = points[:, list(idx)]
        lo, hi = part.min(dim=1).values, part.max(dim=1).values
        centre = (lo + hi) / 2
        radius = ((hi - lo) / 2 * scale).clamp_min(0.04 * size)  # (B,2)
        rel = (grid.unsqueeze(0) - centre.unsqueeze(1)) / radius.unsqueeze(1)  # (B,N,2)
        # Approximate distance outside the ellipse, in px, for a feathered edge.
        outside = (rel.norm(dim=-1) - 1) * radius.min(dim=-1).values.unsqueeze(1)
        mask = torch.maximum(mask, (1 - outside / feather).clamp(0, 1))
    return mask.view(-1, 1, size, size)
