"""Driver landmarks -> target landmarks on the source face (pure numpy).

Relative mode (default, no identity leakage):
  Q_t   = similarity(driver ref stable points -> driver frame t stable points)   head motion
  d_t   = Q_t^-1(driver_t) - driver_ref                                          expression, ref frame
  M     = similarity(driver ref stable points -> source stable points)           driver -> source frame
  d_src = linear(M) d_t, scaled per region by the source/driver proportions (the mouth by its
          width; the skin between lower lip and chin squeezes by no larger share of its room)
  H_t   = M Q_t M^-1                                                             head motion, source frame
  target_t = H_t(source + d_src)       (head_motion=False: source + d_src)
Absolute mode (the paper; the driver's face shape leaks): target_t = M(driver_t).

Neutral references: with `driver_ref` unset, head motion is measured from the first frame, but
expression is measured per region from the driver's most neutral frame for that region: the
mouth and lower jaw from the frame where the mouth is most closed, the eyes and brows from a
frame with typically open eyes (median eye opening), the rest from the median face; all of them
among the frames where the head is turned as it mostly is. A driver that starts mid-word would
otherwise make the portrait's mouth close past shut whenever the driver closes its own, and the
mouth opening would run backwards; one that starts turned would slide the portrait's face
outline sideways all clip long. An explicit `driver_ref` is used for every region.

Camera cuts: a driver edited from several camera shots (`LandmarkTrack.cuts`) is retargeted
one shot at a time, each with its own references, unless `driver_ref` is set: across a cut
the face may be framed anew or be someone else, and measuring it against the first shot's
reference would jump the portrait's head (a close-up after a wide shot: twice the size) and
leak the new face's shape into the expression. At a cut the portrait returns to its own pose.
A run of frames where the tracker lost the face (`MotionConfig.lost_for_s` or longer) splits
the driver the same way, and the portrait rests in its own pose while the face is lost.

Limits (bad drivers): a turn towards a profile is followed until either half of the face, nose
tip to outline, narrows to `MotionConfig.narrowest_half` of the portrait's (`limit_turn`: past
it a 2D warp folds the face); the head travels and grows or shrinks only so far from its place
(`limit_travel`: a painting's head has a body below it).

Pupils: the driver's pupil is expressed in its eye's own frame (origin at the eye's corner
midpoint, x along the corner-to-corner axis, unit = eye width) and placed at the same spot of
the corresponding target eye.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from talkanim.config import MotionConfig
from talkanim.errors import InputError
from talkanim.landmarks.measures import eye_centres, eye_opening, mouth_opening
from talkanim.landmarks.types import Face, LandmarkTrack
from talkanim.motion.geometry import STABLE_POINTS, apply_transform, fit_similarities, fit_similarity, invert

EYE_CORNERS = ((36, 39), (42, 45))
MOUTH = np.arange(48, 68)
LOWER_JAW = np.arange(2, 15)
MOUTH_AND_JAW = np.r_[LOWER_JAW, MOUTH]  # the jaw follows the mouth when it opens
# The chin's outline and the lower lip point above each of its points (`_chin_follows_lips`).
CHIN = np.arange(5, 12)
LIP_ABOVE_CHIN = np.array([59, 59, 58, 57, 56, 55, 55])
LEAST_CHIN_ROOM = 0.5  # the portrait's room between lip and chin, over the driver's, counts as at least this
EYES_AND_BROWS = np.r_[17:27, 36:48]
JAW = np.arange(0, 17)
TEMPLES_TO_CHEEKS = np.r_[0:4, 13:17]  # the outline above the jaw's corners: it turns, it does not open
NOSE_TIP = 30
MEASURABLE_HALF = 0.1  # a face half narrower than this share of the face width is not limited
# Frames whose outline lies within this many face widths of the usual (median) one count as posed
# alike (a head turned by a few degrees; on face_3 the shift changes by a median 0.005 from one
# frame to the next).
POSED_ALIKE = 0.03
# Mouth width is measured corner to corner (48-54), its height lip-centre to lip-centre.
_MOUTH_W = (48, 54)


# Eyelids (per eye: upper points, the lower points facing them).
LIDS = (((37, 38), (41, 40)), ((43, 44), (47, 46)))
# A driver eye open less than this fraction of its open level counts as shut: trackers read a
# closed eye as a slit (the lash line), and the portrait's lids must meet, not leave one. A face
# mesh read eyes that were plainly shut at 0.26-0.49 of neutral (AOC clip); from 0.3, the
# portraits' lids stayed 17-33 % open through those blinks. The open level is the
# OPEN_EYES_PERCENTILE of the driver's lid gap, not its neutral (median) frame: a driver who
# blinks often and lowers the lids while talking has a median well below open (0.91 of the 75th
# percentile on the first 6 s of d3), and its shut frames came out a third open.
SHUT_RATIO = 0.45
OPEN_EYES_PERCENTILE = 75.0
SHUT_AT_MOST = 0.75  # the lids meet at no more than this share of the neutral gap (a ramp stays)
MAX_WIDEN = 1.5  # an eye opens at most this much wider than its neutral
LID_MEET = 0.15  # closed lids meet this far up from the lower lid (the upper lid does the moving)


@dataclass
class MotionTrack:
    """Target landmarks for every output frame, in SOURCE image coordinates, and the head's
    motion: `heads[t]` is the similarity taking the portrait's head to its place in frame t
    (identity when the head keeps its pose), so `invert(heads[t])` applied to `points[t]` is the
    expression alone, in the portrait's own pose."""

    points: np.ndarray  # (N, 68, 2) float32
    pupils: np.ndarray  # (N, 2, 2) float32
    heads: np.ndarray  # (N, 3, 3) float64

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])


