"""Helpers for tests that check what a user receives: decoded frames and audio, landmarks
re-detected on an output, and drivers the tests make themselves with known content.

Everything here decodes with the bundled ffmpeg directly (not `talkanim.io`), so a test that
uses it does not trust the code it checks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


# ------------------------------------------------------------------ running the CLI
def run_cli(*args, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m talkanim ARGS` as a user runs it; stdout/stderr captured as bytes."""
    return subprocess.run([sys.executable, "-m", "talkanim", *map(str, args)], capture_output=True,
                          cwd=cwd, input=stdin, env=env, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The error the user sees: exactly one line on stderr starting with 'error:', no traceback."""
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert exit 0 (showing the end of stderr otherwise) and return `proc`."""
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc


# ------------------------------------------------------------------ decoding
def read_frames(path: Path) -> np.ndarray:
    """Every frame stored in a video file, as (N, H, W, 3) uint8 RGB (no frame dropped or
    repeated to fill a constant rate: what was encoded)."""
    banner = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode(errors="replace")
    size = re.search(r"Video: .*?, (\d+)x(\d+)[, ]", banner)
    assert size, f"no video stream in {path}:\n{banner}"
    w, h = int(size.group(1)), int(size.group(2))
    proc = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)


def first_timestamp(path: Path, stream: str = "v") -> float:
    """Presentation time (s) of the first frame of the video ("v") or audio ("a") stream."""
    filt = ["-vf", "showinfo"] if stream == "v" else ["-af", "ashowinfo"]
    proc = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-map", f"0:{stream}:0", *filt, "-frames:" + stream,
                           "1", "-f", "null", "-"], capture_output=True)
    found = re.search(r"pts_time:\s*(-?[\d.]+)", proc.stderr.decode(errors="replace"))
    assert found, proc.stderr.decode(errors="replace")[-2000:]
    return float(found.group(1))


def decode_audio(path: Path, rate: int = 16000) -> np.ndarray:
    """The first audio stream of `path`, mono float32 in [-1, 1] at `rate` Hz; empty when the
    file has no audio stream."""
    banner = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True).stderr.decode(errors="replace")
    if not re.search(r"Stream #.*: Audio:", banner):
        return np.zeros(0, np.float32)
    proc = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
                           "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.int16).astype(np.float32) / 32768.0


def audio_alignment(reference: np.ndarray, candidate: np.ndarray, rate: int,
                    max_lag_s: float = 0.5) -> tuple[float, float]:
    """(lag in seconds, normalized correlation at that lag) of `candidate` against `reference`,
    over their common length. Lag > 0: the candidate is late. The correlation is 1 for the same
    waveform, about 0 for unrelated sound, and 0 when either is silent."""
    n = min(len(reference), len(candidate))
    a = reference[:n].astype(np.float64) - reference[:n].mean()
    b = candidate[:n].astype(np.float64) - candidate[:n].mean()
    if n == 0 or not a.any() or not b.any():
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xcorr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    max_lag = int(max_lag_s * rate)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    values = xcorr[lags]
    best = int(np.argmax(values))
    return lags[best] / rate, float(values[best] / np.sqrt((a * a).sum() * (b * b).sum()))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


# ------------------------------------------------------------------ landmarks on outputs
def track(frames: np.ndarray, fps: float = 25.0, detector=None) -> np.ndarray:
    """68 landmarks per frame, re-detected (with dlib unless `detector` is given) and NOT
    smoothed: (N, 68, 2)."""
    from talkanim.config import TrackConfig
    from talkanim.landmarks import make_detector, track_frames

    frames = np.asarray(frames).astype(np.uint8, copy=False)
    h, w = frames.shape[1:3]
    result = track_frames(iter(frames), detector or make_detector("dlib"), fps=fps, size=(w, h),
                          config=TrackConfig(smooth=False))
    assert result.valid.all(), f"no face found on output frames {np.flatnonzero(~result.valid)}"
    return result.points


