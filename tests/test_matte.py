"""The person matte: head, hair and shoulders from the selfie segmentation network."""

from __future__ import annotations

import numpy as np
import pytest

from talkanim.landmarks import detect_face, make_detector
from talkanim.landmarks.matte import PersonMatter, fill_holes, person_matte


@pytest.fixture(scope="module")
def mesh_det():
    return make_detector("mesh", device="cpu")


def test_astronaut_matte(astronaut, mesh_det):
    face = detect_face(astronaut, mesh_det)
    matter = PersonMatter()
    matte = matter.matte(astronaut, face)
    assert matte.shape == astronaut.shape[:2] and matte.dtype == np.float32
    assert 0.0 <= matte.min() and matte.max() <= 1.0
    # face (hull forced in) and hair on top of and beside the head
    assert matte[int(face.points[30, 1]), int(face.points[30, 0])] == 1.0
    for y, x in [(30, 225), (60, 175), (60, 285), (110, 165)]:
        assert matte[y, x] > 0.9, (y, x, matte[y, x])
    # the background corners (flag at the left, sky at the right) are out
    assert matte[:40, :40].max() < 0.1 and matte[:40, -40:].max() < 0.1
    raw = matter.probability(astronaut, face)
    assert raw.shape == matte.shape and (matte >= raw - 1e-6).all()


def test_fill_holes_fills_enclosed_small_holes_only():
    m = np.zeros((60, 60), np.float32)
    m[10:50, 10:50] = 1
    m[20:24, 20:24] = 0  # small enclosed hole
    m[30:48, 30:48] = 0  # large enclosed hole
    m[0:5, 0:5] = 0.2  # background at the border
    out = fill_holes(m, max_area=50)
    assert out[21, 21] == 1 and out[40, 40] == 0 and out[2, 2] == pytest.approx(0.2)


def test_small_picture_is_matted_whole(astronaut, mesh_det):
    # the head and shoulders crop (4 face sizes) is larger than this 256 px picture: one pass
    # over the whole of it
    picture = np.ascontiguousarray(astronaut[:256, 100:356])
    face = detect_face(picture, mesh_det)
    matte = person_matte(picture, face)
    assert matte.shape == (256, 256)
    assert matte[int(face.points[30, 1]), int(face.points[30, 0])] == 1.0
    assert matte[30, 125] > 0.9  # hair on top of the head
    assert matte[:30, -30:].max() < 0.1  # the sky at the top right
