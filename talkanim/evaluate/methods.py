"""The methods the protocol compares, behind one small pluggable interface.

A `Method` turns T shots of a person (full frames + their landmarks) into an `Animator`, which
renders full frames (in the shots' picture coordinates) for target landmarks. The protocol
gives it, per target, the weights of the shots nearest in pose/expression (`weights`, from
`talkanim.motion.blend_weights`, as `animate` uses them), so methods that warp start from the
best shots.

- `copy`: the nearest shot, unchanged (the "do nothing" floor).
- `warp`: the pipeline's warp-only renderer (piecewise-affine warp + mouth fill) exactly as
  `animate --shot` builds it: the first shot is the portrait, the face interiors of the nearest
  shots are blended in by their weights.
- `paper` / `hybrid`: the neural model (talkanim.model), set up as `animate --model` sets it up
  (crops, fine-tuning, the network refining the blended warp), when weights are available;
  otherwise `unavailable_reason()` says why and the protocol reports it instead of crashing.

Register another with `register_method(name, factory)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from talkanim.config import RenderConfig
from talkanim.landmarks.types import Face


@dataclass
class Shot:
    """One source frame of the person: the full picture and its face."""

    image: np.ndarray  # (H, W, 3) uint8
    face: Face
    index: int = -1  # frame index in its clip (-1 for a still portrait)
    matte: np.ndarray | None = None  # (H, W) person matte, hair included; None: the renderer's rough one


class Animator(Protocol):
    """A method prepared for one set of shots."""

    note: str  # what was done at preparation (e.g. "fine-tuned 40 steps"), "" if nothing to say

    def generate(self, targets: np.ndarray, pupils: np.ndarray | None, weights: np.ndarray,
                 heads: np.ndarray | None = None) -> np.ndarray:
        """Full frames (B, H, W, 3) uint8 for targets (B, 68, 2) / pupils (B, 2, 2) in picture px;
        `weights` (B, T), rows summing to 1: how much each shot should contribute to each target;
        `heads` (B, 3, 3): the head's similarity per target (None: fitted to the targets)."""
        ...