def _mouth_width(points: np.ndarray) -> float:
    """Corner-to-corner width of the mouth."""
    return float(np.linalg.norm(points[_MOUTH_W[1]] - points[_MOUTH_W[0]]))


def _eye_frames(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per eye: origin (..., 2, 2), x axis (..., 2, 2), width (..., 2) from the corners."""
    a = points[..., [EYE_CORNERS[0][0], EYE_CORNERS[1][0]], :]
    b = points[..., [EYE_CORNERS[0][1], EYE_CORNERS[1][1]], :]
    origin = (a + b) / 2.0
    axis = b - a
    width = np.linalg.norm(axis, axis=-1)
    width = np.maximum(width, 1e-6)
    return origin, axis / width[..., None], width


def transfer_pupils(driver_points: np.ndarray, driver_pupils: np.ndarray | None,
                    target_points: np.ndarray) -> np.ndarray:
    """Place each driver pupil at the same spot of the target's eye (in the eye's own frame).

    Missing or non-finite driver pupils fall back to the target's eye centres.
    """
    target_points = np.asarray(target_points, np.float64)
    if driver_pupils is None:
        return eye_centres(target_points).astype(np.float32)
    driver_points = np.asarray(driver_points, np.float64)
    pupils = np.asarray(driver_pupils, np.float64)
    o_d, x_d, w_d = _eye_frames(driver_points)
    y_d = np.stack([-x_d[..., 1], x_d[..., 0]], axis=-1)
    rel = pupils - o_d
    u = (rel * x_d).sum(-1) / w_d
    v = (rel * y_d).sum(-1) / w_d
    o_t, x_t, w_t = _eye_frames(target_points)
    y_t = np.stack([-x_t[..., 1], x_t[..., 0]], axis=-1)
    out = o_t + (u * w_t)[..., None] * x_t + (v * w_t)[..., None] * y_t
    bad = ~np.isfinite(out).all(axis=-1)
    if bad.any():
        out[bad] = eye_centres(target_points)[bad]
    return out.astype(np.float32)


def _face_across(points: np.ndarray) -> tuple[np.ndarray, float]:
    """A face's axis from outline end to outline end (jaw 0 -> 16) of points (68, 2): unit
    vector and length (the face width)."""
    across = points[JAW[-1]] - points[JAW[0]]
    width = max(float(np.linalg.norm(across)), 1e-6)
    return across / width, width


def _outline_shift(normalized: np.ndarray, axis: np.ndarray, width: float) -> np.ndarray:
    """How far the face outline (its sides, from temples to cheeks) lies sideways in each
    pose-normalized frame, along the face axis `axis` (`_face_across` of the first frame), in
    face widths from the first frame's: (N,). A head turn shows here: the similarity takes out
    roll, scale and shift, but a turned face's outline slides against its features."""
    sides = normalized[:, TEMPLES_TO_CHEEKS].mean(axis=1)
    return (sides - sides[0]) @ axis / width


