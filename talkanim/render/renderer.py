"""FaceRenderer: warp a portrait's face to target landmarks and paste it back, full resolution.

Per frame: the target landmarks (picture coordinates) go into the fixed face crop at working
resolution S, a piecewise-affine backward map is built there (see warp.py), then
  - for models and evaluation, `warp_crop` samples the S x S source crop with it;
  - for output, the map is upsampled bilinearly to the paste resolution of the crop in the
    original picture and samples the ORIGINAL picture's pixels, so a 2048 px painting keeps its
    own texture instead of making a 256 px round trip.
Corrections computed at S (mouth fill, the `refine` hook) are added as
`hi_res_warp + upsample(corrected - warped)`, so a network only contributes its correction.
Extra shots of the person (shots.py) replace the face interior of the frames they serve with
their own pixels, also resampled at paste resolution.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from talkanim.config import RenderConfig
from talkanim.errors import InputError
from talkanim.landmarks.measures import eye_centres
from talkanim.landmarks.types import Face
from talkanim.motion.retarget import transfer_pupils
from talkanim.render.crop import CropBox, crop_image, face_crop_box
from talkanim.render.mouth import MouthFiller
from talkanim.render.paste import feather_mask, paste_region, region_texture, to_tensor
from talkanim.render.shots import ShotSources
from talkanim.render.warp import RING_FRACTION, PiecewiseAffineWarp, face_anchors, moving_vertices, to_normalized

# refine(warped (B,3,S,S) in [0,1], target points (B,68,2) crop px at S, target pupils (B,2,2) crop px)
RefineFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# S pixels the map may move and still count as the identity (1/1000 px: float noise of the solve)
_MOVED = 1e-3


class FaceRenderer:
    """Renders one source portrait under many target landmark sets."""

    def __init__(self, image: np.ndarray, face: Face, config: RenderConfig | None = None, *,
                 shots: Sequence[tuple[np.ndarray, Face]] = (),
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        """`shots`: other pictures of the same person (image, face) whose face interior the
        render methods blend in by `shot_weights` (see talkanim.motion.shot_weights)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"the portrait must be an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        self.config = config or RenderConfig()
        self.image = image
        self.face = face
        self.device = torch.device(device)
        self.dtype = dtype
        s = self.size = int(self.config.size)
        self.crop_box: CropBox = face_crop_box(face.points, self.config.crop_scale)
        box = self.crop_box

        # --- working resolution: source crop, its vertices, the fixed triangulation
        self.source_crop = crop_image(image, box, s)
        self.source_points_crop = box.to_crop(face.points, s)
        pupils = face.pupils if face.pupils is not None else eye_centres(face.points)
        self.source_pupils = np.asarray(pupils, np.float32)
        self.source_pupils_crop = box.to_crop(self.source_pupils, s)
        moving = moving_vertices(self.source_points_crop[None], self.source_pupils_crop[None])[0]
        anchors, fence = face_anchors(s)
        self.warp = PiecewiseAffineWarp(moving, anchors, s, fence=fence, device=self.device, dtype=dtype)
        self._src_s = to_tensor(self.source_crop, self.device, dtype)
        self.mouth = MouthFiller(self.source_points_crop, self.source_crop) if self.config.mouth_fill else None

        # --- paste resolution in the original picture
        self.region = paste_region(box, image.shape, self.config.max_paste_side)
        if self.region is None:
            raise InputError("the face crop does not overlap the picture")
        self.shots = ShotSources(shots, self.source_crop, self.source_points_crop, size=s,
                                 paste_size=round(box.side * self.region.scale), crop_scale=self.config.crop_scale,
                                 anchors=anchors, fence=fence, mouth_fill=self.config.mouth_fill, device=self.device, dtype=dtype)
        reg = self.region
        ph, pw = reg.patch_size
        xs, ys = reg.patch_to_picture((ph, pw))
        # patch pixel -> S-crop coords -> normalized (align_corners=True) for sampling S maps
        ux, uy = (xs - box.x0) * s / box.side, (ys - box.y0) * s / box.side
        gx = np.broadcast_to(ux[None, :], (ph, pw))
        gy = np.broadcast_to(uy[:, None], (ph, pw))
        base = np.stack([gx, gy], -1).astype(np.float32)
        self._patch_grid = to_normalized(torch.from_numpy(base).to(self.device, dtype), s, s)[None]
        # source S-crop coords -> texture-normalized coords: linear per axis
        fx, fy = pw / reg.width, ph / reg.height
        ax = box.side / s * fx * 2.0 / max(pw - 1, 1)
        bx = ((box.x0 - reg.x0 + 0.5) * fx - 0.5) * 2.0 / max(pw - 1, 1) - 1.0
        ay = box.side / s * fy * 2.0 / max(ph - 1, 1)
        by = ((box.y0 - reg.y0 + 0.5) * fy - 0.5) * 2.0 / max(ph - 1, 1) - 1.0
        self._tex_a = torch.tensor([ax, ay], dtype=dtype, device=self.device)
        self._tex_b = torch.tensor([bx, by], dtype=dtype, device=self.device)
        # texture and original in 0..255 (one multiply less per pixel and frame)
        self._texture = to_tensor(region_texture(image, reg), self.device, dtype) * 255.0
        self._orig = to_tensor(image[reg.y0:reg.y1, reg.x0:reg.x1], self.device, dtype) * 255.0
        self._ux, self._uy = ux.astype(np.float64), uy.astype(np.float64)  # patch -> S coords (ascending)
        lin = torch.arange(s, device=self.device, dtype=dtype)
        self._identity = torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1)  # (S, S, 2) x, y
        self._canvas: np.ndarray | None = None  # render_frames' reused full frame
        self._canvas_window: tuple[int, int, int, int] | None = None
        # feather mask at full region resolution (fixed)
        mask_s = torch.from_numpy(feather_mask(s, RING_FRACTION + 0.1)).to(self.device, dtype)[None, None]
        fxs = np.arange(reg.x0, reg.x1, dtype=np.float32)
        fys = np.arange(reg.y0, reg.y1, dtype=np.float32)
        full = np.stack(np.broadcast_arrays(((fxs - box.x0) * s / box.side)[None, :],
                                            ((fys - box.y0) * s / box.side)[:, None]), -1).astype(np.float32)
        full_grid = to_normalized(torch.from_numpy(full).to(self.device, dtype), s, s)[None]
        self._mask = F.grid_sample(mask_s, full_grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    # ------------------------------------------------------------------ helpers
    def _targets(self, targets: np.ndarray, pupils: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        targets = np.asarray(targets, np.float32)
        if targets.ndim == 2:
            targets = targets[None]
        if targets.ndim != 3 or targets.shape[1:] != (68, 2):
            raise InputError(f"target landmarks must be (B, 68, 2), got {targets.shape}")
        if pupils is None:
            # the source's own gaze, carried by its eyes
            pupils = transfer_pupils(self.face.points, self.source_pupils, targets)
        pupils = np.asarray(pupils, np.float32).reshape(len(targets), 2, 2)
        s = self.size
        return self.crop_box.to_crop(targets, s), self.crop_box.to_crop(pupils, s)

    def sample_map(self, targets: np.ndarray, pupils: np.ndarray | None = None) -> torch.Tensor:
        """Backward map (B, S, S, 2): source crop coordinates (pixels at S) per target pixel."""
        t_crop, p_crop = self._targets(targets, pupils)
        return self.warp.sample_map(moving_vertices(t_crop, p_crop))

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def warp_crop(self, target_points_batch: np.ndarray, pupils: np.ndarray | None = None) -> torch.Tensor:
        """The source crop warped to the targets (picture coords): (B, 3, S, S) float in [0, 1]."""
        smap = self.sample_map(target_points_batch, pupils)
        return self._sample_s(smap)

    def _sample_s(self, smap: torch.Tensor) -> torch.Tensor:
        grid = to_normalized(smap, self.size, self.size)
        src = self._src_s.expand(grid.shape[0], -1, -1, -1)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)

    @torch.inference_mode()
    def render_batch(self, targets: np.ndarray, pupils: np.ndarray | None = None, *,
                     refine: RefineFn | None = None, shot_weights: np.ndarray | None = None) -> np.ndarray:
        """Full frames (B, H, W, 3) uint8: the portrait with the face warped to each target."""
        (y0, y1, x0, x1), patches = self.render_patches(targets, pupils, refine=refine, shot_weights=shot_weights)
        frames = np.repeat(self.image[None], len(patches), axis=0)
        frames[:, y0:y1, x0:x1] = patches
        return frames

    def render_frames(self, targets: np.ndarray, pupils: np.ndarray | None = None, *,
                      refine: RefineFn | None = None, shot_weights: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The frames of `render_batch`, one at a time, each a view of ONE reused full-size
        buffer that is valid until the next frame is asked for (write or copy it first): only
        the changed window is written, the portrait is never copied per frame."""
        (y0, y1, x0, x1), patches = self.render_patches(targets, pupils, refine=refine, shot_weights=shot_weights)
        if self._canvas is None:
            self._canvas = self.image.copy()
        canvas = self._canvas
        if self._canvas_window is not None:  # put back what the last window covered
            py0, py1, px0, px1 = self._canvas_window
            canvas[py0:py1, px0:px1] = self.image[py0:py1, px0:px1]
        self._canvas_window = (y0, y1, x0, x1)
        for patch in patches:
            canvas[y0:y1, x0:x1] = patch
            yield canvas

    @torch.inference_mode()
    def render_patches(self, targets: np.ndarray, pupils: np.ndarray | None = None, *,
                       refine: RefineFn | None = None,
                       shot_weights: np.ndarray | None = None) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The part of each frame that differs from the portrait: ((y0, y1, x0, x1) picture
        window, (B, y1 - y0, x1 - x0, 3) uint8). Outside the window every frame IS the portrait.

        `shot_weights` (B, 1 + number of shots), rows summing to 1: how much of each frame's face
        interior comes from the portrait (column 0) and from each extra shot. None: the portrait.

        Where the warp is the identity (the fixed ring and border triangles) and nothing corrects
        the crop, the paste-back would reproduce the portrait's own pixels, so at paste scale 1 only
        the window where the map moves (or a correction is non-zero) is resampled and blended.
        """
        t_crop, p_crop = self._targets(targets, pupils)
        target_moving = moving_vertices(t_crop, p_crop)
        smap = self.warp.sample_map(target_moving)  # (B, S, S, 2)
        b = smap.shape[0]
        # Corrections at S, in paste order: the portrait's mouth fill, the shots (also pasted at
        # full resolution, see shots.py), the network's change of what the first two made.
        fill_delta = refine_delta = None
        shot_parts = []
        from_shots = shot_weights is not None and bool((np.asarray(shot_weights)[:, 1:] > 0).any())
        if self.mouth is not None or refine is not None or from_shots:
            warped = self._sample_s(smap)
            filled = self.mouth(warped, t_crop) if self.mouth is not None else warped
            if filled is not warped:
                fill_delta = (filled - warped) * 255.0
            corrected = filled
            if from_shots:
                corrected, shot_parts = self.shots.warp(filled, target_moving, t_crop, shot_weights)
            if refine is not None:
                refined = refine(corrected,
                                 torch.from_numpy(t_crop).to(self.device, self.dtype),
                                 torch.from_numpy(p_crop).to(self.device, self.dtype))
                if refined.shape != warped.shape:
                    raise ValueError(f"refine returned {tuple(refined.shape)}, expected {tuple(warped.shape)}")
                refine_delta = (refined.to(self.dtype) - corrected) * 255.0

        reg = self.region
        ph, pw = reg.patch_size
        r0, r1, c0, c1 = 0, ph, 0, pw
        if (ph, pw) == (reg.height, reg.width):  # paste scale 1: patch pixels are picture pixels
            moved = (smap - self._identity).abs().amax(dim=(0, 3)) > _MOVED
            for delta in (fill_delta, refine_delta, *(part.alpha for part in shot_parts)):
                if delta is not None:
                    moved |= delta.abs().amax(dim=(0, 1)) > 0
            r0, r1, c0, c1 = self._window(moved)
        if r1 <= r0 or c1 <= c0:  # nothing moves: every frame is the portrait
            return (reg.y0, reg.y0, reg.x0, reg.x0), np.zeros((b, 0, 0, 3), np.uint8)

        # upsample the map to paste resolution, then sample the original picture's pixels
        patch_grid = self._patch_grid[:, r0:r1, c0:c1].expand(b, -1, -1, -1)
        hi_map = F.grid_sample(smap.permute(0, 3, 1, 2), patch_grid, mode="bilinear",
                               padding_mode="border", align_corners=True)  # (B, 2, h, w) S coords
        tex_grid = torch.addcmul(self._tex_b, hi_map.permute(0, 2, 3, 1), self._tex_a)
        hi = F.grid_sample(self._texture.expand(b, -1, -1, -1), tex_grid, mode="bilinear",
                           padding_mode="border", align_corners=True)  # 0..255
        if fill_delta is not None:
            hi = self._add_correction(hi, fill_delta, patch_grid)
        if shot_parts:
            hi = self.shots.paste(hi, shot_parts, patch_grid[:1])
        if refine_delta is not None:
            hi = self._add_correction(hi, refine_delta, patch_grid)
        if hi.shape[-2:] != (reg.height, reg.width) and (r0, r1, c0, c1) == (0, ph, 0, pw):
            hi = F.interpolate(hi, size=(reg.height, reg.width), mode="bilinear", align_corners=False)
            r1, c1 = reg.height, reg.width
        blended = torch.lerp(self._orig[..., r0:r1, c0:c1], hi, self._mask[..., r0:r1, c0:c1])
        patches = blended.clamp_(0.0, 255.0).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return (reg.y0 + r0, reg.y0 + r1, reg.x0 + c0, reg.x0 + c1), patches

    def _window(self, moved: torch.Tensor) -> tuple[int, int, int, int]:
        """Patch rows/columns whose bilinear footprint in the S map touches a `moved` pixel."""
        rows = torch.nonzero(moved.any(dim=1)).flatten()
        cols = torch.nonzero(moved.any(dim=0)).flatten()
        if rows.numel() == 0:
            return 0, 0, 0, 0
        # a patch pixel at S coordinate u reads S pixels floor(u) and floor(u) + 1
        r0 = int(np.searchsorted(self._uy, float(rows[0]) - 1.0, side="right"))
        r1 = int(np.searchsorted(self._uy, float(rows[-1]) + 1.0, side="left"))
        c0 = int(np.searchsorted(self._ux, float(cols[0]) - 1.0, side="right"))
        c1 = int(np.searchsorted(self._ux, float(cols[-1]) + 1.0, side="left"))
        return r0, r1, c0, c1

    def _add_correction(self, hi: torch.Tensor, delta: torch.Tensor, patch_grid: torch.Tensor) -> torch.Tensor:
        """hi + delta upsampled to paste resolution, only over the rows/columns where delta != 0
        (the mouth fill touches a small box; a network may touch everything)."""
        active = delta.abs().amax(dim=(0, 1)) > 0  # (S, S)
        rows = torch.nonzero(active.any(dim=1)).flatten()
        cols = torch.nonzero(active.any(dim=0)).flatten()
        if rows.numel() == 0:
            return hi
        s = self.size
        lo_x, hi_x = (float(cols[0]) - 1.0) * 2 / (s - 1) - 1, (float(cols[-1]) + 1.0) * 2 / (s - 1) - 1
        lo_y, hi_y = (float(rows[0]) - 1.0) * 2 / (s - 1) - 1, (float(rows[-1]) + 1.0) * 2 / (s - 1) - 1
        gx, gy = patch_grid[0, 0, :, 0], patch_grid[0, :, 0, 1]
        cx = torch.nonzero((gx >= lo_x) & (gx <= hi_x)).flatten()
        cy = torch.nonzero((gy >= lo_y) & (gy <= hi_y)).flatten()
        if cx.numel() == 0 or cy.numel() == 0:
            return hi
        c0, c1, r0, r1 = int(cx[0]), int(cx[-1]) + 1, int(cy[0]), int(cy[-1]) + 1
        sub = F.grid_sample(delta, patch_grid[:, r0:r1, c0:c1], mode="bilinear",
                            padding_mode="border", align_corners=True)
        hi = hi.clone() if hi.requires_grad else hi
        hi[..., r0:r1, c0:c1] += sub
        return hi

    def render(self, target_points: np.ndarray, target_pupils: np.ndarray | None = None, *,
               refine: RefineFn | None = None) -> np.ndarray:
        """One full frame (H, W, 3) uint8 for one target (68, 2) in picture coordinates."""
        pupils = None if target_pupils is None else np.asarray(target_pupils, np.float32)[None]
        return self.render_batch(np.asarray(target_points, np.float32)[None], pupils, refine=refine)[0]
