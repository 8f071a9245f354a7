"""Mouth interior for a warp that opens a closed mouth.

Warping alone stretches the lips across a mouth the source keeps closed. When the target's
inner-lip polygon (60-67) is open wider than the source's, we paint the newly opened area with
a dark cavity (the source's lip colour, darkened), a soft off-white teeth hint under the upper
inner lip (its height scaled by the opening, fading towards the corners), with feathered edges.
Nothing is painted when the source's mouth is already open as wide.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

INNER = np.arange(60, 68)
UPPER_INNER = np.array([60, 61, 62, 63, 64])
OUTER = np.arange(48, 60)
# Opening below which a mouth counts as closed, and the extra opening over which the fill fades in
# (both as inner-lip gap / mouth width).
CLOSED = 0.02
FADE = 0.06


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap / mouth width, (...,) for points (..., 68, 2)."""
    p = np.asarray(points, np.float64)
    gap = (np.linalg.norm(p[..., 67, :] - p[..., 61, :], axis=-1)
           + np.linalg.norm(p[..., 66, :] - p[..., 62, :], axis=-1)
           + np.linalg.norm(p[..., 65, :] - p[..., 63, :], axis=-1)) / 3.0
    width = np.linalg.norm(p[..., 54, :] - p[..., 48, :], axis=-1)
    return gap / np.maximum(width, 1e-6)


def lip_colour(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB in [0, 1] of the lips (outer minus inner polygon) of a crop (S, S, 3) uint8."""
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[OUTER]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(points[INNER]).astype(np.int32)], 0)
    if mask.sum() < 4:
        return np.array([0.55, 0.3, 0.3])
    return crop[mask.astype(bool)].reshape(-1, 3).mean(axis=0) / 255.0


class MouthFiller:
    """Paints the mouth interior of warped crops; built once per source."""

    def __init__(self, source_points_crop: np.ndarray, source_crop: np.ndarray):
        self.source_opening = float(mouth_opening(source_points_crop))
        lips = lip_colour(source_crop, source_points_crop)
        self.cavity = np.clip(lips * 0.22 + np.array([0.03, 0.0, 0.0]), 0, 1)
        # Teeth: off-white, no brighter than the picture's own highlights (paintings).
        bright = float(np.percentile(source_crop.reshape(-1, 3).mean(axis=1), 97)) / 255.0
        self.teeth = np.clip(np.array([0.93, 0.90, 0.84]) * max(bright, 0.45), 0, 1)

    def strength(self, target_points_crop: np.ndarray) -> np.ndarray:
        """How much to paint, (B,) in [0, 1]: 0 when the target is not open wider than the source."""
        open_t = mouth_opening(target_points_crop)
        return np.clip((open_t - max(self.source_opening, CLOSED)) / FADE, 0.0, 1.0)

    def maps(self, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None:
        """Cavity alpha and teeth alpha over the mouth's bounding box, and that box (x0, y0, x1, y1)."""
        inner = points[INNER]
        width = float(np.linalg.norm(points[54] - points[48]))
        pad = int(np.ceil(0.15 * width)) + 2
        x0, y0 = np.floor(inner.min(0)).astype(int) - pad
        x1, y1 = np.ceil(inner.max(0)).astype(int) + pad
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        h, w = y1 - y0, x1 - x0
        off = np.array([x0, y0], np.float32)
        sh = 4
        to_i = lambda p: np.round((p - off) * (1 << sh)).astype(np.int32)  # noqa: E731
        cavity = np.zeros((h, w), np.float32)
        cv2.fillPoly(cavity, [to_i(inner)], 1.0, lineType=cv2.LINE_AA, shift=sh)
        # teeth band: under the upper inner lip, as tall as a third of the opening (capped)
        gap = float(mouth_opening(points)) * width
        band = min(0.4 * gap, 0.12 * width)
        upper = points[UPPER_INNER]
        strip = np.concatenate([upper, (upper + (0.0, band))[::-1]])
        teeth = np.zeros((h, w), np.float32)
        cv2.fillPoly(teeth, [to_i(strip)], 1.0, lineType=cv2.LINE_AA, shift=sh)
        # fade teeth towards the corners
        cx = (points[60, 0] + points[64, 0]) / 2.0 - x0
        half = max(abs(points[64, 0] - points[60, 0]) / 2.0, 1.0)
        xs = np.arange(w, dtype=np.float32)
        teeth *= np.clip(1.0 - np.abs(xs - cx) / half, 0.0, 1.0)[None, :] ** 0.6
        sigma = max(0.6, 0.08 * gap)
        cavity = cv2.GaussianBlur(cavity, (0, 0), sigma)
        teeth = cv2.GaussianBlur(teeth, (0, 0), sigma * 1.5) * cavity
        return cavity, teeth, (x0, y0, x1, y1)

    @torch.inference_mode()
    def __call__(self, warped: torch.Tensor, target_points_crop: np.ndarray) -> torch.Tensor:
        """Return `warped` (B, 3, S, S) in [0, 1] with the newly opened mouths painted."""
        strength = self.strength(target_points_crop)
        if not (strength > 0).any():
            return warped
        out = warped.clone()
        size = warped.shape[-1]
        cav = torch.tensor(self.cavity, dtype=warped.dtype, device=warped.device)[:, None, None]
        tee = torch.tensor(self.teeth, dtype=warped.dtype, device=warped.device)[:, None, None]
        for i in np.nonzero(strength > 0)[0]:
            m = self.maps(np.asarray(target_points_crop[i], np.float32), size)
            if m is None:
                continue
            cavity, teeth, (x0, y0, x1, y1) = m
            a = torch.from_numpy(cavity * float(strength[i])).to(warped)
            t = torch.from_numpy(teeth * 0.8 * float(strength[i])).to(warped)
            region = out[i, :, y0:y1, x0:x1]
            region = region * (1 - a) + cav * a
            region = region * (1 - t) + tee * t
            out[i, :, y0:y1, x0:x1] = region
        return out
