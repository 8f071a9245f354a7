"""Extra shots of the portrait's person as warp sources for the inside of the face.

Each shot is cropped with the renderer's crop geometry at working size S and triangulated with
the portrait's fixed anchors, so its `PiecewiseAffineWarp` maps target landmarks (in the
portrait's crop) into the shot's crop, as the portrait's own warp does. Two things keep a shot
taken elsewhere from showing its seams:
  - only the face interior comes from a shot: a feathered mask of the shot's face outline is
    warped with it, and hair, background and the paste ring stay the portrait's;
  - its colours are matched to the portrait's face (per-channel mean and spread inside the
    outline), so another light or camera does not flash in when the shot takes over.
At S the shots are blended into the portrait's warp (what a `refine` network sees); for the
output each shot's own pixels are resampled at the paste resolution through the upsampled map,
like the portrait's, so a large portrait keeps its sharpness on the frames a shot serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkanim.landmarks.measures import eye_centres
from talkanim.landmarks.types import Face
from talkanim.render.crop import crop_image, face_crop_box
from talkanim.render.mouth import MouthFiller
from talkanim.render.paste import to_tensor
from talkanim.render.warp import PiecewiseAffineWarp, moving_vertices, to_normalized

# The mask's edge sits this fraction of the way from the outline towards the landmarks' centre,
# so the feather ends inside the face, not on the hairline or the background.
MASK_SHRINK = 0.08
MASK_FEATHER = 0.025  # Gaussian sigma of the mask's edge, as a fraction of S


def face_mask(points_crop: np.ndarray, size: int) -> np.ndarray:
    """(S, S) float32 in [0, 1]: the landmarks' convex hull, shrunk and feathered."""
    pts = np.asarray(points_crop, np.float64)
    centre = pts.mean(axis=0)
    hull = cv2.convexHull(((pts - centre) * (1.0 - MASK_SHRINK) + centre).astype(np.float32))
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, np.round(hull[:, 0] * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), MASK_FEATHER * size)


