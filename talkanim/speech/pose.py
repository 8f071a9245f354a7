"""`--pose VIDEO`: head pose, eyelids, brows and gaze from a video's landmark track.

The pose video is retargeted onto the template face exactly as a driver is onto a portrait
(`motion.retarget`: relative motion, so its face shape does not leak in), then split into a
head similarity per frame and the pose-free offsets of the eyes and brows. The mouth and jaw
are left to the speech. When the speech outlasts the video, the video plays forwards and
backwards again (no jump). dlib's landmarks barely see blinks; when the pose video shows none,
idle blinks are added.
"""

from __future__ import annotations

import numpy as np

from talkanim.landmarks.measures import eye_centres, eye_opening
from talkanim.landmarks.types import Face, LandmarkTrack
from talkanim.motion import retarget
from talkanim.motion.geometry import STABLE_POINTS, fit_similarity, invert
from talkanim.speech.face import EYELIDS, MOUTH_POINTS
from talkanim.speech.idle import IdleMotion, PoseFrames

# A pose video "shows blinks" when its eye opening drops below this share of its median.
BLINK_SEEN = 0.6


def template_face(template: np.ndarray) -> Face:
    """The template as a portrait's face: what a pose video is retargeted onto."""
    lo, hi = template.min(axis=0), template.max(axis=0)
    return Face(points=np.asarray(template, np.float32), box=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                pupils=eye_centres(template))


def ping_pong(index: np.ndarray, length: int) -> np.ndarray:
    """Frame of a `length`-frame video shown at output frame `index`: forwards, then backwards."""
    if length <= 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    k = np.asarray(index) % period
    return np.where(k < length, k, period - k)


class PoseVideo:
    """A pose source from a tracked video (same `next(voice)` as `IdleMotion`)."""

    def __init__(self, track: LandmarkTrack, template: np.ndarray, *, fps: float, seed: int = 0, idle_config=None) -> None:
        template = np.asarray(template, np.float64)
        motion = retarget(template_face(template), track)
        n = motion.num_frames
        head = np.empty((n, 3, 3))
        offsets = np.empty((n, 68, 2))
        pupils = np.empty((n, 2, 2))
        for i in range(n):
            h = fit_similarity(template[STABLE_POINTS], motion.points[i][STABLE_POINTS])
            inv = invert(h)
            head[i] = h
            offsets[i] = motion.points[i] @ inv[:2, :2].T + inv[:2, 2] - template
            pupils[i] = motion.pupils[i] @ inv[:2, :2].T + inv[:2, 2]
        offsets[:, MOUTH_POINTS] = 0.0
        self.head, self.offsets, self.pupils = head, offsets.astype(np.float32), pupils.astype(np.float32)
        # track.fps may differ from the output's: sample the video at the output's clock
        self.step = track.fps / fps
        self.frame = 0
        opening = eye_opening(track.points[track.valid] if track.valid.any() else track.points).mean(axis=1)
        self.sees_blinks = bool(opening.min() < BLINK_SEEN * np.median(opening))
        self.idle = None if self.sees_blinks else IdleMotion(template, fps, seed, idle_config)

    def next(self, voice: np.ndarray) -> PoseFrames:
        n = len(voice)
        idx = ping_pong(np.round((self.frame + np.arange(n)) * self.step).astype(int), len(self.head))
        self.frame += n
        offsets = self.offsets[idx].copy()
        if self.idle is not None:  # borrow only the eyelids of idle motion
            lids = [i for pair in EYELIDS for i in pair]
            offsets[:, lids] += self.idle.next(voice).offsets[:, lids]
        return PoseFrames(head=self.head[idx], offsets=offsets, pupils=self.pupils[idx])
