"""Camera cuts: an edited clip splits into its continuous shots; one continuous shot does not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkanim.io import VideoWriter, camera_shots, iter_frames
from talkanim.io.cuts import split_at_cuts, watch_cuts


def _panning(image: np.ndarray, frames: int, size: int = 160) -> list[np.ndarray]:
    """A camera slowly panning over `image` (2 px a frame): motion, but one continuous shot."""
    image = cv2.resize(image, (size + 2 * frames, size + 2 * frames), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(image[i:i + size, 2 * i:2 * i + size]) for i in range(frames)]


def test_watch_cuts_and_split_at_cuts(astronaut):
    from skimage import data

    coffee = _panning(data.coffee(), 10)
    frames = _panning(astronaut, 12) + coffee + [np.zeros_like(coffee[0])] + coffee[:5]
    cuts: list[int] = []
    passed = list(watch_cuts(iter(frames), cuts))
    assert len(passed) == len(frames) and all(a is b for a, b in zip(passed, frames))
    assert cuts == [12, 22, 23]  # astronaut -> coffee, coffee -> black, black -> coffee again
    assert split_at_cuts(28, cuts) == [range(0, 12), range(12, 22), range(22, 23), range(23, 28)]
    assert split_at_cuts(5, []) == [range(0, 5)] and split_at_cuts(5, [0, 5, 9]) == [range(0, 5)]


def test_camera_shots_on_an_encoded_clip(tmp_path, astronaut, example_driver):
    from skimage import data

    path = tmp_path / "edited.mp4"
    with VideoWriter(path, 160, 160, 25) as writer:
        for frame in _panning(astronaut, 20) + _panning(data.coffee(), 15):
            writer.write(frame)
    assert camera_shots(path) == [range(0, 20), range(20, 35)]
    # a real talking face (head motion, blinks, speech) is one shot
    assert camera_shots(example_driver) == [range(0, sum(1 for _ in iter_frames(example_driver)))]


@pytest.mark.shared_data
def test_cuts_in_the_shared_clips(data_dir):
    """short_hamilton_clip cuts singer (wide) -> pianist -> singer (close) -> audience; every
    other clip of the shared data is one continuous shot."""
    videos = sorted((data_dir / "videos").glob("*/*.mp4"))
    assert videos
    found = {f"{p.parent.name}/{p.name}": [r.start for r in camera_shots(p)[1:]] for p in videos}
    assert found.pop("ageitgey__face_recognition/short_hamilton_clip.mp4") == [45, 107, 236]
    assert not {name: cuts for name, cuts in found.items() if cuts}


def test_load_driver_says_where_the_driver_cuts(edited_clip, example_driver):
    from talkanim.api import Session, load_driver

    said: list[str] = []
    driver = load_driver(edited_clip, session=Session(log=said.append))
    assert driver.track.num_frames == 124 and driver.track.cuts == (24,)
    assert "edited.mp4: 1 camera cut, at frame 24; each shot's motion is measured from its own start" in said
    said.clear()
    plain = load_driver(example_driver, session=Session(log=said.append))
    assert not [line for line in said if "camera cut" in line] and plain.track.cuts == ()
    # detected afresh and smoothed from the cut on: the first frames of the new shot sit where
    # the driver alone puts them (smoothed across the cut they were 26, 9, 5 px off)
    error = np.abs(driver.track.points[24:] - plain.track.points).max(axis=(1, 2))
    assert error[:3].max() < 6, error[:3]
