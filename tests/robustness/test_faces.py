"""Faces missing, several, leaving the frame, tiny: through the real command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rb_helpers import EXAMPLES, assert_fails, ffmpeg, probe_frames, run_cli, stderr_of


def test_no_face_in_source(faceless, driver_1s, tmp_path):
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", faceless, driver_1s, "-o", out), 3, "no face found", out=out)


def test_bad_shots_fail_clearly(portrait, faceless, driver_1s, tmp_path):
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", portrait, driver_1s, "-o", out, "--shot", faceless), 3,
                 "no face found", str(faceless.name), out=out)
    assert_fails(run_cli("animate", portrait, driver_1s, "-o", out, "--shot", tmp_path / "missing.jpg"), 2,
                 "shot not found", out=out)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, astronaut) -> object:
    """The astronaut twice, side by side: 256 px and 160 px high."""
    a = Image.fromarray(astronaut)
    canvas = Image.new("RGB", (440, 256), (90, 90, 90))
    canvas.paste(a.resize((256, 256)), (0, 0))
    canvas.paste(a.resize((160, 160)), (270, 60))
    path = tmp_path_factory.mktemp("faces") / "two.png"
    canvas.save(path)
    return path


LARGE = (slice(0, 256), slice(0, 256))  # where the two faces are in `two_faces`
SMALL = (slice(60, 220), slice(270, 430))


def motion_in(frames: np.ndarray, region) -> float:
    """Mean change of a region over the clip, against the first frame (levels)."""
    part = frames[:, region[0], region[1]].astype(int)
    return float(np.abs(part - part[0]).mean())


def test_several_faces_largest_used_and_said(two_faces, driver_1s, tmp_path):
    """The largest face moves; the other stays as it is. Mean change of each face's square over
    the clip, measured: 0.72 levels for the driven face (most of the square is still hair and
    background), 0.04 for the other (the encoder's spread)."""
    from tests.content import read_frames

    out = tmp_path / "out.mp4"
    proc = run_cli("animate", two_faces, driver_1s, "-o", out)
    assert proc.returncode == 0, stderr_of(proc)
    assert "found 2 faces, using the largest (--face-index to choose)" in stderr_of(proc)
    assert probe_frames(out)[3] == (440, 256)
    frames = read_frames(out)
    assert motion_in(frames, LARGE) > 0.3 and motion_in(frames, SMALL) < 0.15, (motion_in(frames, LARGE), motion_in(frames, SMALL))


def test_several_faces_face_index(two_faces, driver_1s, tmp_path):
    """`--face-index 1`: the second-largest face moves and the largest stays as it is (measured
    0.56 vs 0.05)."""
    from tests.content import read_frames

    out = tmp_path / "out.mp4"
    proc = run_cli("animate", two_faces, driver_1s, "-o", out, "--face-index", "1", "-q")
    assert proc.returncode == 0, stderr_of(proc)
    frames = read_frames(out)
    assert motion_in(frames, SMALL) > 0.3 and motion_in(frames, LARGE) < 0.15, (motion_in(frames, SMALL), motion_in(frames, LARGE))
    bad = tmp_path / "bad.mp4"
    assert_fails(run_cli("animate", two_faces, driver_1s, "-o", bad, "--face-index", "5"), 2,
                 "--face-index 5 is out of range", "2 face(s)", out=bad)


def test_driver_face_leaves_frame_held_then_resumed(portrait, tmp_path):
    drv = tmp_path / "gap.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "1.2", "-vf",
           "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,10,20)'",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", drv)
    out = tmp_path / "out.mp4"
    proc = run_cli("animate", portrait, drv, "-o", out)
    assert proc.returncode == 0, stderr_of(proc)
    assert "11 driver frames had no face and were held" in stderr_of(proc), stderr_of(proc)
    assert probe_frames(out)[0] == 30
    # Held, then resumed: the track marks exactly frames 10..20 as missing.
    track = tmp_path / "gap.npz"
    proc = run_cli("landmarks", drv, "-o", track, "-q")
    assert proc.returncode == 0, stderr_of(proc)
    with np.load(track) as z:
        assert np.flatnonzero(~z["valid"]).tolist() == list(range(10, 21))
        pts = z["points"]
    assert np.allclose(pts[10:21], pts[9], atol=1e-3)  # held at the last seen pose
    assert not np.allclose(pts[21:].std(axis=0), 0)  # and moving again after


def test_two_people_in_driver_largest_tracked(tmp_path):
    drv = tmp_path / "two.mp4"
    # Left: the driver at full size; right: the same driver at 60 %, delayed 0.4 s.
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "1", "-filter_complex",
           "[0:v]split[a][b];[b]scale=192:192,tpad=start=10:start_mode=clone,pad=320:320:64:64[c];"
           "[a][c]hstack=inputs=2,trim=end_frame=25", "-an", "-c:v", "libx264", "-preset", "ultrafast", drv)
    track = tmp_path / "two.npz"
    proc = run_cli("landmarks", drv, "-o", track, "-q")
    assert proc.returncode == 0, stderr_of(proc)
    with np.load(track) as z:
        pts, valid = z["points"], z["valid"]
    assert valid.all()
    assert (pts[..., 0].max(axis=1) < 320).all(), "tracked the smaller face on the right"


def test_tiny_face_says_too_small(astronaut, driver_1s, tmp_path):
    """Decision: a face under ~40 px is not detected; the user is told so (exit 3)."""
    canvas = Image.new("RGB", (640, 640), (120, 120, 120))
    canvas.paste(Image.fromarray(astronaut).resize((64, 64)), (300, 300))
    src = tmp_path / "tiny.png"
    canvas.save(src)
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", src, driver_1s, "-o", out), 3, "no face found",
                 "smaller than about 40 px", out=out)
