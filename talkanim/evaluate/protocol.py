"""The reenactment protocol of DESIGN.md ("Quality protocol").

Self-reenactment, per clip: T shots spread over the first part of the clip, the rest of the
clip (every `every`-th frame, at most `max_frames`) is the driver. An edited clip is first cut
to its longest continuous camera shot (`talkanim.io.camera_shots`): across a cut the "same
person" may be someone else. Every method renders each driver frame from the shots and the driver frame's own landmarks (same person, same camera:
the paper's absolute motion, so the true landmarks are the target), and is scored against the
real frame on the face crop at 256 px (box from the REAL frame's landmarks, same box for both).
The driver frames are the same for every T, so numbers compare across T.

Cross-reenactment, per portrait x clip: the portrait is driven by the clip (relative motion,
the pipeline's default); scored by CSIM to the portrait and by the Pearson correlation of
mouth / eye opening measured on the output with the driver's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from talkanim.config import MotionConfig, TrackConfig
from talkanim.evaluate import metrics as M
from talkanim.evaluate import viewer as V
from talkanim.evaluate.identity import FaceAnalyzer, get_analyzer
from talkanim.evaluate.methods import Animator, Method, Shot, make_method
from talkanim.landmarks.matte import PersonMatter, person_matte
from talkanim.landmarks.types import Face
from talkanim.motion.shots import blend_weights
from talkanim.render.crop import CropBox, crop_image, face_crop_box

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]

CROP_SIZE = 256
CROP_SCALE = 1.6  # face crop side / landmarks' bounding box: face plus some hair and background
SHOT_FRACTION = 1 / 3  # shots come from the first third of a clip
MIN_DRIVER_FRAMES = 4
RENDER_BATCH = 8
SELF_METRICS = ("l1", "psnr", "ssim", "csim", "akd", "l1_mouth", "ssim_mouth", "l1_eyes", "ssim_eyes",
                "ssim_frame", "l1_frame")
FRAME_SIDE = 256  # whole frames are compared at this longest side
CROSS_METRICS = ("csim_source", "mouth_gain", "mouth_r", "blink_recall", "eye_r", "hair_distortion",
                 "hair_distortion_worst", "background_drift", "target_mouth_gain", "target_mouth_r",
                 "target_eye_r", "mouth_gain_dlib", "mouth_r_dlib")
FLOW_EVERY = 2  # hair distortion is measured on every 2nd output frame (two optical flows each)


@dataclass
class ClipPlan:
    """Which frames of a clip are shots (per T) and which are driver frames, all inside `span`
    (one continuous camera shot of the clip)."""

    span: range
    driver_start: int
    shots: dict[int, list[int]]
    driver: list[int]


def plan_clip(frames: int | range, shots: list[int], *, every: int = 1, max_frames: int | None = None) -> ClipPlan:
    """Split a clip's frames (`range(frames)` when an int; one camera shot of it when a range):
    shots spread evenly over [span.start, driver_start), driver = the rest of the span.

    driver_start = span.start + max(ceil(len(span) / 3), max(shots)) so the largest T still gets
    distinct frames and every T is scored on the same driver frames. Raises ValueError when
    fewer than MIN_DRIVER_FRAMES driver frames remain.
    """
    span = range(frames) if isinstance(frames, int) else frames
    if len(span) <= 0:
        raise ValueError("the clip has no frames")
    start = span.start + max(math.ceil(len(span) * SHOT_FRACTION), max(shots))
    driver = list(range(start, span.stop, max(1, int(every))))
    if max_frames:
        driver = driver[: int(max_frames)]
    if len(driver) < MIN_DRIVER_FRAMES:
        raise ValueError(f"clip too short: {len(span)} frames leave {len(driver)} driver frames after "
                         f"{start - span.start} shot frames (need {MIN_DRIVER_FRAMES})")
    plan = {t: sorted(set(np.linspace(span.start, start - 1, t).round().astype(int).tolist()))
            if t > 1 else [span.start] for t in shots}
    return ClipPlan(span, start, plan, driver)


def csim_subset(n: int, k: int) -> list[int]:
    """k evenly spread positions out of n (all when k <= 0 or k >= n): where CSIM is measured."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))


# ------------------------------------------------------------------------------ clips
@dataclass
class Clip:
    """A tracked clip with the frames the protocol needs kept in memory (the rest streamed past)."""

    path: Path
    fps: float
    size: tuple[int, int]
    track: LandmarkTrack  # frames 0 .. last needed
    frames: dict[int, np.ndarray]


