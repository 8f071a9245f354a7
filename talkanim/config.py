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


@dataclass
class TrackConfig:
    """Landmark detection and tracking."""

    backend: LandmarkBackendName = "auto"
    # Largest side a frame is shrunk to before face *detection* (not landmark fitting).
    detect_max_side: int = 640
    # Re-run the detector after this many tracked frames even when tracking looks fine.
    redetect_every: int = 0
    # One-Euro filter (Casiry et al. 2012): lower min_cutoff = less jitter, higher beta = less lag.
    smooth: bool = True
    min_cutoff: float = 1.0
    beta: float = 5.0  # per face-size per second: mouth motion must not lag (measured on 3 clips)
    d_cutoff: float = 1.0
    # The eyelids (points 37, 38, 40, 41, 43, 44, 46, 47) close in 2-4 frames: with the settings
    # above a blink was smoothed away (driver d6: 17 % of its closed-eye frames left closed).
    # A speed estimate that reacts within a frame and a steep beta keep 83 % of them, with half
    # the frame-to-frame wobble of the raw lids (measured on d6 with the mesh backend).
    lid_beta: float = 20.0
    lid_d_cutoff: float = 10.0


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


@dataclass
class RenderConfig:
    """Warp, mouth fill and paste-back."""

    size: int = 256  # working resolution of the face crop (flow is computed here)
    # Side of the square face crop as a multiple of the landmarks' bounding-box size.
    crop_scale: float = 2.2
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
