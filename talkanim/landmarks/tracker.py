"""Landmarks of every frame of a driving video, streamed: detect once, then track.

Each frame is fitted inside the box of the previous frame's landmarks (dlib's predictor takes
~1 ms; a face detection 20-130 ms); a backend with `fit_face` (the mesh) fits from the whole
previous Face instead, its crop taken from the previous mesh, and its face-presence score must
stay >= 0.5 (MediaPipe's tracking threshold). A frame's fit is accepted when its box did not jump,
collapse or leave the frame and the face patch still looks like the previous frame's (a
normalized cross-correlation on a 24x24 thumbnail: a blank frame, a cut or an occluder fail it).
Otherwise we re-detect: first around the last box, then in the whole frame. Frames with no face
hold the last good points (and mesh) and are marked invalid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from typing import Callable, Iterable

import cv2
import numpy as np

from ..config import TrackConfig
from ..errors import InputError, NoFaceError
from ..io.cuts import split_at_cuts
from .dlib_backend import box_from_points
from .measures import STABLE_POINTS
from .pupils import locate_pupils
from .smoothing import OneEuroFilter
from .types import Face, LandmarkTrack

# Acceptance of a tracked fit, relative to the previous frame's landmarks box.
_MAX_SCALE_CHANGE = 1.4  # per frame; real zooms are a few % per frame
_MAX_SHIFT = 0.5  # centre shift per frame, in face sizes
_MIN_INSIDE = 0.6  # fraction of the landmarks box that must lie inside the frame
_MIN_REL_SIZE, _MAX_REL_SIZE = 0.5, 2.0  # face size vs the size at the last detection (slow collapse)
# Frame-to-frame NCC of the 24x24 grayscale face thumbnail. Measured on ../shared/data clips:
# consecutive frames of a talking face score >= 0.84 (example_driver, d0, s18, WDA_KatieHill;
# 1st percentile 0.88-0.99); a blank frame scores 0; shot cuts in short_hamilton_clip score
# -0.7..0.45. Below _DOUBT_NCC we look for the face again and keep the fit if we find nothing
# (a hand in front of the face, fast motion of a small face); below _MIN_NCC the fit is rejected.
_DOUBT_NCC = 0.6
_MIN_NCC = 0.3
_MIN_PRESENCE = 0.5  # a fit_face score below this is a lost face
_THUMB = 24
# The full detector (CNN fallback, ~0.3-2 s) runs at most once per this many seconds of video
# while no face is tracked; HOG (20-130 ms) runs on every such frame.
_FULL_DETECT_PERIOD_S = 2.0
_MESH_BLOCK = 96  # mesh vertices smoothed at a time


def _bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _thumb(frame: np.ndarray, box) -> np.ndarray | None:
    """Standardized 24x24 grayscale thumbnail of the frame inside `box`, or None if degenerate."""
    h, w = frame.shape[:2]
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    small = cv2.resize(frame[y0:y1, x0:x1], (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    g = small.astype(np.float32).mean(axis=2) if small.ndim == 3 else small.astype(np.float32)
    g -= g.mean()
    n = float(np.sqrt((g * g).sum()))
    return g / n if n > 1e-3 * g.size else None  # flat patch: no face texture to compare


def _ncc(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    return float((a * b).sum())


def _diag(box) -> float:
    return math.hypot(box[2] - box[0], box[3] - box[1])


def _plausible(points: np.ndarray, prev: np.ndarray, size: tuple[int, int], ref_size: float) -> bool:
    """Geometry check of a tracked fit: no jump, no collapse/explosion, mostly inside the frame."""
    if not np.all(np.isfinite(points)):
        return False
    b, p = _bbox(points), _bbox(prev)
    sb, sp = _diag(b), _diag(p)
    if sb < 8 or not (1 / _MAX_SCALE_CHANGE <= sb / max(sp, 1e-6) <= _MAX_SCALE_CHANGE):
        return False
    if not (_MIN_REL_SIZE <= sb / max(ref_size, 1e-6) <= _MAX_REL_SIZE):
        return False
    shift = math.hypot((b[0] + b[2] - p[0] - p[2]) / 2, (b[1] + b[3] - p[1] - p[3]) / 2)
    if shift > _MAX_SHIFT * sp:
        return False
    w, h = size
    ix = max(0.0, min(b[2], w) - max(b[0], 0.0))
    iy = max(0.0, min(b[3], h) - max(b[1], 0.0))
    area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
    return ix * iy / area >= _MIN_INSIDE


def _offset(face: Face, dx: float, dy: float) -> Face:
    d = np.array([dx, dy], np.float32)
    mesh = None
    if face.mesh is not None:
        mesh = face.mesh.copy()
        mesh[:, :2] += d
    return Face(points=face.points + d, box=(face.box[0] + dx, face.box[1] + dy, face.box[2] + dx, face.box[3] + dy),
                pupils=None if face.pupils is None else face.pupils + d, score=face.score, mesh=mesh)


def _fit(detector, frame: np.ndarray, prev: Face, eyes: bool) -> Face:
    """The face of `frame` followed from the previous frame's: `fit_face` from the whole previous
    Face when the backend has it (the mesh re-crops from the previous mesh; `eyes` False: the
    backend's `eyes_later` adds them), else the 68 points fitted in the box of the previous
    points."""
    box = box_from_points(prev.points)
    fit_face = getattr(detector, "fit_face", None)
    if fit_face is not None:
        return fit_face(frame, box, previous=prev, eyes=eyes)
    return Face(points=np.asarray(detector.fit(frame, box), np.float32), box=box)


class _Redetector:
    """Finds the face again: cheap HOG around the last box, then the whole frame, then (rarely) CNN."""

    def __init__(self, detector, fps: float) -> None:
        self.detector = detector
        self.quick = getattr(detector, "detect_quick", None)
        self.small_faces = False
        self.full_period = max(1, int(round(_FULL_DETECT_PERIOD_S * fps)))
        self.last_full = -10**9

    def first(self, frame: np.ndarray, index: int) -> Face | None:
        """Detection before any face was seen: the robust detector, at most once per second."""
        if index - self.last_full >= self.full_period:
            self.last_full = index
            faces = self.detector.detect(frame)
        elif self.quick is not None:
            faces = self.quick(frame, small_faces=True)
        else:
            faces = []
        if faces:
            b = faces[0].box
            self.small_faces = (b[2] - b[0]) * min(1.0, getattr(self.detector, "detect_max_side", 640) / max(frame.shape[:2])) < 90
        return faces[0] if faces else None

    def again(self, frame: np.ndarray, box, index: int) -> Face | None:
        """Re-detection near `box` (the last good landmarks box) first, then in the whole frame."""
        if self.quick is None:
            faces = self.detector.detect(frame)
            return faces[0] if faces else None
        h, w = frame.shape[:2]
        bw, bh = box[2] - box[0], box[3] - box[1]
        x0, y0 = int(max(0, box[0] - bw)), int(max(0, box[1] - bh))
        x1, y1 = int(min(w, box[2] + bw)), int(min(h, box[3] + bh))
        if x1 - x0 >= 16 and y1 - y0 >= 16 and (x1 - x0) * (y1 - y0) < 0.6 * w * h:
            faces = self.quick(np.ascontiguousarray(frame[y0:y1, x0:x1]), small_faces=self.small_faces)
            if faces:
                return _offset(faces[0], x0, y0)
        faces = self.quick(frame, small_faces=self.small_faces)
        if not faces and index - self.last_full >= self.full_period:
            self.last_full = index
            faces = self.detector.detect(frame)
        return faces[0] if faces else None


def face_scale(points: np.ndarray) -> float:
    """Face size of a track: the median diagonal of its frames' landmarks boxes (pixels)."""
    spans = points.max(axis=1) - points.min(axis=1)
    return float(np.median(np.hypot(spans[:, 0], spans[:, 1]))) or 1.0


# Points of the iBUG-68 layout smoothed with their own, faster filter (TrackConfig.fast_*): the
# eyelids (a blink lasts a few frames) and the lips (syllables come at 4-8 Hz).
EYELIDS = np.array([37, 38, 40, 41, 43, 44, 46, 47])
LIPS = np.arange(48, 68)


def _similarities(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the least-squares similarity z -> a z + b (points as complex numbers) taking
    src (N, K, 2) to dst (N, K, 2) or (K, 2): a (N,), b (N,) complex."""
    zs = src[..., 0] + 1j * src[..., 1]
    zd = np.broadcast_to(dst[..., 0] + 1j * dst[..., 1], zs.shape)
    ms, md = zs.mean(axis=1, keepdims=True), zd.mean(axis=1, keepdims=True)
    a = (np.conj(zs - ms) * (zd - md)).sum(axis=1) / np.maximum((np.abs(zs - ms) ** 2).sum(axis=1), 1e-12)
    return a, md[:, 0] - a * ms[:, 0]


def _apply(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    z = a[:, None] * (points[..., 0] + 1j * points[..., 1]) + b[:, None]
    return np.stack([z.real, z.imag], axis=-1)


def _one_euro_runs(values: np.ndarray, valid: np.ndarray, fps: float, config: TrackConfig,
                   cuts: Sequence[int], *, beta: float | None = None, d_cutoff: float | None = None) -> np.ndarray:
    """One-Euro filter of (N, ...) values along frames, restarted after each gap of invalid
    frames and at each cut; invalid frames hold the previous output. `beta` and `d_cutoff`
    override the config's."""
    out = values.copy()
    filt = OneEuroFilter(config.min_cutoff, config.beta if beta is None else beta,
                         config.d_cutoff if d_cutoff is None else d_cutoff)
    restart = set(cuts)
    prev_valid = False
    for i in range(values.shape[0]):
        if not valid[i]:
            out[i] = out[i - 1] if i > 0 else values[i]
            prev_valid = False
            continue
        if not prev_valid or i in restart:
            filt.reset()
        out[i] = filt(values[i], i / fps)
        prev_valid = True
    return out


def smooth_track(points: np.ndarray, pupils: np.ndarray, valid: np.ndarray, fps: float,
                 config: TrackConfig, cuts: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One-Euro filter over each run of valid frames (restarted after a gap and at each camera
    cut in `cuts`: the jump is real).

    Coordinates are filtered in units of the face size (median landmarks-box diagonal), so
    `min_cutoff` (Hz) and `beta` (per face-size/s) mean the same at any resolution.

    The eyelids and lips get a faster filter. The lips' is applied to where they sit on the head
    (in the head's frame, from STABLE_POINTS), then put back on the smoothed head: filtered where
    they are, they would move ahead of the lagging head and read as the mouth opening. (The
    lids, filtered where they are, followed blinks better: 59 of 88 shut frames read shut on the
    viewer pairs, 52 in the head's frame.)
    """
    scale = face_scale(points)
    both = np.concatenate([points, pupils], axis=1).astype(np.float64) / scale
    out = _one_euro_runs(both, valid, fps, config, cuts)
    fast = dict(beta=config.fast_beta, d_cutoff=config.fast_d_cutoff)
    out[:, EYELIDS] = _one_euro_runs(both[:, EYELIDS], valid, fps, config, cuts, **fast)
    reference = both[np.flatnonzero(valid)[0] if valid.any() else 0, STABLE_POINTS]
    on_head = _one_euro_runs(_apply(*_similarities(both[:, STABLE_POINTS], reference), both[:, LIPS]),
                             valid, fps, config, cuts, **fast)
    back = _similarities(np.broadcast_to(reference, (len(out), *reference.shape)), out[:, STABLE_POINTS])
    out[:, LIPS] = _apply(*back, on_head)
    out *= scale
    return out[:, :68].astype(np.float32), out[:, 68:].astype(np.float32)


def smooth_mesh(mesh: np.ndarray, points: np.ndarray, valid: np.ndarray, fps: float,
                config: TrackConfig, cuts: Sequence[int] = ()) -> np.ndarray:
    """`smooth_track` for a (N, 478, 3) mesh: x, y and z filtered alike, in units of the face
    size of `points` (the same track's 68 points), so the mesh follows the points' smoothing."""
    scale = face_scale(points)
    out = np.empty(mesh.shape, np.float32)
    # a block of vertices at a time (the filter is per coordinate): the filter's float64 copies
    # of the whole mesh cost 17 MiB each per minute of driver, a peak that grew with its length
    for start in range(0, mesh.shape[1], _MESH_BLOCK):
        part = slice(start, start + _MESH_BLOCK)
        out[:, part] = _one_euro_runs(mesh[:, part].astype(np.float64) / scale, valid, fps, config, cuts) * scale
    return out


def track_frames(
    frames: Iterable[np.ndarray],
    detector,
    *,
    fps: float,
    size: tuple[int, int],
    config: TrackConfig,
    on_frame: Callable[[int], None] | None = None,
    cuts: Sequence[int] = (),
) -> LandmarkTrack:
    """Landmarks of every frame, streamed from an iterator of RGB uint8 frames of `size` (w, h).

    Detects once (first frame with a face), then fits each frame from the previous landmarks;
    re-detects when tracking fails and every `config.redetect_every` frames if > 0. Frames with
    no face hold the last good points (valid False); frames before the first detection take the
    first good frame's points. Smoothed with a One-Euro filter when `config.smooth`.
    Raises NoFaceError when no frame has a face. `on_frame(i)` is called after each frame.
    A backend with `eyes_later` (the mesh) follows the face with its face mesh alone and
    completes the eyes on a worker thread meanwhile.

    `cuts`: frames where a new camera shot starts, ascending; it may be a list that fills up
    while `frames` is consumed (`talkanim.io.watch_cuts` appends a cut before yielding its frame).
    At a cut the face is detected afresh, each shot is filled and smoothed on its own, and the
    track records the cuts.
    """
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise InputError(f"driver frame rate must be positive, got {fps}")
    width, height = int(size[0]), int(size[1])
    red = _Redetector(detector, fps)
    faces: list[Face | None] = []  # per frame: the accepted face, None when lost
    pup_out: list[np.ndarray | None] = []
    prev: Face | None = None  # last good face (kept while lost, for the region search)
    prev_thumb = None
    lost = True
    since_detect = 0
    ref_size = 0.0  # landmarks-box diagonal at the last detection

    eyes_later = getattr(detector, "eyes_later", None)
    completed: dict[int, Future] = {}  # frame -> its face with eyes, while eyes_later works
    with eyes_later() if eyes_later is not None else nullcontext() as eyes:
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise InputError(f"driver frame {i} is {frame.dtype} {frame.shape}, expected uint8 {(height, width, 3)}")
            face = None
            detected = False
            cand_thumb = None
            if prev is None or (cuts and cuts[-1] == i):  # nothing to follow: a new face or shot
                face = red.first(frame, i)
                detected = face is not None
            elif lost:
                face = red.again(frame, _bbox(prev.points), i)
                detected = face is not None
            else:
                cand = _fit(detector, frame, prev, eyes=eyes is None)
                cand_thumb = _thumb(frame, _bbox(cand.points))
                ncc = _ncc(cand_thumb, prev_thumb)
                ok = (_plausible(cand.points, prev.points, (width, height), ref_size) and ncc >= _MIN_NCC
                      and cand.score >= _MIN_PRESENCE)
                due = config.redetect_every > 0 and since_detect >= config.redetect_every
                if not ok or ncc < _DOUBT_NCC or due:
                    found = red.again(frame, _bbox(cand.points if ok else prev.points), i)
                    if found is not None:
                        cand, detected = found, True
                    elif not ok:
                        cand = None
                    if due:
                        since_detect = 0
                face = cand
            if detected:
                since_detect, ref_size = 0, _diag(_bbox(face.points))
            if face is not None:
                # the fit's thumbnail is this face's, unless a detection replaced the fit
                prev_thumb = cand_thumb if not detected and cand_thumb is not None else _thumb(frame, _bbox(face.points))
                faces.append(face)
                if eyes is not None:
                    completed[i] = eyes.add(frame, face)
                # the mesh's pupils are its iris centres; other backends locate them in the image
                pup_out.append(face.pupils if face.mesh is not None else locate_pupils(frame, face.points))
                prev, lost = face, False
                since_detect += 1
            else:
                lost = True
                faces.append(None)
                pup_out.append(None)
            if on_frame is not None:
                on_frame(i)
    for i, done in completed.items():  # all done: leaving the block waited for the worker
        faces[i] = done.result()
        pup_out[i] = faces[i].pupils

    valid = [f is not None for f in faces]
    if not any(valid):
        raise NoFaceError("no face found in any frame of the driver")
    pts_out = [None if f is None else np.asarray(f.points, np.float32) for f in faces]
    # a mesh track only when every found face has a mesh (the mesh backend)
    has_mesh = all(f.mesh is not None for f in faces if f is not None)
    mesh_out = [None if f is None or not has_mesh else f.mesh for f in faces]
    shots = split_at_cuts(len(valid), cuts)
    first = valid.index(True)
    for shot in shots:
        # in each camera shot, frames before its first face take that face; gaps (and a shot
        # with no face at all) hold the last good frame
        shot_first = next((k for k in shot if valid[k]), None)
        for i in shot:
            if pts_out[i] is None:
                j = shot_first if shot_first is not None and i < shot_first else (i - 1 if i > 0 else first)
                pts_out[i], pup_out[i], mesh_out[i] = pts_out[j], pup_out[j], mesh_out[j]
    points = np.stack(pts_out).astype(np.float32)
    pupils = np.stack(pup_out).astype(np.float32)
    mesh = np.stack(mesh_out).astype(np.float32) if has_mesh else None
    valid_arr = np.array(valid, dtype=bool)
    shot_cuts = tuple(shot.start for shot in shots[1:])
    if config.smooth:
        if mesh is not None:
            mesh = smooth_mesh(mesh, points, valid_arr, fps, config, shot_cuts)
        points, pupils = smooth_track(points, pupils, valid_arr, fps, config, shot_cuts)
    return LandmarkTrack(points=points, pupils=pupils, valid=valid_arr, fps=float(fps),
                         size=(width, height), backend=getattr(detector, "name", "unknown"), cuts=shot_cuts,
                         mesh=mesh)
