"""talkanim.io video: probe, streamed decode, atomic encode, all with real ffmpeg runs."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from talkanim.errors import InputError, OutputError
from talkanim.io import (
    VideoWriter,
    atomic_output,
    ffmpeg_exe,
    iter_frames,
    probe_video,
)

REPO = Path(__file__).resolve().parents[1]


def _children() -> set[int]:
    """Live or zombie children of this process (any thread), from /proc."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return pids


def _ffmpeg(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        capture_output=True, check=True,
    )


def _count_frames(data_or_path: bytes | Path) -> int:
    """Frames ffmpeg itself decodes (the ffprobe-equivalent check)."""
    src = "pipe:0" if isinstance(data_or_path, bytes) else str(data_or_path)
    res = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", src, "-map", "0:v:0", "-f", "null", "-"],
        input=data_or_path if isinstance(data_or_path, bytes) else None,
        capture_output=True, check=True,
    )
    lines = [ln for ln in res.stderr.decode().replace("\r", "\n").splitlines() if "frame=" in ln]
    return int(lines[-1].split("frame=")[1].split()[0])


def _frames(astronaut: np.ndarray, n: int, h: int, w: int) -> list[np.ndarray]:
    base = astronaut[100 : 100 + h, 100 : 100 + w]
    return [np.ascontiguousarray(np.roll(base, 2 * i, axis=1)) for i in range(n)]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_same_sound(output: Path, source: Path, seconds: float, at_least: float | None = None) -> None:
    """The first `seconds` of `output`'s audio (at least `at_least` s of it, default all) are
    `source`'s, in time: decoded waveforms correlate at r > 0.9 (measured 0.9999 after the AAC
    re-encode) at an offset within one 25 fps frame (measured 0 ms). A silent or shifted track
    fails."""
    from tests.content import audio_alignment, decode_audio, rms

    n = int(seconds * 16000)
    reference, written = decode_audio(source)[:n], decode_audio(output)[:n]
    assert len(written) >= int((seconds if at_least is None else at_least) * 16000) - 160, len(written)
    assert rms(reference) > 0.01
    lag, r = audio_alignment(reference, written, 16000, max_lag_s=0.2)
    assert r > 0.9 and abs(lag) <= 0.04, (lag, r)


# --------------------------------------------------------------------------- reading


def test_probe_and_stream_example_driver(example_driver: Path) -> None:
    info = probe_video(example_driver)
    assert (info.width, info.height, info.fps, info.has_audio) == (320, 320, 25.0, True)
    assert info.num_frames == 100 and info.duration == pytest.approx(4.0, abs=0.05)
    n = 0
    for frame in iter_frames(example_driver, info=info):
        assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
        n += 1
    assert abs(n - 100) <= 1


def test_early_close_leaves_no_ffmpeg(example_driver: Path) -> None:
    before = _children()
    gen = iter_frames(example_driver)
    first = next(gen)
    assert first.shape == (320, 320, 3)
    assert len(_children() - before) == 1  # ffmpeg is running
    gen.close()
    assert _children() - before == set()  # killed and reaped: no zombie

    for i, _ in enumerate(iter_frames(example_driver)):  # break out of a for loop
        if i == 3:
            break
    del _
    import gc

    gc.collect()
    assert _children() - before == set()


def test_rotation_metadata_gives_display_orientation(tmp_path: Path, example_driver: Path) -> None:
    landscape = tmp_path / "land.mp4"
    _ffmpeg("-i", str(example_driver), "-t", "1", "-vf", "crop=320:240:0:0", "-an", str(landscape))
    rotated = tmp_path / "rot.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(landscape), "-c", "copy", str(rotated))
    info = probe_video(rotated)
    assert (info.width, info.height) == (240, 320) and not info.has_audio
    frames = list(iter_frames(rotated, info=info))
    assert frames and all(f.shape == (320, 240, 3) for f in frames)
    upright = next(iter_frames(landscape))
    # Display rotation 90 (counter-clockwise in ffmpeg's convention) = some quarter turn:
    # the decoded frame equals the upright one turned by +-90 degrees.
    err = min(np.abs(np.rot90(upright, k).astype(int) - frames[0]).mean() for k in (1, 3))
    assert err < 3


