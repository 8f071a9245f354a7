"""What the landmark stage hands to the rest of the pipeline.

Coordinates are pixels (x, y) in the image or video frame they were measured on, in the iBUG-68
layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67. Pupils are ordered like
the eyes: index 0 is the eye of points 36-41, index 1 the eye of points 42-47.

The mesh backend also gives a dense mesh, (478, 3) float32 per face, in MediaPipe's
`refine_landmarks=True` order so its published index lists apply: vertices 0-467 of the
face mesh, then the iris of the eye of points 36-41 (468 centre, 469-472 on the iris edge),
then the iris of the other eye (473 centre, 474-477). x, y are pixels like the points; z is
depth in the same pixel scale (smaller is nearer the camera; the origin is near the head's
centre). `talkanim.landmarks.mesh_layout` holds the index tables. dlib and FAN give no mesh
(None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One face in one image."""

    points: np.ndarray  # (68, 2) float32
    box: tuple[float, float, float, float]  # detector box x0, y0, x1, y1
    pupils: np.ndarray | None = None  # (2, 2) float32
    score: float = 1.0
    mesh: np.ndarray | None = None  # (478, 3) float32, mesh backend only (468: fit_face(..., eyes=False))

    @property
    def size(self) -> float:
        """Face size in pixels: the diagonal of the landmarks' bounding box."""
        span = self.points.max(axis=0) - self.points.min(axis=0)
        return float(np.hypot(*span))


@dataclass
class LandmarkTrack:
    """Landmarks of every frame of a driving video.

    Frames where no face was found hold the last good frame's points and have `valid` False.
    """

    points: np.ndarray  # (N, 68, 2) float32
    pupils: np.ndarray  # (N, 2, 2) float32
    valid: np.ndarray  # (N,) bool
    fps: float
    size: tuple[int, int]  # (width, height) of the frames
    backend: str
    # Frames where a new camera shot of the video starts (talkanim.io.watch_cuts), ascending.
    cuts: tuple[int, ...] = ()
    # (N, 478, 3) float32 dense mesh per frame (mesh backend; None for dlib/FAN), smoothed,
    # held and cut like the points.
    mesh: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_missing(self) -> int:
        return int((~self.valid).sum())

    def camera_shots(self) -> list[range]:
        """The frame ranges of the video's continuous camera shots (split at `cuts`)."""
        from talkanim.io.cuts import split_at_cuts

        return split_at_cuts(self.num_frames, self.cuts)
