"""A talking clip as speech training and evaluation see it: its audio features and the mouth
tracked in its video, on one clock.

Audio features run at 100 Hz from sample 0 of the audio track; video frame i is at i / fps.
Mouth targets come from the project's landmark tracker (any backend, `--landmarks`), cached on
disk because tracking is the slow part and the same clips are prepared many times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkanim.landmarks import load_track, mouth_opening, save_track
from talkanim.landmarks.types import LandmarkTrack
from talkanim.speech.audio import read_audio
from talkanim.speech.face import MOUTH_POINTS, rest_shape, to_canonical
from talkanim.speech.features import FEATURE_RATE, N_MELS, SpeechStats, frame_features, scan_speech, stream_features


@dataclass
class SpeechClip:
    """One clip: raw tracked landmarks and raw audio features (nothing normalized yet)."""

    path: Path
    fps: float
    points: np.ndarray  # (N, 68, 2) tracked landmarks, frame pixels
    valid: np.ndarray  # (N,) a face was found (and the frame is in the longest camera shot)
    log_mel: np.ndarray  # (T, N_MELS) dB at 100 Hz
    level: np.ndarray  # (T,) dBFS at 100 Hz
    stats: SpeechStats

    @property
    def num_frames(self) -> int:
        return int(len(self.points))


def cached_tracker(backend: str = "dlib", cache_dir: Path | None = None):
    """`path -> LandmarkTrack` with the landmark stage's raw tracker, cached as .npz track files
    under `cache_dir` (keyed by path, size, modification time and backend)."""
    from talkanim.train.prepare import default_tracker

    track = default_tracker(backend)

    def run(path: Path) -> LandmarkTrack:
        if cache_dir is None:
            return track(path)
        st = Path(path).stat()
        key = hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{backend}".encode()).hexdigest()[:16]
        file = Path(cache_dir) / backend / f"{Path(path).stem}-{key}.npz"
        if file.is_file():
            return load_track(file)
        result = track(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        save_track(file, result)
        return result

    return run


def clip_audio(path: Path) -> tuple[np.ndarray, np.ndarray, SpeechStats]:
    """(log_mel (T, N_MELS), level (T,), stats) of a clip's audio track at 100 Hz."""
    wave = read_audio(path)
    stats = scan_speech([wave])
    blocks = list(stream_features([wave]))
    log_mel = np.concatenate([m for m, _ in blocks]) if blocks else np.zeros((0, N_MELS), np.float32)
    level = np.concatenate([lv for _, lv in blocks]) if blocks else np.zeros(0, np.float32)
    return log_mel, level, stats


def load_clip(path: Path, tracker, audio: tuple | None = None) -> SpeechClip:
    """Track `path`'s face and compute its audio features (or take `audio` from `clip_audio`).
    Frames outside the longest camera shot are marked invalid (across a cut the face may be
    someone else)."""
    log_mel, level, stats = audio if audio is not None else clip_audio(path)
    track = tracker(Path(path))
    valid = np.asarray(track.valid, bool).copy()
    shot = max(track.camera_shots(), key=len)
    valid[: shot.start] = False
    valid[shot.stop:] = False
    return SpeechClip(Path(path), float(track.fps), np.asarray(track.points, np.float32), valid,
                      log_mel, level, stats)


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """Feature-frame positions (fractional, 100 Hz) of video frames 0..num_frames-1."""
    return np.arange(num_frames) * (FEATURE_RATE / fps)


def at_frames(series: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of a 100 Hz series (T, ...) at fractional positions, edges held."""
    series = np.asarray(series)
    if len(series) == 0:
        return np.zeros((len(positions),) + series.shape[1:], series.dtype)
    pos = np.clip(positions, 0, len(series) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(series) - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (series.ndim - 1))
    return (series[lo] * (1 - w) + series[hi] * w).astype(np.float32)


def mouth_targets(points: np.ndarray, valid: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth offsets (N, P, 2) from the clip's own rest shape, in the template's canvas, and the
    rest shape (68, 2). Head pose is removed frame by frame; the rest shape is the median of the
    clip's most closed valid frames, so each person's own mouth shape is not learned as speech."""
    canonical = to_canonical(points, template)
    opening = mouth_opening(canonical)
    rest = rest_shape(canonical[valid], opening[valid])
    return canonical[:, MOUTH_POINTS] - rest[MOUTH_POINTS], rest


def smooth3(x: np.ndarray) -> np.ndarray:
    """Centred 3-frame moving average along axis 0 (no lag): tames tracker jitter in targets."""
    x = np.asarray(x, np.float32)
    if len(x) < 3:
        return x.copy()
    pad = np.concatenate([x[:1], x, x[-1:]])
    return ((pad[:-2] + pad[1:-1] + pad[2:]) / 3.0).astype(np.float32)


__all__ = ["SpeechClip", "at_frames", "cached_tracker", "clip_audio", "frame_features", "frame_times", "load_clip",
           "mouth_targets", "smooth3"]