def load_clip(path: Path, keep: set[int], detector, last: int | None = None,
              progress: Progress | None = None, cuts: tuple[int, ...] = ()) -> Clip:
    """Decode `path` up to frame `last`, tracking landmarks on every frame (no smoothing: the
    per-frame truth), and keep the images of the frames in `keep`. `cuts`: the clip's camera
    cuts (the tracker detects afresh there)."""
    from talkanim.io import iter_frames, probe_video
    from talkanim.landmarks import track_frames

    info = probe_video(path)
    last = info.num_frames - 1 if last is None else last
    kept: dict[int, np.ndarray] = {}

    def frames():
        it = iter_frames(path, info=info)
        try:
            for i, frame in enumerate(it):
                if i in keep:
                    kept[i] = np.asarray(frame)
                yield frame
                if i >= last:
                    break
        finally:
            it.close()

    on_frame = (lambda i: progress("track", i + 1, last + 1)) if progress else None
    track = track_frames(frames(), detector, fps=info.fps, size=(info.width, info.height),
                         config=TrackConfig(smooth=False), on_frame=on_frame, cuts=cuts)
    return Clip(Path(path), float(info.fps), (info.width, info.height), track, kept)


def _face_at(clip: Clip, i: int) -> Face:
    pts = clip.track.points[i]
    lo, hi = pts.min(0), pts.max(0)
    return Face(points=pts.astype(np.float32), box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                pupils=clip.track.pupils[i].astype(np.float32))


# ------------------------------------------------------------------------------ scoring
@dataclass
class _RealFrame:
    """Everything about a real driver frame that every method is compared with (cached)."""

    box: CropBox
    crop: np.ndarray
    points_crop: np.ndarray  # tracker landmarks in crop px (masks)
    face_box: tuple[float, float, float, float]  # analyzer's face box in the crop
    analyzer_points: np.ndarray  # analyzer landmarks on the real crop (AKD reference)
    descriptor: np.ndarray | None = None


def _real_frame(analyzer: FaceAnalyzer, image: np.ndarray, points: np.ndarray) -> _RealFrame:
    box = face_crop_box(points, CROP_SCALE)
    crop = crop_image(image, box, CROP_SIZE)
    pts = box.to_crop(points, CROP_SIZE)
    face_box = analyzer.detect_box(crop) or FaceAnalyzer.box_from_points(pts)
    return _RealFrame(box, crop, pts, face_box, analyzer.landmarks(crop, face_box))


def score_frame(analyzer: FaceAnalyzer, generated_crop: np.ndarray, real: _RealFrame, with_csim: bool) -> dict[str, float]:
    """All self-reenactment metrics of one generated crop against its real frame."""
    out = M.crop_metrics(generated_crop, real.crop, real.points_crop)
    gen_pts = analyzer.landmarks(generated_crop, real.face_box)
    out["akd"] = M.keypoint_distance(gen_pts, real.analyzer_points)
    if with_csim:
        if real.descriptor is None:
            real.descriptor = analyzer.descriptor(real.crop, real.face_box)
        out["csim"] = M.cosine(analyzer.descriptor(generated_crop, real.face_box), real.descriptor)
    return out