def test_bad_videos_are_one_line_input_errors(tmp_path: Path, example_driver: Path) -> None:
    rand = tmp_path / "random.mp4"
    rand.write_bytes(np.random.default_rng(0).bytes(50_000))
    text = tmp_path / "text.mp4"
    text.write_text("hello\n")
    audio = tmp_path / "audio.m4a"
    _ffmpeg("-i", str(example_driver), "-vn", "-c:a", "copy", str(audio))
    empty = tmp_path / "empty.mp4"  # ffmpeg writes no video track for zero frames
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:r=25", "-frames:v", "0", "-c:v", "libx264",
            str(empty))
    cases = {
        rand: "not a video",
        text: "not a video",
        audio: "audio-only",
        empty: "no video stream",
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "folder",
    }
    for path, msg in cases.items():
        with pytest.raises(InputError, match=msg) as err:
            probe_video(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(InputError):
            iter_frames(path)  # probes eagerly: errors come before iteration


def test_truncated_mp4_is_refused(tmp_path: Path, example_driver: Path) -> None:
    data = example_driver.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(InputError, match="truncated") as err:
        probe_video(cut)
    assert str(cut) in str(err.value)

    # moov at the end (no faststart) and cut before it: also a clean refusal.
    tail_moov = tmp_path / "tail.mp4"
    _ffmpeg("-i", str(example_driver), "-c", "copy", str(tail_moov))
    data = tail_moov.read_bytes()
    if data[4:8] == b"ftyp" and b"moov" not in data[: len(data) // 2]:
        cut2 = tmp_path / "cut2.mp4"
        cut2.write_bytes(data[: len(data) // 2])
        with pytest.raises(InputError, match="truncated"):
            probe_video(cut2)


def test_dash_named_file_is_not_an_option(tmp_path: Path, example_driver: Path,
                                          monkeypatch) -> None:
    odd = tmp_path / "-y odd:name.mp4"
    odd.write_bytes(example_driver.read_bytes())
    monkeypatch.chdir(tmp_path)
    info = probe_video("-y odd:name.mp4")
    assert info.num_frames == 100


# --------------------------------------------------------------------------- writing


def test_writer_odd_size_with_audio_round_trip(tmp_path: Path, astronaut: np.ndarray,
                                               example_driver: Path) -> None:
    frames = _frames(astronaut, 30, 241, 321)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 321, 241, 25, audio_from=example_driver, num_frames=30) as vw:
        assert (vw.out_width, vw.out_height) == (322, 242)
        for f in frames:
            vw.write(f)
    assert _leftovers(tmp_path) == ["out.mp4"]
    info = probe_video(out)
    assert (info.width, info.height) == (322, 242)  # rounded up to even by padding
    assert info.fps == 25.0 and info.has_audio
    assert abs(info.num_frames - 30) <= 1 and info.duration == pytest.approx(1.2, abs=0.15)
    assert_same_sound(out, example_driver, seconds=1.2)
    back = list(iter_frames(out, info=info))
    assert abs(len(back) - 30) <= 1
    # Content survives (crf 20), padding repeats the edge instead of adding a black line.
    diff = np.abs(back[10][:241, :321].astype(int) - frames[10]).mean()
    assert diff < 6, diff
    assert np.abs(back[10][:241, 321].astype(int) - back[10][:241, 320]).mean() < 8
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # normal permissions, not mkstemp's 0600


def test_audio_ends_with_the_video_when_frames_arrive_slowly(tmp_path: Path, example_driver: Path) -> None:
    """animate feeds the writer at rendering speed and tells it the frame count; the driver's
    audio must stop at the last frame (ffmpeg's -shortest alone let 0.14-2.4 s more through)."""
    import time

    out = tmp_path / "slow.mp4"
    with VideoWriter(out, 160, 120, 25, audio_from=example_driver, num_frames=30) as vw:
        for i in range(30):
            vw.write(np.full((120, 160, 3), 8 * i, np.uint8))
            time.sleep(0.03)
    info = probe_video(out)
    assert info.num_frames == 30 and info.has_audio
    assert info.duration == pytest.approx(1.2, abs=0.04)
    assert_same_sound(out, example_driver, seconds=1.2)


def test_short_audio_is_padded_and_unknown_lengths_still_get_audio(tmp_path: Path, example_driver: Path) -> None:
    """6 s of video over the driver's 4 s of audio: padded with silence to exactly 6 s; and
    without a frame count (ffmpeg's -shortest decides) the audio is still there."""
    frame = np.zeros((120, 160, 3), np.uint8)
    padded, unknown = tmp_path / "padded.mp4", tmp_path / "unknown.mp4"
    with VideoWriter(padded, 160, 120, 25, audio_from=example_driver, num_frames=150) as vw:
        for _ in range(150):
            vw.write(frame)
    info = probe_video(padded)
    assert info.has_audio and info.num_frames == 150 and info.duration == pytest.approx(6.0, abs=0.04)
    assert_same_sound(padded, example_driver, seconds=4.0)
    from tests.content import decode_audio, rms

    tail = decode_audio(padded)[int(4.1 * 16000):]
    assert len(tail) >= int(1.8 * 16000) and rms(tail) < 1e-3  # the padding is silence
    with VideoWriter(unknown, 160, 120, 25, audio_from=example_driver) as vw:
        for _ in range(10):
            vw.write(frame)
    info = probe_video(unknown)
    assert info.has_audio and info.num_frames == 10 and info.duration >= 0.4
    # ffmpeg's -shortest cuts at an AAC frame near the end: 0.384 s of the 0.4 s seen here
    assert_same_sound(unknown, example_driver, seconds=0.4, at_least=0.3)


def test_writer_without_audio_and_odd_fps(tmp_path: Path, astronaut: np.ndarray) -> None:
    out = tmp_path / "silent.mp4"
    with VideoWriter(out, 64, 48, 30000 / 1001) as vw:
        for f in _frames(astronaut, 12, 48, 64):
            vw.write(f)
    info = probe_video(out)
    assert not info.has_audio and info.fps == pytest.approx(29.97, abs=0.01)
    assert info.num_frames == 12


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_writer_leaves_nothing(tmp_path: Path, astronaut: np.ndarray,
                                                exc: type[BaseException]) -> None:
    before = _children()
    with pytest.raises(exc):
        with VideoWriter(tmp_path / "out.mp4", 64, 64, 25) as vw:
            for f in _frames(astronaut, 5, 64, 64):
                vw.write(f)
            raise exc()
    assert _leftovers(tmp_path) == []
    assert _children() - before == set()


def test_existing_output_survives_a_failed_write(tmp_path: Path, astronaut: np.ndarray) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 64, 64, 25) as vw:
            vw.write(_frames(astronaut, 1, 64, 64)[0])
            raise RuntimeError
    assert out.read_bytes() == b"previous result" and _leftovers(tmp_path) == ["out.mp4"]


def test_unwritable_outputs_raise_output_error(tmp_path: Path, astronaut: np.ndarray) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "such" / "out.mp4", 64, 64, 25)

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        # root ignores permission bits; sysfs refuses new files even to root.
        target = ro / "out.mp4" if os.geteuid() != 0 else Path("/sys/kernel/talkanim_out.mp4")
        with pytest.raises(OutputError, match="cannot write") as err:
            VideoWriter(target, 64, 64, 25)
        assert str(target) in str(err.value)
    finally:
        ro.chmod(0o755)
    assert _leftovers(ro) == []

    # ffmpeg itself fails (no muxer for this extension): OutputError with its reason, no file.
    with pytest.raises(OutputError, match="cannot write video"):
        with VideoWriter(tmp_path / "out.nosuchformat", 64, 64, 25) as vw:
            for f in _frames(astronaut, 3, 64, 64):
                vw.write(f)
    assert _leftovers(tmp_path) == ["ro"]


def _run_script(code: str, cwd: Path, **kw) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_file_size_limit_mid_write_is_output_error(tmp_path: Path) -> None:
    # Stands in for a full disk: the kernel stops ffmpeg's writes past 200 kB (SIGXFSZ).
    proc = _run_script(
        """
        import resource, numpy as np
        from talkanim.io import VideoWriter
        from talkanim.errors import OutputError
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        rng = np.random.default_rng(0)
        try:
            with VideoWriter("out.mp4", 256, 256, 25, preset="ultrafast", crf=0) as vw:
                for _ in range(60):
                    vw.write(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        except OutputError as e:
            print("OutputError:", e)
        """,
        tmp_path,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("OutputError: cannot write video"), out
    assert _leftovers(tmp_path) == []


def test_dash_streams_fragmented_mp4_to_stdout(tmp_path: Path) -> None:
    proc = _run_script(
        """
        import sys, numpy as np
        from talkanim.io import VideoWriter
        print("text before the video would corrupt it", file=sys.stderr)
        with VideoWriter("-", 96, 64, 25) as vw:
            for i in range(20):
                vw.write(np.full((64, 96, 3), i * 10, np.uint8))
        """,
        tmp_path,
    )
    data, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert data[4:8] == b"ftyp" and b"moof" in data  # fragmented MP4
    assert _count_frames(data) == 20
    assert _leftovers(tmp_path) == []


def test_sigint_mid_write_cleans_up(tmp_path: Path) -> None:
    proc = _run_script(
        """
        import sys, numpy as np
        from talkanim.io import VideoWriter
        with VideoWriter("out.mp4", 128, 128, 25) as vw:
            frame = np.zeros((128, 128, 3), np.uint8)
            vw.write(frame)
            print("ready", flush=True)
            while True:
                vw.write(frame)
        """,
        tmp_path,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()  # never leave an endless writer behind (e.g. SIGINT ignored by the caller)
        proc.communicate()
        raise
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert _leftovers(tmp_path) == []
    # The ffmpeg it started (own session, so it never saw the SIGINT) was killed, not orphaned.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(tmp_path).encode() not in cmdline.read_bytes()
        except OSError:
            pass


# --------------------------------------------------------------------------- atomic_output


def test_atomic_output(tmp_path: Path) -> None:
    target = tmp_path / "track.npz"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".track.npz.")
        assert tmp.name.endswith(".tmp.npz") and tmp.exists()
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done" and _leftovers(tmp_path) == ["track.npz"]

    for exc in (ValueError, KeyboardInterrupt):
        with pytest.raises(exc):
            with atomic_output(target) as tmp:
                tmp.write_bytes(b"half")
                raise exc()
        assert target.read_bytes() == b"done" and _leftovers(tmp_path) == ["track.npz"]

    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "missing" / "x.mp4"):
            pass


def test_variable_frame_rate_comes_out_constant(tmp_path: Path, example_driver: Path) -> None:
    vfr = tmp_path / "vfr.mp4"  # every 4th frame dropped: irregular timestamps, audio kept
    _ffmpeg("-i", str(example_driver), "-vf", r"select=lt(mod(n\,4)\,3)", "-fps_mode", "vfr",
            "-c:a", "copy", str(vfr))
    info = probe_video(vfr)
    assert info.num_frames == 75 and info.has_audio
    n = sum(1 for _ in iter_frames(vfr, info=info))
    # Frames at a constant info.fps spanning the clip: written at that rate they match the audio.
    assert abs(n / info.fps - 4.0) < 0.15, (n, info.fps)
