"""The evaluator's own face models: dlib's 128-d face descriptor (CSIM) and 68-point fitter (AKD).

These are deliberately independent of the pipeline's landmark stage: a method must not be
scored by the same detector that drove it. The model files ship inside the
`face-recognition-models` package, found the way the landmark stage finds them.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from talkanim.errors import TalkanimError
from talkanim.evaluate.metrics import cosine
from talkanim.landmarks.dlib_backend import model_dir


class IdentityModelError(TalkanimError):
    """dlib or its model files are missing."""


class FaceAnalyzer:
    """HOG face box, 68 landmarks and the 128-d identity descriptor of a face crop.

    All inputs are (H, W, 3) uint8 RGB. A `box` is (x0, y0, x1, y1) in the image's pixels; pass
    the same box for a generated crop and its real counterpart so that only the image content
    differs. Models load on first use.
    """

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as err:  # pragma: no cover - dlib-bin is a dependency
            raise IdentityModelError(f"dlib is not installed ({err})") from None
        self._dlib = dlib
        folder = model_dir()
        self._detector = dlib.get_frontal_face_detector()
        self._sp68 = dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))
        self._sp5 = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._rec = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))

    def _rect(self, box):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return self._dlib.rectangle(x0, y0, x1, y1)

    def detect_box(self, image: np.ndarray, upsample: int = 0,
                   max_side: int | None = None) -> tuple[float, float, float, float] | None:
        """The largest HOG face box in `image`, or None. With `max_side`, looked for on the image
        shrunk to that side (HOG's cost grows with the area) and returned in `image`'s pixels."""
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        rects = self._detector(image, upsample)
        if not rects and upsample == 0 and max(image.shape[:2]) <= 512:
            rects = self._detector(image, 1)  # small faces: HOG needs ~80 px
        if not rects:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        return tuple(float(v) / scale for v in (r.left(), r.top(), r.right(), r.bottom()))

    @staticmethod
    def box_from_points(points: np.ndarray) -> tuple[float, float, float, float]:
        """A HOG-like square box from 68 landmarks (for when detection fails)."""
        p = np.asarray(points, np.float32)
        lo, hi = p.min(0), p.max(0)
        c = (lo + hi) / 2
        half = 0.5 * float(max(hi - lo)) * 0.95
        c[1] += 0.1 * half  # HOG boxes sit lower than the brow-to-chin box
        return (float(c[0] - half), float(c[1] - half), float(c[0] + half), float(c[1] + half))

    def landmarks(self, image: np.ndarray, box) -> np.ndarray:
        """68 landmarks (68, 2) float32 fitted inside `box`."""
        shape = self._sp68(np.ascontiguousarray(image), self._rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def descriptor(self, image: np.ndarray, box) -> np.ndarray:
        """dlib's 128-d face descriptor (~75 ms on this CPU) for the face inside `box`."""
        image = np.ascontiguousarray(image)
        shape = self._sp5(image, self._rect(box))
        return np.asarray(self._rec.compute_face_descriptor(image, shape), np.float32)

    def csim(self, image_a: np.ndarray, image_b: np.ndarray, box_a=None, box_b=None) -> float:
        """Cosine of the two faces' descriptors; boxes default to HOG detection (NaN if none)."""
        box_a = box_a or self.detect_box(image_a)
        box_b = box_b or self.detect_box(image_b)
        if box_a is None or box_b is None:
            return float("nan")
        return cosine(self.descriptor(image_a, box_a), self.descriptor(image_b, box_b))


@lru_cache(maxsize=1)
def get_analyzer() -> FaceAnalyzer:
    """A process-wide FaceAnalyzer (the models take ~1 s and ~100 MB to load)."""
    return FaceAnalyzer()