class Method(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when the method can run, else one line saying why not."""
        ...

    def prepare(self, shots: list[Shot], *, device: str = "cpu") -> Animator:
        ...


# ------------------------------------------------------------------------------ baselines
class CopyMethod:
    """Baseline: show the nearest shot as it is."""

    name = "copy"

    def unavailable_reason(self) -> str | None:
        return None

    def prepare(self, shots: list[Shot], *, device: str = "cpu") -> Animator:
        return _CopyAnimator(shots)


@dataclass
class _CopyAnimator:
    shots: list[Shot]
    note: str = ""

    def generate(self, targets, pupils, weights, heads=None):
        return np.stack([self.shots[int(k)].image for k in np.asarray(weights).argmax(axis=1)])


class _PipelineRenderer:
    """The shots rendered as `animate --shot` renders them: the first shot is the portrait (its
    crop, hair, background and paste-back), the others are extra shots whose face interior is
    blended in by each target's weights (talkanim.render.shots); a `refine` network sees the blend."""

    def __init__(self, shots: list[Shot], config: RenderConfig, device: str):
        from talkanim.render import FaceRenderer

        self.renderer = FaceRenderer(shots[0].image, shots[0].face, config, matte=shots[0].matte,
                                     shots=[(s.image, s.face) for s in shots[1:]], device=device)

    def render(self, targets, pupils, weights, refine: Callable | None = None, heads=None) -> np.ndarray:
        weights = np.asarray(weights, np.float64)
        return self.renderer.render_batch(np.asarray(targets, np.float32), pupils, heads=heads, refine=refine,
                                          shot_weights=weights if weights.shape[1] > 1 else None)


class WarpMethod:
    """Baseline: the pipeline's warp-only renderer (no network), from the nearest shots."""

    name = "warp"

    def __init__(self, config: RenderConfig | None = None):
        self.config = config or RenderConfig()

    def unavailable_reason(self) -> str | None:
        return None

    def prepare(self, shots: list[Shot], *, device: str = "cpu") -> Animator:
        return _WarpAnimator(_PipelineRenderer(shots, self.config, device))


@dataclass
class _WarpAnimator:
    renderer: _PipelineRenderer
    note: str = ""

    def generate(self, targets, pupils, weights, heads=None):
        return self.renderer.render(targets, pupils, weights, heads=heads)


# ------------------------------------------------------------------------------ neural
@dataclass
class ModelMethod:
    """`paper` or `hybrid`: embed the shots, optionally fine-tune, refine each warped crop.

    weights: a `TalkingHeadModel` safetensors file; None looks for the shipped default.
    finetune_steps: few-shot fine-tuning budget passed to `talkanim.train.finetune`;
    0 = feed-forward (embedding only), None = the library's default budget.
    """

    name: str
    weights: Path | None = None
    finetune_steps: int | None = 0
    _model: object | None = field(default=None, repr=False)
    _reason: str | None = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)

    def unavailable_reason(self) -> str | None:
        if self._checked:
            return self._reason
        self._checked = True
        from talkanim.errors import WeightsError
        from talkanim.model.shipped import resolve_weights

        try:
            path, expected = resolve_weights(self.name, self.weights)
        except WeightsError as err:
            self._reason = str(err)
            return self._reason
        try:
            from talkanim.model import TalkingHeadModel

            model = TalkingHeadModel.from_weights(path, expected_sha256=expected, discriminator=self.finetune_steps != 0)
        except Exception as err:  # any failure to load is reported, never fatal for the run
            self._reason = f"cannot load {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            return self._reason
        mode = getattr(model.config, "mode", self.name)
        if mode != self.name:
            self._reason = f"{path} holds a '{mode}' model, not '{self.name}'"
            return self._reason
        self._model = model
        return None

    def prepare(self, shots: list[Shot], *, device: str = "cpu") -> Animator:
        import copy as _copy

        import torch

        from talkanim.neural import make_shot, shot_tensors

        if self.unavailable_reason() is not None:
            raise RuntimeError(self._reason)
        # a fresh copy per set of shots: fine-tuning must not leak from one clip to the next
        model = _copy.deepcopy(self._model).to(device).eval()
        # as animate: crops at the model's size; the network refines the renderer's output
        render = RenderConfig()
        images, points, pupils = shot_tensors([make_shot(s.image, s.face, render, model.config.image_size)
                                               for s in shots])
        note = "feed-forward (no fine-tuning)"
        with torch.no_grad():
            psi = model.generator.project(model.embed(images, points, pupils)[None])[0]
        if self.finetune_steps is None or self.finetune_steps > 0:
            from talkanim.train.finetune import finetune

            # steps None: the library's default budget (about a minute on this CPU)
            tuned = finetune(model, images, points, pupils, steps=self.finetune_steps, device=device)
            psi = tuned.adain_params
            note = f"fine-tuned {tuned.steps} steps in {tuned.seconds:.0f} s, kept step {tuned.kept_step}"
        refine = model.refiner(psi.detach())
        return _ModelAnimator(_PipelineRenderer(shots, render, device), refine, note)


@dataclass
class _ModelAnimator:
    renderer: _PipelineRenderer
    refine: Callable
    note: str = ""

    def generate(self, targets, pupils, weights, heads=None):
        return self.renderer.render(targets, pupils, weights, refine=self.refine, heads=heads)


# ------------------------------------------------------------------------------ registry
MethodFactory = Callable[..., Method]
_REGISTRY: dict[str, MethodFactory] = {
    "copy": lambda **kw: CopyMethod(),
    "warp": lambda **kw: WarpMethod(),
    "paper": lambda **kw: ModelMethod("paper", kw.get("weights", {}).get("paper"), kw.get("finetune_steps", 0)),
    "hybrid": lambda **kw: ModelMethod("hybrid", kw.get("weights", {}).get("hybrid"), kw.get("finetune_steps", 0)),
}


def register_method(name: str, factory: MethodFactory) -> None:
    """Add (or replace) a method; `factory(**options)` returns a `Method`."""
    _REGISTRY[name] = factory


def available_methods() -> list[str]:
    """Names of every registered method."""
    return list(_REGISTRY)


def make_method(name: str, **options) -> Method:
    """Build a registered method; unknown names raise ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}: choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**options)
