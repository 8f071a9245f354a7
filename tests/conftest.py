"""Shared fixtures: real inputs the project makes itself, and the clips in ../shared/data.

Tests marked `shared_data` use the clips and portraits in $TALKANIM_DATA (default
../shared/data, next to the checkout) and skip with a reason when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# `talkanim animate` fine-tunes the shipped model for about a minute by default. Tests that are
# not about the model run warp-only (the CLI reads TALKANIM_MODEL like --model); the model
# tests pass --model explicitly, and test_shipped_weights runs the default with it unset.
os.environ.setdefault("TALKANIM_MODEL", "none")
# Under pytest-xdist (pyproject's addopts: two workers) each worker and the `talkanim`
# subprocesses it starts compute on one thread: two workers with two OpenMP threads each, on
# two cores, spin-wait against each other (the 60 s speech test took 148 s so, 44 s alone).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
EXAMPLES = REPO / "examples"


def shared_data_dir() -> Path:
    return Path(os.environ.get("TALKANIM_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder, or skip when it is not there."""
    path = shared_data_dir()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {path} (set TALKANIM_DATA)")
    return path


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo: a frontal portrait that ships with a dependency."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_face(astronaut):
    """The astronaut's face as the landmark stage finds it (dlib, offline)."""
    from talkanim.landmarks import detect_face, make_detector

    return detect_face(astronaut, make_detector("dlib"))


@pytest.fixture(scope="session")
def example_portrait() -> Path:
    return EXAMPLES / "portrait.png"


@pytest.fixture(scope="session")
def example_driver() -> Path:
    return EXAMPLES / "driver.mp4"


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: the 2 cores are shared with other processes, and one
    thread per process is both faster there and repeatable (used by the training tests)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def edited_clip(tmp_path_factory, astronaut, example_driver) -> Path:
    """An edited clip: 24 frames of another face (the astronaut, panning), then a camera cut to
    the 100 frames of the example driver."""
    from talkanim.io import VideoWriter, iter_frames

    path = tmp_path_factory.mktemp("edited") / "edited.mp4"
    other = astronaut[:320, 60:380]
    with VideoWriter(path, 320, 320, 25) as writer:
        for i in range(24):
            writer.write(np.ascontiguousarray(np.roll(other, i, axis=1)))
        for frame in iter_frames(example_driver):
            writer.write(frame)
    return path
