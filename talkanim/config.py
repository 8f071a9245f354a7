"""Every tunable of the pipeline, in one typed place.

Stages take the dataclass that concerns them; `AnimateConfig` gathers them for `api.animate`.
Defaults here are the defaults users get from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

LandmarkBackendName = Literal["auto", "mesh", "dlib", "fan"]
MotionMode = Literal["relative", "absolute"]
ModelMode = Literal["auto", "hybrid", "paper", "none"]
DeviceName = Literal["auto", "cpu", "cuda"]
MouthModelName = Literal["auto", "learned", "loudness"]


@dataclass
class TrackConfig:
    """Landmark detection and tracking."""

    backend: LandmarkBackendName = "auto"
    # Largest side a frame is shrunk to before face *detection* (not landmark fitting).
    detect_max_side: int = 640
    # Re-run the detector after this many tracked frames even when tracking looks fine.
    redetect_every: int = 0
    # One-Euro filter (Casiez et al. 2012): lower min_cutoff = less jitter, higher beta = less lag.
    smooth: bool = True
    min_cutoff: float = 1.0
    beta: float = 5.0  # per face-size per second: mouth motion must not lag (measured on 3 clips)
    d_cutoff: float = 1.0
    # Eyelids and lips move faster than the head and get their own filter (tracker.EYELIDS, LIPS).
    # The eyelids close in 2-4 frames: with the settings above a blink was smoothed away (driver
    # d6: 17 % of its closed-eye frames left closed); with these, 83 % are kept. The lips shape
    # syllables at 4-8 Hz: the head's settings kept 0.91 of seven speakers' mouth-opening range
    # (0.74 on a lip-reading clip) and the output's mouth followed the driver's at r 0.78 over
    # the viewer pairs; these keep 0.97 of the range, r 0.88, passing 0.58 of the raw lips'
    # frame-to-frame wobble (the head's settings: 0.30; measured with the mesh backend).
    fast_beta: float = 20.0
    fast_d_cutoff: float = 10.0


@dataclass
class MotionConfig:
    """How driver landmarks become target landmarks on the source face."""

    mode: MotionMode = "relative"
    # The driver's neutral reference frame. None: head pose from frame 0, expression from the
    # driver's most neutral frames per region (mouth most closed, eyes typically open).
    driver_ref: int | None = None
    head_motion: bool = True
    # With extra shots, each frame's face is blended from this many of the nearest pictures
    # (1: the single nearest). Three beat one on held-out clips (T = 8: mouth SSIM 0.718 ->
    # 0.738); more gain little and soften the face (see talkanim/motion/shots.py).
    shot_blend: int = 3
    # A driver turning far (towards a profile) squeezes one half of the face, nose tip to
    # outline, across; a 2D warp folds where it would pass the outline (the nose crossing the
    # cheek: a torn face). The across-the-face part of such frames' expression is scaled down so
    # neither half narrows below this share of the portrait's own (motion.retarget.limit_turn).
    narrowest_half: float = 0.4
    # The tracker losing the driver's face this long (seconds) splits the driver like a camera
    # cut: the portrait rests in its own pose meanwhile (motion.retarget._spans).
    lost_for_s: float = 0.5
    # How far the head may travel from its place in the portrait, in face widths, and grow or
    # shrink (a factor): followed fully up to the first number, then ever less, never past the
    # second. Drivers talking in place move the head up to 0.27 face widths and scale it by
    # 0.93-1.11; a singer walking about a wide shot moved it 1.5 and zoomed 0.66, and the
    # portrait's head left its body (motion.retarget.limit_travel).
    head_travel: tuple[float, float] = (0.3, 0.45)
    head_scale: tuple[float, float] = (1.15, 1.3)


@dataclass
class RenderConfig:
    """Warp, mouth fill and paste-back."""

    size: int = 256  # working resolution of the face crop (flow is computed here)
    # Side of the square face crop as a multiple of the landmarks' bounding-box size.
    crop_scale: float = 2.2
    # Share of the face outline's slide against the eyes and nose (a head turning or nodding)
    # that moves the whole head, hair included, instead of the face warp, and how far at most,
    # in face widths (renderer.outline_heads).
    head_follows_outline: float = 1.0
    head_follows_outline_at_most: float = 0.05
    # The warped crop is resampled at up to this many pixels per side in the original picture,
    # so a painting keeps its own fine texture instead of being upscaled from `size`.
    max_paste_side: int = 1024
    mouth_fill: bool = True
    eyelids: bool = True  # a shut eye shows lid skin and lashes (off: the squashed eye stays visible)
    preview: bool = False


@dataclass
class NeuralConfig:
    """The neural refinement: which model, how much fine-tuning on the person's pictures."""

    # auto: hybrid when weights ship with the install, else warp only (none).
    model: ModelMode = "auto"
    weights: Path | None = None  # a model file or training run folder instead of the shipped one
    finetune_steps: int | None = None  # None: about a minute on a 2-core CPU, more on a GPU
    person: Path | None = None  # reuse a fine-tuned person instead of fine-tuning again
    save_person: Path | None = None  # store the fine-tuned person for --person