def whole_frame_metrics(generated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """SSIM and L1 of the whole frame (hair, body and background included), at FRAME_SIDE."""
    import cv2

    h, w = real.shape[:2]
    scale = min(1.0, FRAME_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = lambda x: cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA)  # noqa: E731
    g, r = small(generated), small(real)
    return {"ssim_frame": M.ssim(g, r), "l1_frame": M.l1(g, r)}


def _mean_metrics(rows: list[dict[str, float]], names) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in names:
        vals = [r[name] for r in rows if name in r and r[name] is not None and np.isfinite(r[name])]
        out[name] = float(np.mean(vals)) if vals else None
    return out


def _render(animator: Animator, targets: np.ndarray, pupils: np.ndarray | None, weights: np.ndarray,
            heads: np.ndarray | None = None):
    """Yield (position, frame) rendering in batches (bounded memory)."""
    for s in range(0, len(targets), RENDER_BATCH):
        sl = slice(s, s + RENDER_BATCH)
        args = (targets[sl], None if pupils is None else pupils[sl], weights[sl])
        frames = animator.generate(*args) if heads is None else animator.generate(*args, heads=heads[sl])
        for j, frame in enumerate(frames):
            yield s + j, frame


@dataclass
class SelfResult:
    """Self-reenactment of one clip: means per T per method, plus grid crops for the report."""

    clip: str
    plan: ClipPlan | None
    results: dict[int, dict[str, dict]] = field(default_factory=dict)
    grid: dict[int, dict[str, list[np.ndarray]]] = field(default_factory=dict)  # T -> column -> crops
    grid_frames: list[int] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def self_reenact(clip: Clip, plan: ClipPlan, methods: dict[str, Method], *, device: str = "cpu",
                 csim_frames: int = 8, grid_rows: int = 4, shot_blend: int = MotionConfig.shot_blend, analyzer: FaceAnalyzer | None = None,
                 matter: PersonMatter | None = None, progress: Progress | None = None, log: Log | None = None) -> SelfResult:
    """Score every available method at every T of `plan` on one clip; each driver frame is
    rendered from its `shot_blend` nearest shots (`talkanim.motion.blend_weights`)."""
    started = time.perf_counter()
    analyzer = analyzer or get_analyzer()
    res = SelfResult(str(clip.path), plan)
    drv = plan.driver
    targets = clip.track.points[drv].astype(np.float32)
    pupils = clip.track.pupils[drv].astype(np.float32)
    reals = [_real_frame(analyzer, clip.frames[i], clip.track.points[i]) for i in drv]
    csim_at = set(csim_subset(len(drv), csim_frames))
    grid_at = csim_subset(len(drv), grid_rows)
    res.grid_frames = [drv[k] for k in grid_at]
    total = len(plan.shots) * sum(1 for m in methods.values() if m.unavailable_reason() is None) * len(drv)
    done = 0
    for t, shot_idx in plan.shots.items():
        shots = [Shot(clip.frames[i], _face_at(clip, i), i) for i in shot_idx]
        # the first shot is the portrait: its person matte, as `animate` computes one
        shots[0] = replace(shots[0], matte=person_matte(shots[0].image, shots[0].face, matter=matter))
        weights = blend_weights(clip.track.points[shot_idx], targets, shot_blend)
        grid = {"source": [crop_image(shots[0].image, reals[k].box, CROP_SIZE) for k in grid_at],
                "real": [reals[k].crop for k in grid_at]}
        res.results[t] = {}
        for name, method in methods.items():
            reason = method.unavailable_reason()
            if reason is not None:
                res.results[t][name] = {"available": False, "reason": reason}
                continue
            t0 = time.perf_counter()
            crops: dict[int, np.ndarray] = {}
            try:
                animator = method.prepare(shots, device=device)
                rows: list[dict[str, float]] = []
                for k, frame in _render(animator, targets, pupils, weights):
                    gen = crop_image(frame, reals[k].box, CROP_SIZE)
                    rows.append(score_frame(analyzer, gen, reals[k], k in csim_at)
                                | whole_frame_metrics(frame, clip.frames[drv[k]]))
                    if k in grid_at:
                        crops[k] = gen
                    done += 1
                    if progress:
                        progress("self", done, total)
            except Exception as err:  # a broken method is reported; the others still run
                res.results[t][name] = {"available": True, "error": _error_line(err)}
                if log:
                    log(f"{clip.path.name} T={t} {name}: failed: {_error_line(err)}")
                continue
            entry: dict = {"available": True, **_mean_metrics(rows, SELF_METRICS),
                           "frames": len(rows), "csim_frames": len(csim_at), "shots_used": len(shots),
                           "seconds": round(time.perf_counter() - t0, 2)}
            if animator.note:
                entry["note"] = animator.note
            res.results[t][name] = entry
            grid[name] = [crops[k] for k in grid_at]
            if log:
                log(f"{clip.path.name} T={t} {name}: " + ", ".join(
                    f"{key} {entry[key]:.3f}" for key in ("ssim", "l1", "csim", "akd") if entry[key] is not None))
        res.grid[t] = grid
    res.seconds = time.perf_counter() - started
    return res


@dataclass
class CrossResult:
    portrait: str
    clip: str
    results: dict[str, dict] = field(default_factory=dict)
    error: str | None = None


def cross_reenact(portrait_path: Path, clip: Clip, frame_indices: list[int], methods: dict[str, Method],
                  detector, *, device: str = "cpu", csim_frames: int = 8,
                  analyzer: FaceAnalyzer | None = None, matter: PersonMatter | None = None) -> CrossResult:
    """Drive one portrait by a clip's frames (relative motion, as `animate` does) and measure
    what a viewer sees (talkanim.evaluate.viewer): CSIM to the portrait; blinks followed and the
    eyes' correlation, mouth gain and correlation, from landmarks that `detector` tracks on the
    output frames against those it tracked on the driver; hair/outline distortion and background
    drift from optical flow between the portrait and each output frame."""
    from talkanim.io import load_image
    from talkanim.landmarks import detect_face, smooth_track, track_frames
    from talkanim.motion import retarget

    analyzer = analyzer or get_analyzer()
    out = CrossResult(str(portrait_path), str(clip.path))
    image = load_image(portrait_path)
    face = detect_face(image, detector)
    matte = person_matte(image, face, matter=matter)
    view = V.PortraitView.make(image, matte, face.points)
    # Retarget the whole clip as `animate` would (its smoothing, its neutral references), then
    # keep the driver frames; the driver's own openings are measured on the raw track.
    smoothed_points, smoothed_pupils = smooth_track(clip.track.points, clip.track.pupils, clip.track.valid,
                                                    clip.fps, TrackConfig(), clip.track.cuts)
    driven = replace(clip.track, points=smoothed_points, pupils=smoothed_pupils)
    motion_all = retarget(face, driven, MotionConfig())
    points, pupils = motion_all.points[frame_indices], motion_all.pupils[frame_indices]
    heads = motion_all.heads[frame_indices]
    drv_points = clip.track.points[frame_indices]
    src_box = face_crop_box(face.points, CROP_SCALE)
    src_crop = crop_image(image, src_box, CROP_SIZE)
    src_face_box = analyzer.detect_box(src_crop) or FaceAnalyzer.box_from_points(src_box.to_crop(face.points, CROP_SIZE))
    src_desc = analyzer.descriptor(src_crop, src_face_box)
    csim_at = set(csim_subset(len(frame_indices), csim_frames))
    weights = np.ones((len(frame_indices), 1))
    height, width = image.shape[:2]
    drv_read = np.stack([V.second_reading(analyzer, clip.frames[i], clip.track.points[i]) for i in frame_indices])
    for name, method in methods.items():
        reason = method.unavailable_reason()
        if reason is not None:
            out.results[name] = {"available": False, "reason": reason}
            continue
        try:
            animator = method.prepare([Shot(image, face, matte=matte)], device=device)
            csims, drifts, flows, read = [], [], [], []

            def frames():  # each output frame once: CSIM and flow here, landmarks by the tracker
                for k, frame in _render(animator, points, pupils, weights, heads):
                    if k in csim_at:
                        box = face_crop_box(points[k], CROP_SCALE)
                        crop = crop_image(frame, box, CROP_SIZE)
                        fb = analyzer.detect_box(crop) or FaceAnalyzer.box_from_points(box.to_crop(points[k], CROP_SIZE))
                        csims.append(M.cosine(analyzer.descriptor(crop, fb), src_desc))
                    drifts.append(V.background_drift(view, frame))
                    read.append(V.second_reading(analyzer, frame, points[k]))
                    flows.append(frame if k % FLOW_EVERY == 0 else None)
                    yield frame

            track = track_frames(frames(), detector, fps=clip.fps, size=(width, height),
                                 config=TrackConfig(smooth=False))
            distortions = [V.hair_distortion(view, frame, track.points[k])
                           for k, frame in enumerate(flows) if frame is not None and track.valid[k]]
        except Exception as err:  # a broken method is reported; the others still run
            out.results[name] = {"available": True, "error": _error_line(err)}
            continue
        mouth = V.mouth_measures(drv_points, track.points)
        eyes = V.blink_measures(drv_points, track.points)
        out.results[name] = {"available": True, "csim_source": float(np.mean(csims)) if csims else None,
                             **mouth, **eyes, **V.motion_summary(distortions, drifts),
                             # the same on the target landmarks: retargeting alone, before rendering
                             **{f"target_{k}": v for k, v in V.mouth_measures(drv_points, points).items()},
                             "target_eye_r": V.blink_measures(drv_points, points)["eye_r"],
                             # the mouth as a second reader (dlib) sees it, on the driver and output
                             **{f"{k}_dlib": v for k, v in V.mouth_measures(drv_read, np.stack(read)).items()},
                             "frames": len(frame_indices), "csim_frames": len(csims),
                             "output_frames_without_face": track.num_missing}
    return out


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def build_methods(names: list[str], **options) -> dict[str, Method]:
    """Registered methods by name, in the order given (unknown names raise ValueError)."""
    return {name: make_method(name, **options) for name in names}


def _error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


__all__ = ["ClipPlan", "Clip", "CrossResult", "SelfResult", "build_methods", "cross_reenact", "csim_subset",
           "load_clip", "plan_clip", "score_frame",
           "self_reenact"]
