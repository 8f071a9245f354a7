"""Bad and unusual driving videos, through the real command line."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time

import numpy as np
import pytest

from rb_helpers import EXAMPLES, assert_fails, cli_cmd, ffmpeg, probe_frames, run_cli, stderr_of


def _animate_json(portrait, driver, out, *extra):
    proc = run_cli("animate", portrait, driver, "-o", out, "--json", "-q", *extra)
    assert proc.returncode == 0, stderr_of(proc)
    assert "Traceback" not in stderr_of(proc)
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_truncated_mp4(portrait, driver_1s, tmp_path):
    bad = tmp_path / "truncated.mp4"
    data = driver_1s.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    line = assert_fails(run_cli("animate", portrait, bad, "-o", out), 2, str(bad.name), out=out)
    assert "truncated" in line or "damaged" in line, line


def test_random_bytes_named_mp4(portrait, tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", portrait, bad, "-o", out), 2, "not a video", out=out)


def test_audio_only_file(portrait, tmp_path):
    audio = tmp_path / "sine.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", audio)
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", portrait, audio, "-o", out), 2, "audio-only", out=out)


def test_zero_frame_video(portrait, tmp_path):
    # A y4m stream header with no frame after it: a video stream that holds nothing.
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"YUV4MPEG2 W64 H64 F25:1 Ip A1:1 C420jpeg\n")
    out = tmp_path / "out.mp4"
    line = assert_fails(run_cli("animate", portrait, empty, "-o", out), 2, out=out)
    assert "no frames" in line or "no video frames" in line, line


def test_one_pixel_video_has_no_face(portrait, tmp_path):
    tiny = tmp_path / "tiny.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=1x1:r=25", "-t", "0.4", "-c:v", "ffv1", tiny)
    out = tmp_path / "out.mp4"
    assert_fails(run_cli("animate", portrait, tiny, "-o", out), 3, "no face", out=out)


def test_variable_frame_rate_keeps_length_and_audio(portrait, tmp_path):
    # 2 s: the first second at 25 fps, the second at 12.5 fps (every other frame dropped,
    # timestamps kept), with the driver's audio.
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "2", "-vf", "select='lt(t\\,1)+not(mod(n\\,2))'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", vfr)
    out = tmp_path / "out.mp4"
    result = _animate_json(portrait, vfr, out)
    frames, seconds, audio, _ = probe_frames(out)
    assert audio and result["audio"]
    assert frames == result["frames"]
    # Output timeline = driver timeline (audio sync): within one output frame of 2 s.
    assert abs(seconds - 2.0) <= 1.0 / result["fps"] + 1e-6, (frames, result["fps"])
    # ... and the sound is the clip's first 2 s at its own time (measured r 0.9999, 0 ms)
    from tests.content import audio_alignment, decode_audio

    lag, r = audio_alignment(decode_audio(EXAMPLES / "driver.mp4")[:32000], decode_audio(out), 16000)
    assert r > 0.9 and abs(lag) <= 1.0 / result["fps"], (lag, r)


@pytest.mark.xfail(strict=True, reason="a variable-frame-rate driver is decoded up to 0.1 s late (see the docstring)")
def test_variable_frame_rate_keeps_the_mouth_in_sync(portrait, tmp_path):
    """The portrait's mouth at time t of a variable-frame-rate driver's output is what it is at t
    when the same 2 s play at a constant 25 fps: the best match within 1.5 output frames (80
    ms). Compared with that render rather than with the driver's own mouth, so the readout's
    quirks (dlib reads a mouth a little differently when the eyes above it are shut) cancel.

    Known bug: measured best shift -0.09 to -0.12 s (r 0.75-0.81). The decoder's `-fps_mode cfr
    -r <average rate>` shows each output frame's content 0.06 s late on average (up to 0.1 s:
    frame contents matched against the constant-rate decode); the fps filter with round=near
    decodes it on time (offsets within +-0.05 s) but moves the cut indices of the shared
    Hamilton clip, so it is not in yet."""
    from tests.content import read_frames, track
    from talkanim.landmarks import mouth_opening

    vfr, cfr = tmp_path / "vfr.mp4", tmp_path / "cfr.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "2", "-vf", "select='lt(t\\,1)+not(mod(n\\,2))'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", vfr)
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", cfr)
    result = _animate_json(portrait, vfr, tmp_path / "out.mp4")
    _animate_json(portrait, cfr, tmp_path / "steady.mp4")
    steady = mouth_opening(track(read_frames(tmp_path / "steady.mp4")))
    shown = mouth_opening(track(read_frames(tmp_path / "out.mp4")))
    times = np.arange(len(shown)) / result["fps"]
    shifts = np.arange(-0.2, 0.201, 0.01)
    at = lambda s: np.clip(np.round((times + s) * 25).astype(int), 0, len(steady) - 1)  # noqa: E731
    fit = [np.corrcoef(shown, steady[at(s)])[0, 1] for s in shifts]
    best = shifts[int(np.argmax(fit))]
    print(f"mouth against the constant-rate render: best shift {best:+.2f} s, r {max(fit):.3f}")
    assert abs(best) <= 1.5 / result["fps"] and max(fit) > 0.8, (best, max(fit))


def test_odd_dimensions(tmp_path, astronaut):
    from PIL import Image

    drv = tmp_path / "odd.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "1", "-vf", "scale=321:241", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", "-preset", "ultrafast", drv)
    src = tmp_path / "odd.png"
    Image.fromarray(astronaut).resize((255, 201)).save(src)
    out = tmp_path / "out.mp4"
    result = _animate_json(src, drv, out)
    frames, _, _, size = probe_frames(out)
    assert size == (256, 202) and (result["width"], result["height"]) == (256, 202)
    assert frames == 25


def test_rotation_metadata(portrait, tmp_path):
    # Frames stored sideways (transposed), with a display matrix that turns them upright:
    # the face is only found when the rotation is honoured.
    sideways = tmp_path / "sideways.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "1", "-vf", "crop=320:240,transpose=1",
           "-c:v", "libx264", "-preset", "ultrafast", "-an", sideways)
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", sideways, "-c", "copy", rotated)
    from talkanim.io import probe_video

    assert (probe_video(rotated).width, probe_video(rotated).height) in ((320, 240), (240, 320))
    out = tmp_path / "out.mp4"
    result = _animate_json(portrait, rotated, out)
    assert result["driver_frames_without_face"] <= 2, result
    assert probe_frames(out)[0] == 25


def _peak_rss_mb(cmd) -> tuple[float, subprocess.CompletedProcess]:
    """Peak RSS of one child (GNU time when present, else the RUSAGE_CHILDREN high-water mark)."""
    if os.path.exists("/usr/bin/time"):
        proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS=%M", *cmd], capture_output=True, timeout=600)
        line = [ln for ln in stderr_of(proc).splitlines() if ln.startswith("MAXRSS=")][-1]
        return int(line.split("=")[1]) / 1024, proc
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024, proc  # high-water mark over all children so far


@pytest.mark.slow
def test_long_driver_is_streamed(portrait, tmp_path):
    """A 60 s driver (1500 frames) must not take much more memory than a 5 s one."""
    short = tmp_path / "d5.mp4"
    long = tmp_path / "d60.mp4"
    ffmpeg("-i", EXAMPLES / "driver.mp4", "-t", "5", "-c", "copy", short)
    # Re-encoded at a constant 25 fps: loop seams leave timestamp gaps that a stream copy keeps.
    ffmpeg("-stream_loop", "14", "-i", EXAMPLES / "driver.mp4", "-t", "60", "-r", "25", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", long)
    started = time.perf_counter()
    rss_short, p1 = _peak_rss_mb(cli_cmd("animate", portrait, short, "-o", tmp_path / "s.mp4", "-q"))
    rss_long, p2 = _peak_rss_mb(cli_cmd("animate", portrait, long, "-o", tmp_path / "l.mp4", "-q"))
    assert p1.returncode == 0 and p2.returncode == 0, stderr_of(p2)
    print(f"peak RSS: 5 s driver {rss_short:.0f} MB, 60 s driver {rss_long:.0f} MB "
          f"({time.perf_counter() - started:.0f} s)")
    # Streamed: only the (N, 68, 2) track grows with length (~0.5 MB per minute).
    assert rss_long < rss_short * 1.25 + 50, (rss_short, rss_long)
    assert abs(probe_frames(tmp_path / "l.mp4")[0] - 1500) <= 1  # every frame of 60 s at 25 fps
