"""Shared helpers of the robustness suite (issue 7): real `python -m talkanim` subprocesses,
media made on the fly (short drivers, small portraits), and the checks every bad-input case
makes: one `error:` line on stderr, the documented exit code, no traceback, nothing left behind.

Tests marked `slow` here (the 60 s streamed driver, the 200-portrait batch) only run with
TALKANIM_SLOW=1, so `.ci/run` keeps its time; everything else runs in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rb_helpers import EXAMPLES, ffmpeg


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TALKANIM_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow robustness test: set TALKANIM_SLOW=1 to run it")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def portrait(media, astronaut) -> Path:
    """The astronaut at 256x256: a small portrait, fast to render."""
    path = media / "portrait.png"
    Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS).save(path)
    return path


@pytest.fixture(scope="session")
def faceless(media) -> Path:
    from skimage import data

    path = media / "coffee.png"
    Image.fromarray(data.coffee()).resize((200, 133)).save(path)
    return path


@pytest.fixture(scope="session")
def driver_1s(media) -> Path:
    """The first second of the example driver (25 frames, with audio)."""
    path = media / "driver1s.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", path)
    return path


@pytest.fixture(scope="session")
def driver_5f(media) -> Path:
    """Five frames of the example driver, no audio: for batches."""
    path = media / "driver5f.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-frames:v", "5", "-an", "-c:v", "libx264", "-preset", "ultrafast", path)
    return path


@pytest.fixture(scope="session")
def driver_long(media) -> Path:
    """12 s (the example looped 3x): long enough to interrupt mid-render."""
    path = media / "driver12s.mp4"
    ffmpeg("-stream_loop", "2", "-i", EXAMPLES / "driver.mp4", "-c", "copy", path)
    return path
