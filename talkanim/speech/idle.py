"""Motion that speech does not carry: head sway, blinks, brows and gaze, generated frame by frame.

Everything is in the template's canvas (`face.py`) and seeded, so `--seed` reproduces a run and
another seed gives another performance. The generator is a stream: `next(voice)` gives the
next len(voice) frames, and its state carries over, so a one-hour talk costs no more memory
than a sentence.

- Head: roll, left-right and up-down drift and a little scale, each a smooth random signal
  (white noise through two first-order low-passes), pivoting below the chin. It moves more
  while the person speaks, and nods a little on loud onsets.
- Blinks: intervals drawn from a shifted log-normal (mean ~3.6 s: ~17 a minute, irregular),
  sometimes a double blink; each lasts 100-300 ms, closes faster than it opens, and is fully
  shut at one frame.
- Brows: slow drift, raised a little on loud onsets.
- Gaze: fixations of 0.7-3 s near the centre, joined by two-frame saccades.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkanim.config import IdleConfig
from talkanim.landmarks.measures import eye_centres
from talkanim.speech.face import BROWS, CANVAS, EYELIDS

PIVOT = (CANVAS / 2.0, 200.0)  # below the template's chin: the head turns on the neck


@dataclass
class PoseFrames:
    """What a pose source gives for some frames, in the template's canvas.

    `head` maps the pose-free face to the frame (similarities); `offsets` move the template's
    eyelids and brows (zero on the mouth and jaw); `pupils` are in the pose-free face."""

    head: np.ndarray  # (n, 3, 3)
    offsets: np.ndarray  # (n, 68, 2)
    pupils: np.ndarray  # (n, 2, 2)


def similarity(roll_deg: np.ndarray, scale: np.ndarray, tx: np.ndarray, ty: np.ndarray,
               pivot: tuple[float, float] = PIVOT) -> np.ndarray:
    """(n, 3, 3) similarities: rotate by `roll_deg` and scale about `pivot`, then translate."""
    a = np.deg2rad(np.asarray(roll_deg, np.float64))
    c, s = np.cos(a) * scale, np.sin(a) * scale
    out = np.zeros((len(a), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
    px, py = pivot
    out[:, 0, 2] = px - (c * px - s * py) + tx
    out[:, 1, 2] = py - (s * px + c * py) + ty
    out[:, 2, 2] = 1.0
    return out


class SmoothNoise:
    """Unit-variance smooth random signal: white noise through two equal first-order low-passes
    of time constant `tau` seconds, sampled at `fps`."""

    def __init__(self, rng: np.random.Generator, tau: float, fps: float, dims: int = 1) -> None:
        self.rng = rng
        self.a = float(np.exp(-1.0 / (tau * fps)))
        a = self.a
        # stationary variance of the cascade for unit white noise, to normalize it to 1
        self.gain = 1.0 / np.sqrt((1 - a) ** 4 * (1 + a * a) / (1 - a * a) ** 3)
        self.x = rng.standard_normal(dims) * np.sqrt((1 - a) ** 2 / (1 - a * a))  # first stage
        self.y = rng.standard_normal(dims) / self.gain  # second stage, near its stationary spread

    def next(self, n: int) -> np.ndarray:
        out = np.empty((n, len(self.y)))
        a = self.a
        noise = self.rng.standard_normal((n, len(self.y)))
        for i in range(n):
            self.x = a * self.x + (1 - a) * noise[i]
            self.y = a * self.y + (1 - a) * self.x
            out[i] = self.y * self.gain
        return out


class IdleMotion:
    """Seeded idle motion of the template face, generated as a stream (module docstring)."""

    def __init__(self, template: np.ndarray, fps: float, seed: int = 0, config: IdleConfig | None = None) -> None:
        self.template = np.asarray(template, np.float64)
        self.fps = float(fps)
        self.config = config or IdleConfig()
        # one random stream per process, so how the frames are requested (in chunks of any
        # size) does not change what is drawn
        head, brow, events = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        self.rng = events  # blinks and saccades, drawn in frame order
        c = self.config
        self.head = SmoothNoise(head, c.head_tau_s, fps, dims=4)
        self.brow = SmoothNoise(brow, 1.5, fps)
        self.rise = 0.0  # low-passed rise of the voice envelope
        self.emphasis = 0.0  # the same, low-passed again
        self.talking = 0.0  # low-passed voice activity
        self.prev_voice = 0.0
        self.frame = 0
        self.blinks: list[tuple[float, float]] = []  # (peak time s, duration s), upcoming
        self._plan_blink_after(self.rng.uniform(0.3, 2.5))
        self.gaze = np.zeros(2)
        self.gaze_from = np.zeros(2)
        self.gaze_to = np.zeros(2)
        self.saccade_start = -10
        self.saccade_at = self.rng.uniform(0.7, 3.0) * fps
        iod = float(np.linalg.norm(eye_centres(self.template)[1] - eye_centres(self.template)[0]))
        self.unit = iod / 64.0  # amplitudes are given for the canvas's 64 px eye distance

    # -- blinks ------------------------------------------------------------------------------
    def _plan_blink_after(self, start_s: float) -> None:
        c = self.config
        mean = max(c.blink_interval_s - c.blink_min_gap_s, 0.1)
        sigma = 0.6
        gap = c.blink_min_gap_s + mean * np.exp(sigma * self.rng.standard_normal() - sigma**2 / 2)
        duration = self.rng.uniform(c.blink_min_s, c.blink_max_s)
        # the shut moment falls on a frame, so a 100 ms blink still closes fully at 25 fps
        peak = np.round((start_s + gap) * self.fps) / self.fps
        self.blinks.append((float(peak), float(duration)))
        if self.rng.random() < c.double_blink:
            self.blinks.append((float(peak + np.round(self.rng.uniform(0.35, 0.5) * self.fps) / self.fps),
                                float(self.rng.uniform(c.blink_min_s, c.blink_max_s))))

    def _closure(self, t: float) -> float:
        """Eyelid closure in [0, 1] at time t: fast close (35 %), slower open (65 %)."""
        while self.blinks and t > self.blinks[0][0] + 0.65 * self.blinks[0][1]:
            last_peak = self.blinks.pop(0)[0]
            if not self.blinks:
                self._plan_blink_after(last_peak)
        if not self.blinks:
            return 0.0
        peak, dur = self.blinks[0]
        if t < peak - 0.35 * dur:
            return 0.0
        phase = (t - peak) / (0.35 * dur) if t <= peak else (t - peak) / (0.65 * dur)
        return float(0.5 * (1 + np.cos(np.pi * min(abs(phase), 1.0))))

    # -- gaze --------------------------------------------------------------------------------
    def _gaze(self) -> np.ndarray:
        """Gaze offset (eye widths) for the current frame: fixations joined by saccades."""
        c = self.config
        if self.frame >= self.saccade_at:
            self.gaze_from = self.gaze.copy()
            self.gaze_to = self.rng.normal(0.0, [c.gaze_x, c.gaze_y])
            self.saccade_start = self.frame
            self.saccade_at = self.frame + self.rng.uniform(0.7, 3.0) * self.fps
        if self.frame - self.saccade_start <= 2:
            w = (self.frame - self.saccade_start) / 2.0
            self.gaze = self.gaze_from + w * (self.gaze_to - self.gaze_from)
        return self.gaze

    # -- frames ------------------------------------------------------------------------------
    def next(self, voice: np.ndarray) -> PoseFrames:
        """The next len(voice) frames; `voice` is the speech activity per frame, 0 (silent) to 1."""
        voice = np.clip(np.asarray(voice, np.float64), 0.0, 1.0)
        n = len(voice)
        c = self.config
        k = 1.0 / (0.25 * self.fps + 1.0)  # emphasis follows the voice's rises over ~0.25 s
        k_talk = 1.0 / (0.8 * self.fps + 1.0)  # how much the head moves follows speech over ~0.8 s
        emphasis, talking = np.empty(n), np.empty(n)
        for i, v in enumerate(voice):
            self.rise += k * (max(v - self.prev_voice, 0.0) * self.fps * 0.1 - self.rise)
            self.emphasis += k * (self.rise - self.emphasis)  # twice low-passed: a nod, not a jolt
            self.talking += k_talk * (v - self.talking)
            self.prev_voice = v
            emphasis[i], talking[i] = min(self.emphasis, 1.0), self.talking
        activity = c.still + (1.0 - c.still) * talking  # smooth: syllables must not shake the head
        noise = self.head.next(n)
        u = self.unit
        roll = c.roll_deg * activity * noise[:, 0]
        tx = c.sway_px * u * activity * noise[:, 1]
        ty = c.nod_px * u * (activity * noise[:, 2] + 1.5 * emphasis)
        scale = 1.0 + c.scale * activity * noise[:, 3]
        head = similarity(roll, scale, tx, ty)

        offsets = np.zeros((n, 68, 2))
        pupils = np.repeat(eye_centres(self.template)[None].astype(np.float64), n, axis=0)
        eye_width = np.linalg.norm(self.template[[39, 45]] - self.template[[36, 42]], axis=1)
        brow = self.brow.next(n)[:, 0]
        for i in range(n):
            t = self.frame / self.fps
            shut = self._closure(t) * c.blink_depth
            for upper, lower in EYELIDS:
                gap = self.template[lower] - self.template[upper]
                offsets[i, upper] += 0.75 * shut * gap
                offsets[i, lower] -= 0.25 * shut * gap
            offsets[i, BROWS, 1] -= (c.brow_px * u) * (0.5 * brow[i] + 1.2 * emphasis[i])
            pupils[i] += self._gaze()[None] * eye_width[:, None]
            self.frame += 1
        return PoseFrames(head=head, offsets=offsets.astype(np.float32), pupils=pupils.astype(np.float32))
