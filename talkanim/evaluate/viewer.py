"""What a viewer sees, in numbers: blinks followed, the mouth opening as far as the driver's, hair
and head outline moving as one body, a still background.

Face-crop SSIM hides all of these: a portrait whose hair tears into horns at every head tilt,
or whose eyes never blink, can score well on it. Every measure here looks at the rendered
frames from outside -- landmarks detected on them, optical flow between them and the portrait
-- so it judges any renderer the same way.

- Blinks: eye opening (lid gap / eye distance) per frame on the driver and on the output.
  A frame is closed when its opening is below CLOSED_FRACTION of the clip's open level (its
  75th percentile); recall = share of the driver's closed frames where the output is closed too
  (one frame of slack), plus the Pearson correlation of the two openings.
- Mouth: gain = the output's mouth-opening range (5th to 95th percentile, relative to face size)
  over the driver's, and their correlation.
  The same gain and correlation are also read by a second reader, dlib's own HOG detector and
  68-point predictor (`second_reading`): on painted mouths the two disagree (a face mesh has
  taken synthesized upper teeth for the upper lip), so a gain one reader reports is checked
  against the other's, each against its own reading of the driver.
- Hair and head outline: the portrait is moved by the head's similarity (fitted to landmarks
  detected on the output frame), then a dense optical flow to the output frame is measured on
  the person's matte outside the face oval and above the chin, keeping pixels that pass a
  forward-backward check. A smooth quadratic motion field -- which allows a head turning in 3D
  over a rounded proxy -- is fitted to that flow; the RMS of what it cannot explain is the
  distortion, in % of the face width. A rigidly moved portrait scores ~0.05.
- Background: median flow magnitude from the portrait to the output frame on the background
  away from the person, in % of the face width.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkanim.landmarks.measures import eye_opening, mouth_opening
from talkanim.motion.geometry import STABLE_POINTS, fit_similarity

CLOSED_FRACTION = 0.5
OPEN_PERCENTILE = 75.0
FLOW_FACE_WIDTH = 160.0  # px: frames are scaled so the face is about this wide for the flow
FB_TOLERANCE = 0.5  # px at flow scale: forward-backward mismatch allowed
MIN_PIXELS = 200  # fewer usable pixels than this: no distortion measured for the frame
READER_SIDE = 640  # px: the second reader looks for the face on the picture shrunk to this side
OVAL_GROWTH = 0.06  # the face oval is grown by this fraction of the face width before it is left out


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def closed_frames(opening: np.ndarray) -> np.ndarray:
    """(N,) bool: frames whose eye opening is below CLOSED_FRACTION of the clip's open level."""
    opening = np.asarray(opening, np.float64)
    level = np.percentile(opening, OPEN_PERCENTILE)
    return opening < CLOSED_FRACTION * level


def blink_measures(driver_points: np.ndarray, output_points: np.ndarray) -> dict[str, float | int | None]:
    """Blink recall and eye-opening correlation between a driver's landmarks (N, 68, 2) and the
    output's, both detected with a detector that sees closed eyes (a face mesh, not dlib)."""
    driver_eyes = eye_opening(driver_points).mean(axis=-1)
    output_eyes = eye_opening(output_points).mean(axis=-1)
    driver_closed = closed_frames(driver_eyes)
    output_closed = closed_frames(output_eyes)
    near = output_closed.copy()  # one frame of slack either way
    near[1:] |= output_closed[:-1]
    near[:-1] |= output_closed[1:]
    closed = int(driver_closed.sum())
    return {"blink_recall": float((driver_closed & near).sum() / closed) if closed else None,
            "blink_frames": closed, "eye_r": _pearson(driver_eyes, output_eyes)}


def mouth_measures(driver_points: np.ndarray, output_points: np.ndarray) -> dict[str, float | None]:
    """Mouth gain (output range / driver range, both relative to face size) and correlation."""
    driver_mouth = mouth_opening(driver_points)
    output_mouth = mouth_opening(output_points)
    spread = lambda x: float(np.percentile(x, 95) - np.percentile(x, 5))  # noqa: E731
    driver_range = spread(driver_mouth)
    return {"mouth_gain": spread(output_mouth) / driver_range if driver_range > 1e-6 else None,
            "mouth_r": _pearson(driver_mouth, output_mouth)}


def second_reading(analyzer, image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """68 landmarks (68, 2) of the face in `image` by the evaluator's dlib models (`FaceAnalyzer`):
    its HOG box, found on the picture shrunk to READER_SIDE, or where HOG finds no face the box
    around `points` (the face the mesh found there)."""
    box = analyzer.detect_box(image, max_side=READER_SIDE) or analyzer.box_from_points(points)
    return analyzer.landmarks(image, box)


def _face_width(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(points)[16] - np.asarray(points)[0]))


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)