def _neutral_shape(normalized: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """The driver's neutral face (68, 2), pose-normalized, assembled per region (module doc),
    each region as if the head were turned as it mostly is (the median outline shift): a region
    taken from a frame turned otherwise carries that turn into every frame's expression, against
    the other regions. The first frame of face_3 is turned 12 % of its face width away from the
    rest of the clip: measured from it, the jaw slid that far against the temples (a bulging
    cheek on a painting) in every frame."""
    usable = np.flatnonzero(valid) if valid is not None and np.any(valid) else np.arange(len(normalized))
    frames = normalized[usable]
    axis, width = _face_across(frames[0])
    shift = _outline_shift(frames, axis, width)
    usual = float(np.median(shift))
    turn = np.abs(shift - usual)
    alike = frames[turn <= max(POSED_ALIKE, float(turn.min()))]
    neutral = np.median(alike, axis=0)
    closed = int(np.argmin(mouth_opening(frames)))
    neutral[MOUTH_AND_JAW] = frames[closed, MOUTH_AND_JAW]
    # the most closed mouth may come with another turn: its jaw goes back to the usual one
    neutral[LOWER_JAW] -= (shift[closed] - usual) * width * axis
    eyes = eye_opening(alike).mean(axis=-1)
    typical = int(np.argmin(np.abs(eyes - np.median(eyes))))
    neutral[EYES_AND_BROWS] = alike[typical, EYES_AND_BROWS]
    return neutral


def retarget(source: Face, driver: LandmarkTrack, config: MotionConfig | None = None) -> MotionTrack:
    """Target landmarks (in the source image) for every driver frame.

    `config.driver_ref`, when set, must index a frame of the driver (negative counts from the
    end, like Python); out of range raises InputError. Unset, neutral references are chosen per
    region (module doc), per camera shot when the driver has cuts. Invalid driver frames were
    already held by the tracker and are used as they are.
    """
    config = config or MotionConfig()
    shots = _spans(driver, round(config.lost_for_s * driver.fps))
    if config.driver_ref is not None or len(shots) == 1:
        return _retarget_shot(source, driver, config)

    def one_shot(frames: range) -> LandmarkTrack:
        part = slice(frames.start, frames.stop)
        return replace(driver, points=driver.points[part], pupils=driver.pupils[part],
                       valid=driver.valid[part], cuts=(),
                       mesh=None if driver.mesh is None else driver.mesh[part])

    parts = [_retarget_shot(source, one_shot(frames), config) for frames in shots]
    return MotionTrack(points=np.concatenate([p.points for p in parts]),
                       pupils=np.concatenate([p.pupils for p in parts]),
                       heads=np.concatenate([p.heads for p in parts]))


def _spans(driver: LandmarkTrack, lost_for: int) -> list[range]:
    """The driver's camera shots, each further split around every run of at least `lost_for`
    frames (and at least 2) where the tracker lost the face: such a run is a span of its own.
    Its frames hold the last points seen, often a face turning away mid-word; retargeted on
    their own they move nothing, so the portrait rests in its own pose, and a face found again
    after the camera zoomed or the person moved is measured from where it is found, as after a
    cut (the Mona Lisa driven by a singer lost for 2 s: without this she held a face torn by
    his turn away for those 2 s, then shrank as the camera had pulled back)."""
    lost_for = max(int(lost_for), 2)
    spans = []
    for shot in driver.camera_shots():
        valid = np.asarray(driver.valid[shot.start:shot.stop], bool)
        edges = np.flatnonzero(np.diff(np.r_[True, valid, True].astype(np.int8))) + shot.start  # lost runs' ends
        cuts = [edge for a, b in zip(edges[::2], edges[1::2]) if b - a >= lost_for for edge in (a, b)]
        bounds = [shot.start, *[c for c in cuts if shot.start < c < shot.stop], shot.stop]
        spans += [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    return spans


def _retarget_shot(source: Face, driver: LandmarkTrack, config: MotionConfig) -> MotionTrack:
    """`retarget` for a driver filmed in one continuous camera shot."""
    pts = np.asarray(driver.points, np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2) or len(pts) == 0:
        raise InputError(f"driver track must hold (N, 68, 2) points, got {pts.shape}")
    n = len(pts)
    ref_index = 0 if config.driver_ref is None else int(config.driver_ref)
    if not -n <= ref_index < n:
        raise InputError(f"--driver-ref {ref_index} is out of range: the driver has {n} frames")
    ref = pts[ref_index]
    src = np.asarray(source.points, np.float64)
    if not (np.isfinite(pts).all() and np.isfinite(src).all()):
        raise InputError("landmarks contain NaN or infinite values")

    try:
        m = fit_similarity(ref[STABLE_POINTS], src[STABLE_POINTS])
    except ValueError as err:
        raise InputError(f"cannot align driver and source faces: {err}") from err
    m_inv = invert(m)

    if config.mode == "absolute":
        target = apply_transform(m, pts)
        heads = fit_similarities(src[STABLE_POINTS], target[:, STABLE_POINTS])
    elif config.mode == "relative":
        q = fit_similarities(ref[STABLE_POINTS], pts[:, STABLE_POINTS])  # (N, 3, 3)
        q_inv = np.linalg.inv(q)
        normalized = np.einsum("nij,nkj->nki", q_inv[:, :2, :2], pts) + q_inv[:, None, :2, 2]
        neutral = ref if config.driver_ref is not None else _neutral_shape(normalized, driver.valid)
        delta = normalized - neutral  # (N, 68, 2), driver ref frame
        lin = m[:2, :2]
        delta_src = delta @ lin.T  # into source frame, similarity-scaled
        # Per-region proportions: a source whose mouth is wider relative to its face than the
        # driver's moves its lips proportionally more (isotropic, from the corner-to-corner
        # width only: heights depend on whether a mouth happens to be open). Measured in the
        # source frame after M, so only the shape difference remains; clamped to stay sane.
        ref_in_src = apply_transform(m, ref)
        ratio = _mouth_width(src) / max(_mouth_width(ref_in_src), 1e-6)
        delta_src[:, MOUTH] *= float(np.clip(ratio, 0.8, 1.25))
        delta_src = _chin_follows_lips(delta_src, delta @ lin.T, src, apply_transform(m, neutral))
        base = _eyelids(src[None] + delta_src, src, normalized, neutral, driver.valid)
        base = limit_turn(base, src, config.narrowest_half)
        heads = m[None] @ q @ m_inv[None] if config.head_motion else np.broadcast_to(np.eye(3), (n, 3, 3))
        heads = limit_travel(heads, src, config.head_travel, config.head_scale)
        target = np.einsum("nij,nkj->nki", heads[:, :2, :2], base) + heads[:, None, :2, 2]
    else:
        raise InputError(f"unknown motion mode {config.mode!r} (relative or absolute)")

    pupils = transfer_pupils(pts, driver.pupils, target)
    return MotionTrack(points=target.astype(np.float32), pupils=pupils, heads=np.array(heads, np.float64))


def _chin_follows_lips(delta_src: np.ndarray, delta_driver: np.ndarray, source: np.ndarray,
                       neutral: np.ndarray) -> np.ndarray:
    """Offsets (N, 68, 2) whose chin points squeeze towards the lower lip above them by no more
    of the portrait's room between the two than the driver's squeeze takes of its own
    (`delta_driver`, `neutral`: the driver's offsets and neutral face in the portrait's frame and
    scale). A wide-open mouth squeezes the skin between lower lip and chin; taken in pixels onto
    a portrait with less room there (a shorter chin, the far side of a turned face) it crushed
    that skin flat (art_14 driven by d6: to 0.47 of its spacing where the driver's went to
    0.64), and the renderer, refusing the fold, gave back a fifth of the mouth's opening and tore
    the lower lip. A portrait with more room keeps the driver's squeeze in pixels."""
    room = np.linalg.norm(source[CHIN] - source[LIP_ABOVE_CHIN], axis=-1)
    driver_room = np.linalg.norm(neutral[CHIN] - neutral[LIP_ABOVE_CHIN], axis=-1)
    share = np.clip(room / np.maximum(driver_room, 1e-6), LEAST_CHIN_ROOM, 1.0)
    squeeze = delta_driver[:, CHIN] - delta_driver[:, LIP_ABOVE_CHIN]
    out = delta_src.copy()
    out[:, CHIN] = delta_src[:, LIP_ABOVE_CHIN] + share[None, :, None] * squeeze
    return out


def _face_halves(points: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widths of the face's two halves along `axis`: nose tip to the outline's side (temples to
    cheeks) on the side of point 0, and on the side of point 16. (...,) each."""
    nose = points[..., NOSE_TIP, :] @ axis
    return (nose - points[..., TEMPLES_TO_CHEEKS[:4], :].mean(axis=-2) @ axis,
            points[..., TEMPLES_TO_CHEEKS[4:], :].mean(axis=-2) @ axis - nose)


def limit_turn(targets: np.ndarray, source: np.ndarray, narrowest: float) -> np.ndarray:
    """Targets (N, 68, 2) in the source's pose whose face half (`_face_halves`) would narrow below
    `narrowest` of the source's own get the across-the-face part of their offset from the source
    scaled down until it does not; the rest of the offset (mouth opening, blinks, nods) is kept.

    A driver turned towards a profile squeezes one half of the face; held on to, the portrait's
    nose crosses its own outline and the warp folds the face over itself (the Mona Lisa driven
    by a singer turning from the camera: halves at -0.55 of hers, the face torn in two).
    The halves are linear in the offset, so one scale per frame lands the narrower on the limit.
    """
    targets = np.asarray(targets, np.float64)
    axis, width = _face_across(source)
    own = np.stack(_face_halves(source, axis))  # (2,)
    # a portrait seen in profile has its nose at or past one side of its outline already: that
    # half has no width of its own to keep (s10: -0.05 of its face width)
    judged = own > MEASURABLE_HALF * width
    ratios = np.stack(_face_halves(targets, axis), axis=-1) / np.maximum(own, 1e-6)  # (N, 2)
    squeeze = np.where(judged, ratios, 1.0).min(axis=-1)  # (N,)
    scale = np.where(squeeze < narrowest, (1.0 - narrowest) / np.maximum(1.0 - squeeze, 1e-6), 1.0)
    offset = targets - source
    sideways = (offset @ axis)[..., None] * axis
    return targets - (1.0 - scale)[:, None, None] * sideways


def _knee(x: np.ndarray, follow: float, most: float) -> np.ndarray:
    """x (>= 0) kept up to `follow`, then eased towards `most`, never past it."""
    over = np.maximum(x - follow, 0.0)
    return np.minimum(x, follow) + (most - follow) * np.tanh(over / max(most - follow, 1e-9))


def limit_travel(heads: np.ndarray, source: np.ndarray, travel: tuple[float, float],
                 scale: tuple[float, float]) -> np.ndarray:
    """Head poses (N, 3, 3) whose face (the centre of `source`'s landmarks) travels further than
    `travel[0]` face widths from its place, or grows or shrinks by more than `scale[0]`, eased
    so that it never passes `travel[1]` or `scale[1]` (`_knee`); the rotation is kept. The head
    of a painting has a body below it: it can lean and turn, not walk out of the picture."""
    heads = np.array(heads, np.float64)
    centre = source.mean(axis=0)
    _, width = _face_across(source)
    size = np.sqrt(np.abs(np.linalg.det(heads[:, :2, :2])))
    log_size = np.log(np.maximum(size, 1e-6))
    eased = np.sign(log_size) * _knee(np.abs(log_size), np.log(scale[0]), np.log(scale[1]))
    heads[:, :2, :2] *= (np.exp(eased) / np.maximum(size, 1e-6))[:, None, None]
    moved = heads[:, :2, :2] @ centre + heads[:, :2, 2] - centre  # (N, 2): where the centre goes
    far = np.linalg.norm(moved, axis=1) / width
    keep = _knee(far, *travel) / np.maximum(far, 1e-9)
    heads[:, :2, 2] -= moved * (1.0 - keep)[:, None]
    return heads


def _lid_gaps(points: np.ndarray) -> np.ndarray:
    """Eyelid gap of each eye (mean of its two upper-lower pairs): (..., 2)."""
    return np.stack([np.mean([np.linalg.norm(points[..., up, :] - points[..., low, :], axis=-1)
                              for up, low in zip(*eye)], axis=0) for eye in LIDS], axis=-1)


def _eyelids(base: np.ndarray, source: np.ndarray, normalized: np.ndarray, neutral: np.ndarray,
             valid: np.ndarray | None = None) -> np.ndarray:
    """Re-place the eyelids of `base` (N, 68, 2) by how far open the driver's eyes are: its
    neutral gap gives the portrait's own, a gap below SHUT_RATIO of its open level shuts the
    lids, linearly in between (ratios, so a portrait with narrow eyes closes them as fully as one
    with wide eyes); each eye keeps its other motion (the mean shift of its corners)."""
    gaps = _lid_gaps(normalized)  # (N, 2)
    usable = gaps[valid] if valid is not None and np.any(valid) else gaps
    neutral_gap = np.maximum(_lid_gaps(neutral), 1e-6)  # (2,)
    shut_gap = np.minimum(SHUT_RATIO * np.percentile(usable, OPEN_EYES_PERCENTILE, axis=0), SHUT_AT_MOST * neutral_gap)
    opening = np.where(gaps <= neutral_gap, np.clip((gaps - shut_gap) / (neutral_gap - shut_gap), 0.0, 1.0),
                       np.minimum(gaps / neutral_gap, MAX_WIDEN))
    out = base.copy()
    for eye, ((up_a, up_b), (low_a, low_b)), corners in zip(range(2), LIDS, EYE_CORNERS):
        shift = (base[:, list(corners)] - source[list(corners)]).mean(axis=1)  # (N, 2)
        upper, lower = source[[up_a, up_b]], source[[low_a, low_b]]
        meet = lower + LID_MEET * (upper - lower)
        f = opening[:, eye, None, None]
        out[:, [up_a, up_b]] = meet + f * (upper - meet) + shift[:, None]
        out[:, [low_a, low_b]] = meet + f * (lower - meet) + shift[:, None]
    return out
