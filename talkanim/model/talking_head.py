"""The whole model: embedder, generator and (for training) discriminator, with one weights file.

What the rest of talkanim uses: `TalkingHeadModel.from_weights`, `embed` (shots -> e^),
`generator.project` (e^ -> psi^), `generate`, and `refiner(psi)`, the hook the renderer calls
on each warped face crop.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from .config import ModelConfig
from .discriminator import Discriminator
from .embedder import Embedder
from .generator import Generator
from .sketch import draw_sketch, region_mask
from .weights import load_weights, save_weights

FORMAT = "talkanim-model"
FORMAT_VERSION = "1"


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


def _scale_points(points: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """Crop coordinates at `src` px -> at `dst` px (pixel centres at integers)."""
    if src == dst:
        return points
    s = dst / src
    return (points + 0.5) * s - 0.5


class TalkingHeadModel(nn.Module):
    """E, G and optionally D for one ModelConfig.

    num_videos: rows of the discriminator's W (training videos); `discriminator=False` builds
    an inference-only model.
    """

    def __init__(self, config: ModelConfig, num_videos: int = 0, discriminator: bool = True):
        super().__init__()
        self.config = config
        self.embedder = Embedder(config)
        self.generator = Generator(config)
        self.discriminator = Discriminator(config, num_videos) if discriminator else None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- weights ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> str:
        """Write all weights (safetensors, atomic); return the file's sha256."""
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_json(),
                    "num_videos": str(self.discriminator.num_videos if self.discriminator else 0),
                    "discriminator": str(self.discriminator is not None)}
        metadata.update(extra_metadata or {})
        return save_weights(path, self.state_dict(), metadata)

    @classmethod
    def from_weights(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                     expected_sha256: str | None = None, discriminator: bool | None = None) -> "TalkingHeadModel":
        """Build the model a weights file describes and load it (eval mode, on `device`).

        discriminator: None loads D when the file has it; False skips it (inference).
        """
        tensors, meta = load_weights(path, expected_sha256)
        if meta.get("format") != FORMAT:
            raise WeightsError(f"{path}: not a talkanim model file (format {meta.get('format')!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise WeightsError(f"{path}: model format version {meta.get('format_version')!r} "
                               f"is not supported (expected {FORMAT_VERSION})")
        try:
            config = ModelConfig.from_dict(json.loads(meta["config"]))
        except (KeyError, ValueError, TypeError) as e:
            raise WeightsError(f"{path}: bad model config in metadata ({e})") from None
        has_d = meta.get("discriminator") == "True"
        with_d = has_d if discriminator is None else (discriminator and has_d)
        model = cls(config, int(meta.get("num_videos", "0")), discriminator=with_d)
        if not with_d:
            tensors = {k: v for k, v in tensors.items() if not k.startswith("discriminator.")}
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "mismatch"
            raise WeightsError(f"{path}: weights do not match the model ({first})") from None
        return model.to(device).eval()

    # ---- inference --------------------------------------------------------------------
    def sketch(self, points: torch.Tensor, pupils: torch.Tensor | None = None) -> torch.Tensor:
        """Landmark sketch (B, 3, S, S) at the model's image_size (points in crop px at S)."""
        return draw_sketch(points.to(self.device), self.config.image_size,
                           None if pupils is None else pupils.to(self.device))

    def embed(self, images: torch.Tensor, points: torch.Tensor, pupils: torch.Tensor | None = None) -> torch.Tensor:
        """e^ (D,) from T shots: images (T, 3, H, H) in [0, 1], points (T, 68, 2) / pupils
        (T, 2, 2) in crop px at H. Resized to image_size when H differs. Averages over shots."""
        size = self.config.image_size
        points = _scale_points(points.to(self.device).float(), images.shape[-1], size)
        images = _resize(images.to(self.device), size)
        return self.embedder(images, self.sketch(points, pupils)).mean(dim=0)

    def generate(self, target_points: torch.Tensor, target_pupils: torch.Tensor | None,
                 adain_params: torch.Tensor, warped: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, 3, S, S) in [0, 1] for target landmarks (B, 68, 2, crop px at S).

        adain_params: psi (P,) shared by the batch, or (B, P). warped: (B, 3, S, S) in [0, 1],
        required in hybrid mode. In hybrid mode with blend_region "mouth_eyes", the network may
        only change the mouth and eye regions of the target landmarks.
        """
        points = target_points.to(self.device)
        sketch = self.sketch(points, target_pupils)
        if adain_params.dim() == 1:
            adain_params = adain_params.unsqueeze(0).expand(points.shape[0], -1)
        region = None
        if self.config.mode == "hybrid" and self.config.blend_region == "mouth_eyes":
            region = region_mask(points.float(), self.config.image_size)
        return self.generator(sketch, adain_params, warped, region)

    def refiner(self, adain_params: torch.Tensor) -> Callable[..., torch.Tensor]:
        """The renderer's hook: refine(warped (B, 3, H, H) in [0, 1], target_points (B, 68, 2)
        crop px at H, target_pupils (B, 2, 2) | None) -> (B, 3, H, H) in [0, 1].

        When H differs from image_size the model runs at image_size; in hybrid mode only its
        change (output - warped) is resized back and added to the full-size warp, so texture
        the network leaves alone keeps the warp's full resolution.
        """
        size = self.config.image_size

        @torch.no_grad()
        def refine(warped: torch.Tensor, target_points: torch.Tensor,
                   target_pupils: torch.Tensor | None = None) -> torch.Tensor:
            h = warped.shape[-1]
            dev_warped = warped.to(self.device)
            small = _resize(dev_warped, size)
            points = _scale_points(target_points.to(self.device).float(), h, size)
            pupils = None if target_pupils is None else _scale_points(target_pupils.to(self.device).float(), h, size)
            out = self.generate(points, pupils, adain_params.to(self.device), small.to(dev_warped.dtype))
            if h == size:
                return out.to(warped.device)
            if self.config.mode == "hybrid":
                out = (dev_warped + _resize(out - small, h)).clamp(0, 1)
            else:
                out = _resize(out, h).clamp(0, 1)
            return out.to(warped.device)

        return refine