@dataclass
class IdleConfig:
    """Motion a speech-driven portrait makes that the speech does not carry (speech/idle.py).

    Lengths are canvas pixels of the speech stage's template face, whose eyes are 64 px apart.
    Head amplitudes (standard deviations while speaking) are 60 % of the medians tracked in the
    corpus's talking clips (tilt 2.35 deg, left-right 4.5 px, up-down 2.9 px, scale 1.8 %): a
    painting is calmer than an interview, and large moves strain the warp.
    """

    head_tau_s: float = 1.2  # how slowly the head drifts (time constant of its smooth noise)
    roll_deg: float = 1.4  # head tilt
    sway_px: float = 2.7  # left-right drift
    nod_px: float = 1.8  # up-down drift (and nods on loud onsets)
    scale: float = 0.011  # towards / away from the camera, relative
    still: float = 0.5  # share of that motion left while silent
    blink_interval_s: float = 3.6  # mean time between blinks (~17 a minute)
    blink_min_gap_s: float = 0.8  # never closer than this (except double blinks)
    blink_min_s: float = 0.10  # a blink lasts 100-300 ms
    blink_max_s: float = 0.30
    double_blink: float = 0.1  # chance that a blink is followed by a second one
    blink_depth: float = 1.0  # 1: the lids meet
    brow_px: float = 1.0  # brow drift, and raise on loud onsets
    gaze_x: float = 0.06  # spread of fixations, eye widths
    gaze_y: float = 0.03


@dataclass
class SpeechConfig:
    """How `talkanim speak` turns speech into motion."""

    # learned: the shipped speech -> mouth network; loudness: mouth opening from the loudness
    # envelope (the baseline); auto: whichever the shipped weights mark as the default.
    mouth: MouthModelName = "auto"
    mouth_gain: float = 1.0  # scales the mouth's motion (1: as the model predicts it)
    seed: int = 0  # idle motion: another seed, another performance
    pose: Path | None = None  # head pose, blinks and gaze from this video instead of idle motion
    weights: Path | None = None  # speech weights (a file or a train-speech run) instead of the shipped ones
    voice: str = "en"  # espeak-ng voice for --text
    default_fps: float = 25.0  # output frame rate when there is no pose video
    idle: IdleConfig = field(default_factory=IdleConfig)


@dataclass
class AnimateConfig:
    """Everything `talkanim animate` decides."""

    track: TrackConfig = field(default_factory=TrackConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    neural: NeuralConfig = field(default_factory=NeuralConfig)
    # More pictures of the portrait's person: each frame's face is warped from the one nearest
    # its pose and expression, and a model is fine-tuned on all of them.
    shots: tuple[Path, ...] = ()
    device: DeviceName = "auto"
    face_index: int | None = None  # None: the largest face
    fps: float | None = None  # None: the driver's fps
    audio: bool = True
    speech: SpeechConfig = field(default_factory=SpeechConfig)  # `speak` only


@dataclass
class SpeechTrainConfig:
    """`talkanim train-speech`: the speech -> mouth network and its training (speech/train.py)."""

    coefs: int = 8  # PCA components of the mouth-and-jaw offsets
    channels: int = 64
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # 30 feature frames (0.3 s) of context either side
    dropout: float = 0.1
    steps: int = 3000
    batch_size: int = 16
    window_s: float = 4.0  # seconds of speech per training example
    lr: float = 2e-3
    weight_decay: float = 1e-4
    eval_every: int = 100  # steps between checks on the validation people (the best check is kept)
    augment: bool = True  # random channel colouring of the features (recordings differ)
    noisy_copies: int = 2  # extra copies of each training clip over noise or a music-like bed
    # loss: each mouth component in units of its own spread (True, the shipped weights), or all in
    # one unit, landmark distance, where jaw and lip opening weigh most (False). `train-speech
    # --folds 4 --steps 800`, mouth-opening r: on dlib targets (the default) True 0.299, False
    # 0.267; on mesh targets True 0.311, False 0.340 and 0.319 (two seeds). See MODEL_CARD.md.
    equalize_coefs: bool = True
    seed: int = 0