def head_pose(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per frame, the similarity that takes the reference's rigid points (jaw ends, nose, eye
    corners) to the frame's: (N, 4) = translation x, y (px), rotation (degrees), log scale."""
    from talkanim.motion.geometry import STABLE_POINTS

    out = []
    ref = np.asarray(reference, np.float64)[STABLE_POINTS]
    rc = ref - ref.mean(0)
    for pts in np.asarray(points, np.float64):
        p = pts[STABLE_POINTS]
        pc = p - p.mean(0)
        a = (rc * pc).sum() / (rc * rc).sum()
        b = (rc[:, 0] * pc[:, 1] - rc[:, 1] * pc[:, 0]).sum() / (rc * rc).sum()
        shift = p.mean(0) - ref.mean(0)
        out.append([shift[0], shift[1], np.degrees(np.arctan2(b, a)), np.log(np.hypot(a, b))])
    return np.array(out)


# ------------------------------------------------------------------ making inputs
def write_video(path: Path, frames, fps: float, audio_from: Path | None = None, crf: int = 16) -> Path:
    """Encode RGB frames (H.264, yuv420p) with the bundled ffmpeg, with the first
    len(frames) / fps seconds of `audio_from`'s audio (AAC) when given."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "pipe:0"]
    if audio_from is not None:
        cmd += ["-i", str(audio_from), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k",
                "-t", f"{len(frames) / fps}"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", str(path)]
    data = b"".join(np.ascontiguousarray(f, np.uint8).tobytes() for f in frames)
    proc = subprocess.run(cmd, input=data, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return path


def translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`image` moved by (dx, dy) px (subpixel, bilinear), edges replicated."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# The marked driver: the astronaut's head moving diagonally at a constant speed (so the head
# position in an output says which driver frame it shows), and a red square at the top of the
# frame moving right by MARKER_STEP px per frame (so a driver frame shown in a preview says its
# own index).
MARKER = (255, 0, 0)
MARKER_SIZE = 12
MARKER_STEP = 6
MARKER_X0 = 4


def marked_frames(astronaut: np.ndarray, n: int, travel: float = 24.0) -> tuple[list[np.ndarray], np.ndarray]:
    """`n` 320x320 driver frames of the astronaut, its head moving by `travel` px along both
    axes over the clip, each with the frame's marker; and the (n, 2) shifts applied."""
    assert MARKER_X0 + MARKER_STEP * (n - 1) + MARKER_SIZE <= 320
    shifts = np.stack([np.linspace(-travel / 2, travel / 2, n)] * 2, axis=1)
    frames = []
    for i, (dx, dy) in enumerate(shifts):
        frame = translate(astronaut, dx, dy)[0:320, 66:386].copy()
        x = MARKER_X0 + MARKER_STEP * i
        frame[4:4 + MARKER_SIZE, x:x + MARKER_SIZE] = MARKER
        frames.append(frame)
    return frames, shifts


def marker_index(frame: np.ndarray, scale: float = 1.0) -> int:
    """The driver frame index a marked frame (or a copy of it scaled by `scale`) shows."""
    band = frame[: int(24 * scale) + 2].astype(int)
    red = (band[..., 0] > 180) & (band[..., 1] < 90) & (band[..., 2] < 90)
    assert red.sum() >= 0.5 * (MARKER_SIZE * scale) ** 2, "no marker in this frame"
    cx = np.nonzero(red)[1].mean() / scale
    return int(round((cx - MARKER_X0 - (MARKER_SIZE - 1) / 2) / MARKER_STEP))


def nearest_frames(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """For each observed landmark set (N, 68, 2), the index of the nearest expected one
    (M, 68, 2) by mean point distance."""
    d = np.linalg.norm(observed[:, None] - expected[None], axis=-1).mean(axis=-1)
    return d.argmin(axis=1)


def sharpness(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of the grey image (inside `mask`): fine detail."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    return float(lap[mask].var() if mask is not None else lap.var())