def colour_transfer(image: np.ndarray, mask: np.ndarray, reference: np.ndarray,
                    reference_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (gain, offset) that move the mean and spread of `image` (S, S, 3) uint8 inside
    `mask` to those of `reference` inside `reference_mask` (contrast changes at most 2x either
    way): matched = image * gain + offset."""
    def stats(img: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = (m > 0.5).reshape(-1)
        px = img.reshape(-1, 3)[w].astype(np.float64) if w.any() else img.reshape(-1, 3).astype(np.float64)
        return px.mean(axis=0), px.std(axis=0) + 1.0

    mean, std = stats(image, mask)
    ref_mean, ref_std = stats(reference, reference_mask)
    gain = np.clip(ref_std / std, 0.5, 2.0)
    return gain, ref_mean - mean * gain


def _apply(image: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float64) * gain + offset + 0.5, 0, 255).astype(np.uint8)


@dataclass
class WarpedShot:
    """One shot warped to the frames (`rows` of the batch) that use it, at working size S."""

    shot: int
    rows: torch.Tensor  # (n,) long: batch rows
    weight: torch.Tensor  # (n, 1, 1, 1): the rows' blend weights
    sample_map: torch.Tensor  # (n, S, S, 2): shot crop coordinates (px at S) per target pixel
    alpha: torch.Tensor  # (n, 1, S, S): the shot's face mask, warped
    fill: torch.Tensor | None  # (n, 3, S, S): the shot's mouth fill (added colour), or None


class ShotSources:
    """The extra shots, ready to be warped to any target and blended into the portrait's warp."""

    def __init__(self, shots: Sequence[tuple[np.ndarray, Face]], portrait_crop: np.ndarray,
                 portrait_points_crop: np.ndarray, *, size: int, paste_size: int, crop_scale: float,
                 anchors: np.ndarray, fence: float, mouth_fill: bool, device: torch.device,
                 dtype: torch.dtype):
        """`paste_size`: side in pixels of the portrait's crop at paste resolution; each shot's
        crop is also kept at that size (at least S) for the output."""
        self.size = size
        self.paste_size = max(size, int(paste_size))
        portrait_mask = face_mask(portrait_points_crop, size)
        self._warps: list[PiecewiseAffineWarp] = []
        self._rgba: list[torch.Tensor] = []  # (1, 4, S, S): colour-matched crop + face mask
        self._mouths: list[MouthFiller | None] = []
        self._textures: list[np.ndarray] = []  # (P, P, 3) uint8: colour-matched crop at paste size
        for image, face in shots:
            box = face_crop_box(face.points, crop_scale)
            crop = crop_image(image, box, size)
            points = box.to_crop(face.points, size)
            pupils = box.to_crop(face.pupils if face.pupils is not None else eye_centres(face.points), size)
            mask = face_mask(points, size)
            gain, offset = colour_transfer(crop, mask, portrait_crop, portrait_mask)
            crop = _apply(crop, gain, offset)
            big = crop if self.paste_size == size else _apply(crop_image(image, box, self.paste_size), gain, offset)
            self._textures.append(np.ascontiguousarray(big))
            moving = moving_vertices(points[None], pupils[None])[0]
            self._warps.append(PiecewiseAffineWarp(moving, anchors, size, fence=fence, device=device, dtype=dtype))
            alpha = torch.from_numpy(mask).to(device, dtype)[None, None]
            self._rgba.append(torch.cat([to_tensor(crop, device, dtype), alpha], dim=1))
            self._mouths.append(MouthFiller(points, crop) if mouth_fill else None)

    def __len__(self) -> int:
        return len(self._warps)

    def warp(self, base: torch.Tensor, target_moving: np.ndarray, target_points_crop: np.ndarray,
             weights: np.ndarray) -> tuple[torch.Tensor, list[WarpedShot]]:
        """base (B, 3, S, S) in [0, 1]: the portrait's warp; weights (B, 1 + K), column 0 the
        portrait's, rows summing to 1. Returns base + sum_k w_k * mask_k * (shot_k - base) with
        every shot warped to the targets (at S), and the warped shots for `paste`."""
        weights = np.asarray(weights, np.float64)
        if weights.shape != (base.shape[0], 1 + len(self)):
            raise ValueError(f"shot weights must be (B, {1 + len(self)}), got {weights.shape}")
        out, parts = base, []
        for k in range(len(self)):
            rows = np.flatnonzero(weights[:, k + 1] > 0)
            if rows.size == 0:
                continue
            smap = self._warps[k].sample_map(target_moving[rows])
            grid = to_normalized(smap, self.size, self.size)
            sampled = F.grid_sample(self._rgba[k].expand(len(rows), -1, -1, -1), grid, mode="bilinear",
                                    padding_mode="border", align_corners=True)
            shot, alpha = sampled[:, :3], sampled[:, 3:]
            fill = None
            if self._mouths[k] is not None:
                filled = self._mouths[k](shot, target_points_crop[rows])
                fill, shot = (filled - shot if filled is not shot else None), filled
            w = torch.from_numpy(weights[rows, k + 1]).to(base.device, base.dtype).view(-1, 1, 1, 1)
            idx = torch.from_numpy(rows).to(base.device)
            if out is base:
                out = base.clone()
            out.index_add_(0, idx, w * alpha * (shot - base[idx]))
            parts.append(WarpedShot(k, idx, w, smap, alpha, fill))
        return out, parts

    def paste(self, colour: np.ndarray, parts: list[WarpedShot], at_s: tuple[np.ndarray, np.ndarray],
              frame: int) -> np.ndarray:
        """Blend the shots warped for batch row `frame` into `colour` (h, w, 3) float32 0..255,
        that frame's portrait layer at paste resolution; `at_s` (x, y), each (h, w) float32: every
        pixel's position in the expression crop at S. Each shot's pixels are sampled from its
        paste-size crop through the upsampled map."""
        s, p = self.size, self.paste_size
        x, y = at_s
        base = colour.copy()
        for part in parts:
            rows = torch.nonzero(part.rows == frame).flatten()
            if rows.numel() == 0:
                continue
            j = int(rows[0])
            def up(field: torch.Tensor, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:  # (C, S, S) -> (h, w, C)
                hwc = np.ascontiguousarray(field[j].permute(1, 2, 0).float().cpu().numpy())
                out = cv2.remap(hwc, x, y, cv2.INTER_LINEAR, borderMode=border, borderValue=0)
                return out.reshape(*x.shape, -1)

            coords = up(part.sample_map.permute(0, 3, 1, 2), cv2.BORDER_REPLICATE)  # shot px at S
            # px at S -> px at P (pixel centres scale about the crop's corner)
            tex = ((coords + 0.5) * (p / s) - 0.5).astype(np.float32)
            shot = cv2.remap(self._textures[part.shot], tex[..., 0], tex[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            if part.fill is not None:
                shot += up(part.fill) * 255.0
            # against the portrait's pixels, so cross-faded shots add up to their weights
            colour += float(part.weight[j]) * up(part.alpha) * (shot - base)
        return colour
