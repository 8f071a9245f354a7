"""dlib backend: HOG face detector (CNN detector as fallback/confirmation) + 68-point predictor.

The model files ship inside the `face-recognition-models` wheel; we locate them with
`importlib.util.find_spec` because importing that package needs `pkg_resources`, which current
setuptools no longer provides.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from .pupils import locate_pupils
from .types import Face

# dlib's predictor was trained on HOG boxes. Measured on 66 faces of ../shared/data (portraits,
# identities): relative to the bounding box (bw, bh) of points 17-67, the HOG box's edges sit at
# left -0.174 bw, top -0.176 bh, right +0.147 bw, bottom +0.220 bh (median; spread ~0.08).
_BOX_FROM_POINTS = (-0.174, -0.176, 0.147, 0.220)
# HOG detections scoring below this on a still are confirmed by the CNN detector: a real
# painting (Girl with a Pearl Earring) scored 0.20 and a false face on an animal picture 0.23,
# while the CNN detector gives faces >= 0.8 and that animal 0.33.
_HOG_SURE = 0.5
_CNN_MIN_CONFIDENCE = 0.5
# The CNN detector costs ~2 s at 640 px on 2 cores (quadratic in side): never run it bigger.
_CNN_MAX_SIDE = 640
# Faces smaller than this (pixels, at detection scale) need HOG upsampling to be found.
_SMALL_FACE = 90


def model_dir() -> Path:
    """Folder of the dlib model files shipped in face-recognition-models."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise BackendUnavailableError(
            "the dlib landmark backend needs the face-recognition-models package "
            "(pip install face-recognition-models)"
        )
    return Path(os.path.dirname(spec.origin)) / "models"


