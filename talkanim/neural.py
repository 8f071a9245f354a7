"""The neural part of `animate`: load the meta-learned model, fine-tune it on the shots of the
portrait's person, and hand the renderer a `refine` hook.

Kept apart from `api.py` so the warp-only path never imports the model, and so the steps read
top to bottom: pick weights -> crop the shots -> fine-tune (or load a saved person) -> refiner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from talkanim.config import AnimateConfig, NeuralConfig, RenderConfig
from talkanim.errors import WeightsError
from talkanim.landmarks.measures import eye_centres
from talkanim.landmarks.types import Face
from talkanim.render.crop import crop_image, face_crop_box

PERSON_FORMAT = "talkanim-person"
PERSON_VERSION = "1"

Refine = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
Log = Callable[[str], None]
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class NeuralFace:
    """A model ready to refine one person's frames."""

    mode: str  # "hybrid" or "paper"
    refine: Refine
    finetune_seconds: float
    finetune_steps: int


@dataclass
class Shot:
    """One picture of the person, cropped the way the renderer crops the portrait."""

    image: np.ndarray  # (S, S, 3) uint8
    points: np.ndarray  # (68, 2) crop pixels at S
    pupils: np.ndarray  # (2, 2)


def wanted_mode(config: NeuralConfig) -> str | None:
    """The model mode to run, or None for warp only.

    "auto" runs the shipped weights marked as the default (those that beat the warp on the
    validation identities), hybrid when the user gives weights or a person, else warp only.
    """
    if config.model == "none":
        return None
    if config.model != "auto":
        return config.model
    from talkanim.model.shipped import default_mode

    if config.weights is not None or config.person is not None:
        return "hybrid"
    return default_mode()


def make_shot(image: np.ndarray, face: Face, render: RenderConfig, size: int) -> Shot:
    """Crop a picture around its face with the renderer's crop geometry, at `size`."""
    box = face_crop_box(face.points, render.crop_scale)
    pupils = face.pupils if face.pupils is not None else eye_centres(face.points)
    return Shot(crop_image(image, box, size), box.to_crop(face.points, size), box.to_crop(pupils, size))


def shot_tensors(shots: list[Shot]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cropped shots as the model takes them: images (T, 3, S, S) in [0, 1], points (T, 68, 2)
    and pupils (T, 2, 2) in crop px."""
    images = torch.from_numpy(np.stack([s.image for s in shots])).permute(0, 3, 1, 2).float() / 255
    points = torch.from_numpy(np.stack([s.points for s in shots])).float()
    pupils = torch.from_numpy(np.stack([s.pupils for s in shots])).float()
    return images, points, pupils


def prepare(
    mode: str,
    pictures: list[tuple[np.ndarray, Face]],
    animate_config: AnimateConfig,
    *,
    device: str,
    log: Log | None = None,
    progress: Progress | None = None,
) -> NeuralFace:
    """Load the `mode` model and adapt it to the person in `pictures` (the portrait first)."""
    from talkanim.model import TalkingHeadModel
    from talkanim.model.shipped import resolve_weights
    from talkanim.model.weights import load_weights, save_weights, sha256_bytes

    config = animate_config.neural
    path, expected = resolve_weights(mode, config.weights)
    model = TalkingHeadModel.from_weights(path, device=device, expected_sha256=expected)
    if model.config.mode != mode:
        raise WeightsError(f"{path} holds a {model.config.mode} model, not {mode}")
    base_sha = expected or sha256_bytes(path.read_bytes())
    size = model.config.image_size
    shots = [make_shot(image, face, animate_config.render, size) for image, face in pictures]

    if config.person is not None:
        tensors, meta = load_weights(config.person)
        if meta.get("format") != PERSON_FORMAT or meta.get("format_version") != PERSON_VERSION:
            raise WeightsError(f"{config.person}: not a talkanim person file")
        if meta.get("model_sha256") != base_sha:
            raise WeightsError(f"{config.person} was fine-tuned from other weights than {path.name}")
        generator = {k.removeprefix("generator."): v for k, v in tensors.items() if k.startswith("generator.")}
        model.generator.load_state_dict(generator)
        if log:
            log(f"model: {mode}, person loaded from {config.person}")
        return NeuralFace(mode, model.refiner(tensors["adain_params"].to(device)), 0.0, 0)

    from talkanim.train.finetune import finetune

    images, points, pupils = shot_tensors(shots)
    started = time.perf_counter()
    on_step = (lambda step, total, _: progress("finetune", step, total)) if progress else None
    tuned = finetune(model, images, points, pupils, steps=config.finetune_steps, device=device, progress=on_step)
    seconds = time.perf_counter() - started
    if log:
        log(f"model: {mode}, fine-tuned {tuned.steps} steps on {len(shots)} shot(s) in {seconds:.1f} s, "
                f"kept step {tuned.kept_step} (best on held-out shots)")
    if config.save_person is not None:
        tensors = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
        tensors["adain_params"] = tuned.adain_params
        tensors["shot_points"] = points
        save_weights(config.save_person, tensors, {
            "format": PERSON_FORMAT, "format_version": PERSON_VERSION, "model_sha256": base_sha,
            "mode": mode, "shots": str(len(shots)), "finetune_steps": str(tuned.steps),
        })
    return NeuralFace(mode, model.refiner(tuned.adain_params), seconds, tuned.steps)


__all__ = ["NeuralFace", "Shot", "make_shot", "prepare", "shot_tensors", "wanted_mode"]
