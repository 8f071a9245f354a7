"""Camera cuts: where one continuous shot of a video ends and the next begins.

An edited clip (a concert film cutting between the singer, the pianist and the audience) is
not one person filmed continuously, and comparing frames across a cut compares different
faces. A cut is a frame whose whole picture is unlike the frame before it: the normalized
cross-correlation of their 32x32 grayscale thumbnails is below `MIN_NCC`.

Measured on the 23 clips of ../shared/data: the three cuts of short_hamilton_clip score 0.01,
0.14 and 0.26; between frames of one shot the lowest score is 0.64 (d12, a fast head turn) and
nearly all are above 0.93.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from talkanim.io.video import VideoInfo, iter_frames

THUMB = 32
MIN_NCC = 0.4


def frame_thumbnail(frame: np.ndarray) -> np.ndarray:
    """(THUMB, THUMB) float32 grayscale thumbnail of an RGB frame, zero mean and unit norm
    (all zeros for a flat frame, which then differs from every frame: a fade counts as a cut)."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    small = cv2.resize(gray, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    small -= small.mean()
    norm = float(np.sqrt((small * small).sum()))
    return small / norm if norm > 1e-3 else np.zeros_like(small)


def watch_cuts(frames: Iterable[np.ndarray], cuts: list[int], min_ncc: float = MIN_NCC) -> Iterator[np.ndarray]:
    """Pass `frames` through unchanged, appending to `cuts` the index of every frame that starts
    a new camera shot (it is unlike the frame before it): for a pass that decodes them anyway."""
    previous = None
    for i, frame in enumerate(frames):
        thumbnail = frame_thumbnail(frame)
        if previous is not None and float((previous * thumbnail).sum()) < min_ncc:
            cuts.append(i)
        previous = thumbnail
        yield frame


def split_at_cuts(num_frames: int, cuts: Iterable[int]) -> list[range]:
    """The frame ranges between cuts, in order, covering range(num_frames)."""
    edges = [0, *sorted(c for c in set(cuts) if 0 < c < num_frames), num_frames]
    return [range(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def camera_shots(path: str | Path, *, info: VideoInfo | None = None) -> list[range]:
    """Decode a video once and return its continuous shots as frame ranges (frame indices as
    `iter_frames` yields them)."""
    cuts: list[int] = []
    num_frames = sum(1 for _ in watch_cuts(iter_frames(path, info=info), cuts))
    return split_at_cuts(num_frames, cuts)
