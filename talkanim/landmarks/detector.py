"""Choosing a landmark backend and finding the face of a still image."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError, NoFaceError, WeightsError
from .pupils import locate_pupils
from .types import Face


@runtime_checkable
class LandmarkDetector(Protocol):
    """What every landmark backend offers (iBUG-68 layout, pixel coordinates, RGB uint8 input)."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in the image, largest first."""
        ...

    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) float32 landmarks inside a face box (x0, y0, x1, y1): used for tracking."""
        ...


def make_detector(
    backend: str = "auto",
    *,
    device: str = "auto",
    detect_max_side: int = 640,
    log: Callable[[str], None] | None = None,
) -> LandmarkDetector:
    """Build a landmark backend: "mesh" (offline, dense mesh with iris), "dlib" (offline, 68
    points), "fan" (face-alignment) or "auto".

    "auto" is the mesh: it ships inside talkanim (no download), sees blinks and irises that
    dlib's 68-point model misses, and tracks at video rate on a CPU; FAN runs only when asked
    for (its 68 points carry no mesh, eyelid refinement or iris). If the shipped mesh model
    cannot be loaded (a damaged install), "auto" says so through `log` and uses dlib.
    "fan" without weights and without internet raises BackendUnavailableError.
    """
    from . import fan_backend
    from .dlib_backend import DlibDetector
    from .mesh_backend import MeshDetector

    if backend == "mesh":
        return MeshDetector(device=device, detect_max_side=detect_max_side, log=log)
    if backend == "dlib":
        return DlibDetector(detect_max_side=detect_max_side, log=log)
    if backend == "fan":
        return fan_backend.FanDetector(device=device, detect_max_side=detect_max_side, log=log)
    if backend == "auto":
        try:
            det = MeshDetector(device=device, detect_max_side=detect_max_side, log=log)
        except WeightsError as exc:
            if log:
                log(f"landmarks: mesh unavailable ({exc}); using dlib")
            return DlibDetector(detect_max_side=detect_max_side, log=log)
        if log:
            log(f"landmarks: mesh (face mesh with iris, {det.device})")
        return det
    raise InputError(f"unknown landmark backend {backend!r} (choose auto, mesh, dlib or fan)")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def detect_face(
    image: np.ndarray,
    detector: LandmarkDetector,
    *,
    face_index: int | None = None,
    name: str = "the image",
    log: Callable[[str], None] | None = None,
) -> Face:
    """The face to animate in a still: the largest, or the `face_index`-th by size (0 = largest).

    Raises NoFaceError("no face found in <name>") when there is none; with several faces logs
    "found N faces, using the largest (--face-index to choose)". The Face has its pupils.
    """
    image = _check_image(image)
    faces = detector.detect(image)
    if not faces:
        # Detection runs on a copy shrunk to detect_max_side, where faces under ~40 px
        # (eye corner to eye corner about 1/3 of that) are missed: say so, in picture pixels.
        side = getattr(detector, "detect_max_side", None)
        smallest = 40 * max(1.0, max(image.shape[:2]) / side) if side else None
        hint = f" (faces smaller than about {smallest:.0f} px across are not detected)" if smallest else ""
        raise NoFaceError(f"no face found in {name}{hint}")
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            raise InputError(f"--face-index {face_index} is out of range: {len(faces)} face(s) found in {name}")
        face = faces[face_index]
    else:
        face = faces[0]
        if len(faces) > 1 and log:
            log(f"found {len(faces)} faces, using the largest (--face-index to choose)")
    if face.pupils is None:
        face = Face(points=face.points, box=face.box, pupils=locate_pupils(image, face.points), score=face.score)
    return face
