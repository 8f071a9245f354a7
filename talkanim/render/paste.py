"""Where the warped face goes back into the full picture, at the picture's own resolution.

The paste region is the crop box clipped to the picture (crops may hang over its borders). The
face is resampled straight from the original picture's pixels at a paste resolution of up to
`max_paste_side` pixels per crop side, then blended with a feathered mask that is 1 inside the
fixed ring of the warp and falls to 0 at the crop border (the warp is the identity there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from talkanim.render.crop import CropBox


@dataclass
class PasteRegion:
    """The clipped crop rectangle in the picture and the scale the face is resampled at there."""

    x0: int
    y0: int
    x1: int
    y1: int
    scale: float  # paste pixels per picture pixel (<= 1)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def patch_size(self) -> tuple[int, int]:
        """(height, width) of the resampled patch."""
        return (max(1, int(round(self.height * self.scale))), max(1, int(round(self.width * self.scale))))

    def patch_to_picture(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Picture coordinates (x per column, y per row) of the patch's pixel centres."""
        ph, pw = size
        fx, fy = pw / self.width, ph / self.height
        xs = self.x0 + (np.arange(pw) + 0.5) / fx - 0.5
        ys = self.y0 + (np.arange(ph) + 0.5) / fy - 0.5
        return xs, ys


def paste_region(box: CropBox, image_shape: tuple[int, ...], max_paste_side: int) -> PasteRegion | None:
    """The crop box clipped to a picture of `image_shape`; None when they do not overlap."""
    h, w = image_shape[:2]
    x0, y0 = max(0, int(np.floor(box.x0))), max(0, int(np.floor(box.y0)))
    x1, y1 = min(w, int(np.ceil(box.x0 + box.side)) + 1), min(h, int(np.ceil(box.y0 + box.side)) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    scale = min(1.0, float(max_paste_side) / box.side)
    return PasteRegion(x0, y0, x1, y1, scale)


def feather_mask(size: int, inner_fraction: float) -> np.ndarray:
    """(S, S) float32 mask in crop coordinates: 0 at the border, 1 from `inner_fraction` of the
    half side inwards (a smoothstep between)."""
    coords = np.arange(size, dtype=np.float32)
    edge = np.minimum(coords, size - 1 - coords)
    ramp = max((1.0 - inner_fraction) * (size - 1) / 2.0, 1.0)
    d = np.minimum(edge[None, :], edge[:, None]) / ramp
    d = np.clip(d, 0.0, 1.0)
    return (d * d * (3.0 - 2.0 * d)).astype(np.float32)


def region_texture(image: np.ndarray, region: PasteRegion) -> np.ndarray:
    """The picture's pixels under the paste region, at the region's paste scale (area filter)."""
    sub = image[region.y0:region.y1, region.x0:region.x1]
    ph, pw = region.patch_size
    if (ph, pw) != sub.shape[:2]:
        sub = cv2.resize(sub, (pw, ph), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(sub)


def to_tensor(image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].to(dtype) / 255.0


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8."""
    return (batch.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
