"""Pure image and landmark metrics for comparing a generated face crop with the real one.

Every function takes numpy arrays and returns plain floats: no detectors, no state. Images are
(H, W, 3) uint8 RGB or float in [0, 1]; landmark sets are (68, 2) in crop pixels. Region
masks come from the REAL frame's landmarks so that a method is never judged on a region it
chose itself.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MOUTH_POINTS = np.arange(48, 60)  # outer lip contour
EYE_POINTS = (np.arange(36, 42), np.arange(42, 48))
BROW_POINTS = (np.arange(17, 22), np.arange(22, 27))


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def _masked_mean(values: np.ndarray, mask: np.ndarray | None) -> float:
    if mask is None:
        return float(values.mean())
    m = np.asarray(mask, bool)
    if not m.any():
        return float("nan")
    return float(values[m].mean())


def l1(generated: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference in [0, 1] units, over all pixels or those where `mask` is True."""
    diff = np.abs(to_float(generated) - to_float(real)).mean(axis=-1)
    return _masked_mean(diff, mask)


def psnr(generated: np.ndarray, real: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0); capped at 100 dB for identical images."""
    mse = float(((to_float(generated) - to_float(real)) ** 2).mean())
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


SSIM_WIN = 7
_C1, _C2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2


def ssim_map(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H, W), averaged over RGB.

    Same definition as skimage's `structural_similarity` defaults (7x7 uniform window, sample
    covariance, K1 0.01, K2 0.03, data range 1, reflected borders) computed with cv2 box
    filters: ~15x faster, and this runs once per scored frame and method.
    """
    x, y = to_float(generated), to_float(real)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    k = (SSIM_WIN, SSIM_WIN)

    def mean(a):
        return cv2.blur(a, k, borderType=cv2.BORDER_REFLECT)

    cov_norm = SSIM_WIN**2 / (SSIM_WIN**2 - 1.0)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
    s = s.reshape(x.shape[0], x.shape[1], -1)
    return s.mean(axis=-1)


def ssim_mean(smap: np.ndarray) -> float:
    """Whole-image SSIM from a map, like skimage: the border of half a window is left out."""
    pad = (SSIM_WIN - 1) // 2
    return float(smap[pad:-pad, pad:-pad].mean())


def ssim(generated: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM over the crop (as skimage), or over the pixels where `mask` is True."""
    smap = ssim_map(generated, real)
    return ssim_mean(smap) if mask is None else _masked_mean(smap, mask)


def keypoint_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """AKD: mean Euclidean distance between corresponding landmarks (same units as the input)."""
    a, b = np.asarray(points_a, np.float64), np.asarray(points_b, np.float64)
    return float(np.linalg.norm(a - b, axis=-1).mean())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (CSIM when they are face descriptors)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either series is (nearly) constant or too short."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def region_masks(points: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Boolean (size, size) masks of the mouth and eye regions from 68 landmarks in crop px.

    Mouth: the outer-lip hull grown by 15% of the mouth width (takes in the lip edges, where
    warping smears). Eyes: each eye's hull together with its brow, grown by 20% of the eye's
    width, so that eyelids and brows count (blinks and brow raises live there).
    """
    p = np.asarray(points, np.float32)
    out = {}

    def hull_mask(pts: np.ndarray, grow: float) -> np.ndarray:
        mask = np.zeros((size, size), np.uint8)
        hull = cv2.convexHull(np.round(pts).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
        r = int(round(grow))
        if r > 0:
            mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return mask.astype(bool)

    mouth = p[MOUTH_POINTS]
    out["mouth"] = hull_mask(mouth, 0.15 * np.linalg.norm(p[54] - p[48]))
    eyes = np.zeros((size, size), bool)
    for eye, brow in zip(EYE_POINTS, BROW_POINTS):
        width = np.linalg.norm(p[eye[3]] - p[eye[0]])
        eyes |= hull_mask(np.concatenate([p[eye], p[brow]]), 0.2 * width)
    out["eyes"] = eyes
    return out


def crop_metrics(generated: np.ndarray, real: np.ndarray, real_points: np.ndarray | None = None) -> dict[str, float]:
    """L1, PSNR, SSIM of a generated crop against the real crop, plus mouth/eye L1 and SSIM
    when the real crop's landmarks (crop px) are given."""
    smap = ssim_map(generated, real)
    diff = np.abs(to_float(generated) - to_float(real)).mean(axis=-1)
    out = {"l1": float(diff.mean()), "psnr": psnr(generated, real), "ssim": ssim_mean(smap)}
    if real_points is not None:
        for name, mask in region_masks(real_points, real.shape[0]).items():
            out[f"l1_{name}"] = _masked_mean(diff, mask)
            out[f"ssim_{name}"] = _masked_mean(smap, mask)
    return out
