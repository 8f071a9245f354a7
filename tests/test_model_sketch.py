"""Landmark sketches and region masks: drawn where the points are, nowhere else."""

from __future__ import annotations

import torch

from talkanim.model import sketch as sketch_mod
from talkanim.model.sketch import LANDMARK_PARTS, PUPIL_COLOUR, draw_sketch, region_mask


def _face(size: int = 64) -> torch.Tensor:
    """A plausible 68-point face in a `size` crop: points along parts of an ellipse."""
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(68, 2, generator=g) * size * 0.5 + size * 0.25
    jaw_t = torch.linspace(3.6, 5.8, 17)
    pts[:17, 0] = size / 2 + 0.35 * size * torch.cos(jaw_t)
    pts[:17, 1] = size / 2 - 0.35 * size * torch.sin(jaw_t)
    return pts


def test_parts_cover_all_68_points():
    covered = sorted({i for _, idx, _, _ in LANDMARK_PARTS for i in idx})
    assert covered == list(range(68))


def test_points_coloured_far_pixels_black():
    size = 64
    pts = _face(size)
    img = draw_sketch(pts[None], size)
    assert img.shape == (1, 3, size, size) and img.dtype == torch.float32
    assert 0 <= img.min() and img.max() <= 1
    for i in (0, 8, 16, 19, 30, 37, 51, 62):  # each landmark lies on its polyline
        x, y = pts[i].round().long().tolist()
        assert img[0, :, y, x].max() > 0.5, f"landmark {i} not drawn"
    # The jaw is drawn in the jaw colour.
    x, y = pts[8].round().long().tolist()
    assert torch.allclose(img[0, :, y, x], torch.tensor(LANDMARK_PARTS[0][3]), atol=0.3)
    # Pixels more than 3 px from every point and segment are black: check the corners.
    assert img[0, :, :3, :3].abs().max() == 0 and img[0, :, -3:, -3:].abs().max() == 0
    assert (img.amax(1) > 0).float().mean() < 0.5  # lines, not blobs


def test_pupils_drawn_white():
    size = 64
    pts = torch.full((1, 68, 2), 5.0)  # all landmarks in the top-left corner
    pupils = torch.tensor([[[40.0, 30.0], [50.0, 30.0]]])
    img = draw_sketch(pts, size, pupils)
    assert torch.allclose(img[0, :, 30, 40], torch.tensor(PUPIL_COLOUR))
    assert torch.allclose(img[0, :, 30, 50], torch.tensor(PUPIL_COLOUR))
    assert img[0, :, 30, 45].max() == 0  # between the two dots
    assert draw_sketch(pts, size)[0, :, 30, 40].max() == 0  # no pupils, no dots


def test_batched_and_chunked_match_single(monkeypatch):
    size = 48
    pts = torch.stack([_face(size), _face(size).flip(0)])
    full = draw_sketch(pts, size)
    one = draw_sketch(pts[1:], size)
    assert torch.equal(full[1:], one)
    monkeypatch.setattr(sketch_mod, "_CHUNK_ELEMENTS", 1000)  # forces many pixel chunks
    assert torch.allclose(draw_sketch(pts, size), full)


def test_region_mask_covers_mouth_and_eyes_only():
    size = 64
    pts = _face(size)
    pts[48:68] = torch.tensor([40.0, 48.0]) + torch.randn(20, 2)  # a small mouth
    pts[36:48] = torch.tensor([20.0, 20.0]) + torch.randn(12, 2)
    m = region_mask(pts[None], size)
    assert m.shape == (1, 1, size, size)
    assert m[0, 0, 48, 40] == 1 and m[0, 0, 20, 20] == 1
    assert m[0, 0, 5, 60] == 0 and m[0, 0, 60, 5] == 0