def box_from_points(points: np.ndarray) -> tuple[float, float, float, float]:
    """The HOG-convention face box that the 68 points `points` would have been fitted in."""
    q = np.asarray(points, dtype=np.float64)[17:]
    x0, y0 = q.min(axis=0)
    x1, y1 = q.max(axis=0)
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    l, t, r, b = _BOX_FROM_POINTS
    return (x0 + l * bw, y0 + t * bh, x1 + r * bw, y1 + b * bh)


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return image, 1.0
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, s


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class DlibDetector:
    """dlib's HOG/CNN face detectors and 68-point shape predictor; models loaded once per object."""

    name = "dlib"

    def __init__(self, *, detect_max_side: int = 640, log: Callable[[str], None] | None = None) -> None:
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - dlib-bin is a hard dependency
            raise BackendUnavailableError("the dlib landmark backend needs dlib (pip install dlib-bin)") from exc
        folder = model_dir()
        predictor = folder / "shape_predictor_68_face_landmarks.dat"
        if not predictor.is_file():
            raise BackendUnavailableError(f"dlib landmark model missing: {predictor}")
        self._dlib = dlib
        self._folder = folder
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor))
        self._cnn = None  # loaded on first use: most runs never need it
        self.detect_max_side = int(detect_max_side)
        self._log = log

    # -- landmarks -------------------------------------------------------------------------
    def fit(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks (68, 2) float32 fitted inside `box` (x0, y0, x1, y1, HOG convention)."""
        rect = self._dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def refit(self, image: np.ndarray, points: np.ndarray, iterations: int = 1) -> np.ndarray:
        """Fit again from the HOG-convention box of `points` (turns a CNN box into a HOG one)."""
        for _ in range(iterations):
            points = self.fit(image, box_from_points(points))
        return points

    # -- detection -------------------------------------------------------------------------
    def hog_boxes(self, image: np.ndarray, upsample: int = 0) -> list[tuple[tuple[float, float, float, float], float]]:
        """HOG detections on `image` as it is (no resizing): [(box, score)], any order."""
        dets, scores, _ = self._hog.run(image, upsample, 0.0)
        return [((d.left(), d.top(), d.right(), d.bottom()), float(s)) for d, s in zip(dets, scores)]

    def cnn_boxes(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """CNN (MMOD) detections with confidence >= 0.5, on `image` shrunk to <= 640 px."""
        if self._cnn is None:
            self._cnn = self._dlib.cnn_face_detection_model_v1(str(self._folder / "mmod_human_face_detector.dat"))
        small, s = _shrink(image, _CNN_MAX_SIDE)
        if min(small.shape[:2]) < 16:
            return []  # far below the ~80 px MMOD window, and dlib's convolutions raise on it
        out = []
        for d in self._cnn(np.ascontiguousarray(small), 0):
            if d.confidence >= _CNN_MIN_CONFIDENCE:
                r = d.rect
                out.append(((r.left() / s, r.top() / s, r.right() / s, r.bottom() / s), float(d.confidence)))
        return out

    def _cnn_confirms(self, image: np.ndarray, box) -> float | None:
        """CNN confidence of a face overlapping `box`, run on a crop around it (cheap), else None."""
        w, h = box[2] - box[0], box[3] - box[1]
        H, W = image.shape[:2]
        x0, y0 = int(max(0, box[0] - w)), int(max(0, box[1] - h))
        x1, y1 = int(min(W, box[2] + w)), int(min(H, box[3] + h))
        crop = image[y0:y1, x0:x1]
        # Bring the face to ~110 px: comfortably above the MMOD window (~80 px), and cheap.
        s = min(1.0, 110.0 / max(w, 1.0)) if max(w, h) > 110 else 110.0 / max(w, 1.0)
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        best = None
        for cbox, conf in self.cnn_boxes(crop):
            cb = (cbox[0] / s + x0, cbox[1] / s + y0, cbox[2] / s + x0, cbox[3] / s + y0)
            if _iou(cb, box) > 0.25 and (best is None or conf > best):
                best = conf
        return best

    def _faces(self, image: np.ndarray, boxes_scores, refit: bool) -> list[Face]:
        faces = []
        for box, score in boxes_scores:
            pts = self.fit(image, box)
            if refit:
                pts = self.refit(image, pts, 2)
            faces.append(Face(points=pts, box=tuple(float(v) for v in box), pupils=locate_pupils(image, pts), score=score))
        # "Largest" as the rest of the pipeline measures it: Face.size (landmarks), not the
        # quantized HOG box.
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in an RGB uint8 still, largest first, with landmarks and pupils.

        HOG (upsample 1) on a copy shrunk to `detect_max_side`; low-scoring HOG hits must be
        confirmed by the CNN detector (drops false faces on animals/objects); when HOG finds
        nothing, the CNN detector decides (finds faces HOG misses, e.g. some paintings).
        """
        image = np.ascontiguousarray(image)
        small, s = _shrink(image, self.detect_max_side)
        found = []
        for box, score in self.hog_boxes(small, 1):
            full = tuple(v / s for v in box)
            if score < _HOG_SURE:
                conf = self._cnn_confirms(image, full)
                if conf is None:
                    if self._log:
                        self._log(f"dropped a weak face candidate (HOG score {score:.2f}) the CNN detector did not confirm")
                    continue
            found.append((full, score))
        if found:
            return self._faces(image, found, refit=False)
        cnn = self.cnn_boxes(image)
        return self._faces(image, cnn, refit=True)

    def detect_quick(self, image: np.ndarray, *, small_faces: bool = False) -> list[Face]:
        """HOG-only detection for video frames (no CNN): upsample 0, then 1 if `small_faces`."""
        image = np.ascontiguousarray(image)
        small, s = _shrink(image, self.detect_max_side)
        hits = self.hog_boxes(small, 0)
        # Upsampling costs ~4x; worth it when faces are known to be small or the image is a
        # small region crop (a face there may be under HOG's 80 px window).
        if not hits and (small_faces or max(small.shape[:2]) <= 4 * _SMALL_FACE):
            hits = self.hog_boxes(small, 1)
        return self._faces(image, [(tuple(v / s for v in b), sc) for b, sc in hits], refit=False)
