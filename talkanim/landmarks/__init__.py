"""Landmark stage: face detection, 68-point landmarks, tracking, smoothing, pupils, track files.

Backends ("mesh" offline face mesh with iris, the default; "dlib" offline; "fan"
face-alignment) share the `LandmarkDetector` interface and the iBUG-68 layout; the mesh backend
adds a 478-point mesh (`Face.mesh`, `LandmarkTrack.mesh`). See `types.py` for the `Face` /
`LandmarkTrack` contract. `matte.person_matte` gives a portrait's person matte.
"""

from __future__ import annotations

from .detector import LandmarkDetector, detect_face, make_detector
from .measures import eye_centres, eye_opening, inter_ocular, mouth_opening
from .pupils import locate_pupils
from .smoothing import OneEuroFilter
from .tracker import smooth_track, track_frames
from .trackfile import load_track, save_track
from .types import Face, LandmarkTrack

__all__ = [
    "Face",
    "LandmarkDetector",
    "LandmarkTrack",
    "OneEuroFilter",
    "detect_face",
    "eye_centres",
    "eye_opening",
    "inter_ocular",
    "load_track",
    "locate_pupils",
    "make_detector",
    "mouth_opening",
    "save_track",
    "smooth_track",
    "track_frames",
]