def _consistent_flow(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow a -> b (H, W, 2) and where it agrees with the flow back (forward-backward check)."""
    forward, backward = _flow(a, b), _flow(b, a)
    h, w = a.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(backward, xs + forward[..., 0], ys + forward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
    return forward, np.linalg.norm(forward + back, axis=-1) < FB_TOLERANCE


@dataclass
class PortraitView:
    """The portrait as the motion measures compare frames with it, at flow scale."""

    image: np.ndarray  # (h, w) grey
    matte: np.ndarray  # (h, w) float in [0, 1]
    points: np.ndarray  # (68, 2) at flow scale
    scale: float  # flow px per picture px

    @staticmethod
    def make(image: np.ndarray, matte: np.ndarray, points: np.ndarray) -> "PortraitView":
        scale = min(1.0, FLOW_FACE_WIDTH / max(_face_width(points), 1.0))
        size = (max(8, round(image.shape[1] * scale)), max(8, round(image.shape[0] * scale)))
        small = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
        small_matte = cv2.resize(np.asarray(matte, np.float32), size, interpolation=cv2.INTER_AREA)
        return PortraitView(_grey(small), small_matte, np.asarray(points, np.float64) * scale, scale)

    def frame(self, frame: np.ndarray) -> np.ndarray:
        """An output frame (picture px) at flow scale, grey."""
        size = (self.image.shape[1], self.image.shape[0])
        return _grey(cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA))


def _face_oval(points: np.ndarray, shape: tuple[int, int], growth: float) -> np.ndarray:
    """(h, w) bool: the face (jaw line and the brows raised to the hairline), grown by `growth` px."""
    p = np.asarray(points, np.float64)
    eyes = p[45] - p[36]
    up = np.array([eyes[1], -eyes[0]])
    forehead = p[17:27] + 0.6 * up
    hull = cv2.convexHull(np.round(np.concatenate([p[0:17], forehead])).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    g = max(1, int(round(growth)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1))) > 0


def hair_distortion(view: PortraitView, frame: np.ndarray, frame_points: np.ndarray) -> float | None:
    """How far the hair and head outline of one output frame move other than as one body:
    RMS residual of the flow after a quadratic motion field, % of face width (None: too few
    usable pixels). `frame_points`: 68 landmarks detected on the output frame (picture px)."""
    points = np.asarray(frame_points, np.float64) * view.scale
    head = fit_similarity(view.points[STABLE_POINTS], points[STABLE_POINTS])
    h, w = view.image.shape
    moved = cv2.warpAffine(view.image, head[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    matte = cv2.warpAffine(view.matte, head[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    flow, good = _consistent_flow(moved, view.frame(frame))
    width = _face_width(points)
    # the person's hair, ears and outline: on the matte, outside the face oval, above the chin
    down = points[8] - (points[36:42].mean(axis=0) + points[42:48].mean(axis=0)) / 2
    down /= max(np.linalg.norm(down), 1e-9)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    above_chin = (xs - points[8][0]) * down[0] + (ys - points[8][1]) * down[1] < 0
    region = (matte > 0.5) & ~_face_oval(points, (h, w), OVAL_GROWTH * width) & above_chin & good
    if region.sum() < MIN_PIXELS:
        return None
    centre = points[27:36].mean(axis=0)
    x = (xs[region] - centre[0]) / width
    y = (ys[region] - centre[1]) / width
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    target = flow[region].astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    return float(np.sqrt((residual ** 2).sum(axis=1).mean()) / width * 100.0)


def background_drift(view: PortraitView, frame: np.ndarray) -> float | None:
    """Median optical flow from the portrait to an output frame on the background away from the
    person, % of face width (None: no background to measure)."""
    width = _face_width(view.points)
    grow = max(1, int(round(0.1 * width)))
    person = cv2.dilate((view.matte > 0.02).astype(np.uint8),
                        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))) > 0
    flow, good = _consistent_flow(view.image, view.frame(frame))
    region = ~person & good
    if region.sum() < MIN_PIXELS:
        return None
    return float(np.median(np.linalg.norm(flow[region], axis=-1)) / width * 100.0)


def motion_summary(distortions: list[float | None], drifts: list[float | None]) -> dict[str, float | None]:
    """Per-clip summary of the per-frame hair distortion and background drift."""
    d = np.array([x for x in distortions if x is not None], np.float64)
    b = np.array([x for x in drifts if x is not None], np.float64)
    return {"hair_distortion": float(d.mean()) if d.size else None,
            "hair_distortion_worst": float(d.max()) if d.size else None,
            "background_drift": float(np.median(b)) if b.size else None}
