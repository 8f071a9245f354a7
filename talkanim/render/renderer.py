"""FaceRenderer: a portrait as layers, moved to each frame's head pose and expression.

The portrait is split once into a person layer (the picture with a matte, hair included) and a
background plate (the person removed, the hole filled: plate.py). Each frame has a head pose H
(the similarity the motion stage gives) and an expression (the target landmarks with the head
motion taken out, i.e. in the portrait's own pose). An output pixel x is rendered by following
two backward maps:

  1. body (body.py): p = G^-1(x), the head moving as one rigid body with H, the neck bending,
     the torso still;
  2. expression (warp.py): q = E(p), a piecewise-affine warp of the face crop at working
     resolution S from the portrait's landmarks to the expression landmarks, the identity
     outside a fixed ring around the face, so it never touches the hair.

The colour is the portrait's pixel at q, over the plate wherever the layer there is background
that moved (the matte at q is below 1 and p is not x): the background stays still while the
head uncovers it. Corrections computed at S in the expression crop (the mouth fill, extra shots,
the `refine` network) ride along the body map.

Pixels are sampled straight from the ORIGINAL picture at a paste resolution of up to
`max_paste_side` per face-crop side, so a 2048 px painting keeps its texture. Only a window that
can change is rendered: the head's region, where it moves to in the batch's frames, and the face
crop; outside it every frame IS the portrait.
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
from talkanim.motion.geometry import STABLE_POINTS, fit_similarities
from talkanim.motion.retarget import transfer_pupils
from talkanim.render.body import BodyFrame, BodyWarp
from talkanim.render.crop import CropBox, crop_image, face_crop_box
from talkanim.render.mouth import MouthFiller
from talkanim.render.paste import PasteRegion, to_tensor
from talkanim.render.plate import HOLE_GROWTH, HOLE_THRESHOLD, background_plate, clean_matte, landmark_matte, pinned_edges
from talkanim.render.shots import ShotSources
from talkanim.render.warp import FOREHEAD, PiecewiseAffineWarp, face_anchors, face_skirt, moving_vertices, to_normalized

# refine(warped (B,3,S,S) in [0,1], target points (B,68,2) crop px at S, target pupils (B,2,2) crop px)
RefineFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Background that moved by more than this many picture px is replaced by the plate (less: a
# sub-pixel drift nobody sees, and the portrait's own pixels are exact).
PLATE_AFTER_PX = 1.0
BODY_STRIDE = 8  # paste px between the body map's samples (it is smooth: bilinear in between is exact to ~0.1 px)


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class FaceRenderer:
    """Renders one source portrait under many head poses and target landmark sets."""

    def __init__(self, image: np.ndarray, face: Face, config: RenderConfig | None = None, *,
                 shots: Sequence[tuple[np.ndarray, Face]] = (), matte: np.ndarray | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        """`shots`: other pictures of the same person (image, face) whose face interior the
        render methods blend in by `shot_weights` (see talkanim.motion.shot_weights).
        `matte`: (H, W) in [0, 1], 1 on the person, hair included (`animate` segments the
        portrait); None: a rough head-shaped matte from the landmarks."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"the portrait must be an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        self.config = config or RenderConfig()
        self.image = image
        self.face = face
        self.device = torch.device(device)
        self.dtype = dtype
        height, width = image.shape[:2]
        s = self.size = int(self.config.size)
        self.crop_box: CropBox = face_crop_box(face.points, self.config.crop_scale)
        box = self.crop_box

        # --- expression: the face crop at S, its fixed-ring warp, the mouth fill
        self.source_crop = crop_image(image, box, s)
        self.source_points_crop = box.to_crop(face.points, s)
        pupils = face.pupils if face.pupils is not None else eye_centres(face.points)
        self.source_pupils = np.asarray(pupils, np.float32)
        self.source_pupils_crop = box.to_crop(self.source_pupils, s)
        moving = moving_vertices(self.source_points_crop[None], self.source_pupils_crop[None])[0]
        self._forehead = moving[FOREHEAD]  # fixed: the expression happens in the portrait's pose
        anchors, fence = face_anchors(s)
        self.warp = PiecewiseAffineWarp(moving, np.concatenate([anchors, face_skirt(self.source_points_crop)]), s,
                                        fence=fence, device=self.device, dtype=dtype)
        self._src_s = to_tensor(self.source_crop, self.device, dtype)
        self.mouth = MouthFiller(self.source_points_crop, self.source_crop) if self.config.mouth_fill else None
        lin = torch.arange(s, device=self.device, dtype=dtype)
        self._identity = torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1)  # (S, S, 2) x, y

        # --- layers: the person's matte, the background plate, the body's motion
        if matte is None:
            matte = landmark_matte(image.shape, face.points)
        if np.shape(matte) != (height, width):
            raise InputError(f"the matte must be {(height, width)}, got {np.shape(matte)}")
        self.matte = matte = clean_matte(matte, face.points)
        self.body = BodyWarp(BodyFrame.from_points(face.points), (width, height), pinned_edges(matte),
                             device=self.device, dtype=dtype)
        self.plate = background_plate(image, matte, face.size)

        # --- the part of the picture that can change, at paste resolution
        self.scale = min(1.0, float(self.config.max_paste_side) / box.side)
        sx0, sy0, sx1, sy1 = self.body.support_box()
        self.region = _clipped_region(
            (min(sx0, box.x0), min(sy0, box.y0), max(sx1, box.x0 + box.side), max(sy1, box.y0 + box.side)),
            (height, width), self.scale)
        if self.region is None:
            raise InputError("the face crop does not overlap the picture")
        reg = self.region
        ph, pw = reg.patch_size
        self._fx, self._fy = pw / reg.width, ph / reg.height  # paste px per picture px
        crop = lambda a: a[reg.y0:reg.y1, reg.x0:reg.x1]  # noqa: E731
        texture = _resized(crop(image), (pw, ph))
        self._layer = torch.cat([to_tensor(texture, self.device, dtype) * 255.0,
                                 torch.from_numpy(_resized(crop(matte), (pw, ph))).to(self.device, dtype)[None, None]], 1)
        self._plate = to_tensor(_resized(crop(self.plate), (pw, ph)), self.device, dtype) * 255.0
        self._orig = to_tensor(crop(image), self.device, dtype) * 255.0
        # where the output can differ from the portrait before the head moves: the person's
        # layer inside the body's reach (and the plate's hole around it), and the face crop
        person = (matte > HOLE_THRESHOLD)
        sx0, sy0, sx1, sy1 = (int(np.floor(sx0)), int(np.floor(sy0)), int(np.ceil(sx1)), int(np.ceil(sy1)))
        person[:sy0], person[sy1:], person[:, :sx0], person[:, sx1:] = False, False, False, False
        rows, cols = np.nonzero(person.any(axis=1))[0], np.nonzero(person.any(axis=0))[0]
        grow = HOLE_GROWTH * face.size + 2.0
        self._head_box = (np.array([cols[0] - grow, rows[0] - grow, cols[-1] + 1 + grow, rows[-1] + 1 + grow])
                          if rows.size else np.array([box.x0, box.y0, box.x0 + box.side, box.y0 + box.side]))
        self.shots = ShotSources(shots, self.source_crop, self.source_points_crop, size=s,
                                 paste_size=round(box.side * self.scale), crop_scale=self.config.crop_scale,
                                 anchors=anchors, fence=fence, mouth_fill=self.config.mouth_fill,
                                 device=self.device, dtype=dtype)
        self._canvas: np.ndarray | None = None  # render_frames' reused full frame
        self._canvas_window: tuple[int, int, int, int] | None = None

    # ------------------------------------------------------------------ helpers
    def _targets(self, targets: np.ndarray, pupils: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Validated targets (B, 68, 2) and pupils (B, 2, 2), picture px."""
        targets = np.asarray(targets, np.float32)
        if targets.ndim == 2:
            targets = targets[None]
        if targets.ndim != 3 or targets.shape[1:] != (68, 2):
            raise InputError(f"target landmarks must be (B, 68, 2), got {targets.shape}")
        if pupils is None:
            # the source's own gaze, carried by its eyes
            pupils = transfer_pupils(self.face.points, self.source_pupils, targets)
        return targets, np.asarray(pupils, np.float32).reshape(len(targets), 2, 2)

    def head_poses(self, targets: np.ndarray) -> np.ndarray:
        """The head similarity of each target (B, 3, 3), fitted on the points that move with the
        head and not with the expression (for callers that give landmarks only)."""
        targets = np.asarray(targets, np.float64).reshape(-1, 68, 2)
        return fit_similarities(np.asarray(self.face.points, np.float64)[STABLE_POINTS], targets[:, STABLE_POINTS])

    def expression_crop(self, targets: np.ndarray, pupils: np.ndarray | None = None,
                        heads: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The targets' expression in the portrait's own pose, in crop px at S: points (B, 68, 2)
        and pupils (B, 2, 2). This is what the face warp, the shots and a network work on."""
        targets, pupils = self._targets(targets, pupils)
        heads = self.head_poses(targets) if heads is None else np.asarray(heads, np.float64).reshape(-1, 3, 3)
        inverse = np.linalg.inv(heads)
        undo = lambda pts: np.einsum("nij,nkj->nki", inverse[:, :2, :2], pts) + inverse[:, None, :2, 2]  # noqa: E731
        s = self.size
        return self.crop_box.to_crop(undo(targets), s), self.crop_box.to_crop(undo(pupils), s)

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def warp_crop(self, target_points_batch: np.ndarray, pupils: np.ndarray | None = None) -> torch.Tensor:
        """The source face crop warped to the targets' expression (the head kept in the
        portrait's pose; picture coords in): (B, 3, S, S) float in [0, 1]."""
        t_crop, p_crop = self.expression_crop(target_points_batch, pupils)
        return self._sample_s(self.warp.sample_map(moving_vertices(t_crop, p_crop, self._forehead)))

    def _sample_s(self, smap: torch.Tensor) -> torch.Tensor:
        grid = to_normalized(smap, self.size, self.size)
        src = self._src_s.expand(grid.shape[0], -1, -1, -1)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)

    @torch.inference_mode()
    def render_batch(self, targets: np.ndarray, pupils: np.ndarray | None = None, *, heads: np.ndarray | None = None,
                     refine: RefineFn | None = None, shot_weights: np.ndarray | None = None) -> np.ndarray:
        """Full frames (B, H, W, 3) uint8: the portrait with its head and face moved to each target."""
        (y0, y1, x0, x1), patches = self.render_patches(targets, pupils, heads=heads, refine=refine,
                                                        shot_weights=shot_weights)
        frames = np.repeat(self.image[None], len(patches), axis=0)
        frames[:, y0:y1, x0:x1] = patches
        return frames

    def render_frames(self, targets: np.ndarray, pupils: np.ndarray | None = None, *, heads: np.ndarray | None = None,
                      refine: RefineFn | None = None, shot_weights: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The frames of `render_batch`, one at a time, each a view of ONE reused full-size
        buffer that is valid until the next frame is asked for (write or copy it first): only
        the changed window is written, the portrait is never copied per frame."""
        (y0, y1, x0, x1), patches = self.render_patches(targets, pupils, heads=heads, refine=refine,
                                                        shot_weights=shot_weights)
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
                       heads: np.ndarray | None = None, refine: RefineFn | None = None,
                       shot_weights: np.ndarray | None = None) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """The part of each frame that differs from the portrait: ((y0, y1, x0, x1) picture
        window, (B, y1 - y0, x1 - x0, 3) uint8). Outside the window every frame IS the portrait.

        `targets` (B, 68, 2) and `pupils` (B, 2, 2) are picture px; `heads` (B, 3, 3) the head's
        similarity per frame (the motion stage's `MotionTrack.heads`; None: fitted to the
        targets). `shot_weights` (B, 1 + number of shots), rows summing to 1: how much of each
        frame's face interior comes from the portrait (column 0) and from each extra shot.
        """
        targets, pupils = self._targets(targets, pupils)
        heads = self.head_poses(targets) if heads is None else np.asarray(heads, np.float64).reshape(-1, 3, 3)
        if len(heads) != len(targets):
            raise InputError(f"{len(heads)} head poses for {len(targets)} targets")
        t_crop, p_crop = self.expression_crop(targets, pupils, heads)
        target_moving = moving_vertices(t_crop, p_crop, self._forehead)
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
        expression = (smap - self._identity).permute(0, 3, 1, 2)  # (B, 2, S, S): the face warp's shift, S px

        r0, r1, c0, c1 = self._window(heads)
        reg = self.region
        if r1 <= r0 or c1 <= c0:
            return (reg.y0, reg.y0, reg.x0, reg.x0), np.zeros((b, 0, 0, 3), np.uint8)
        box, s = self.crop_box, self.size
        to_s = s / box.side
        ph, pw = reg.patch_size
        # picture px -> layer grid coordinates, and an S-px shift -> a layer grid shift (linear per axis)
        shift_to_grid = torch.tensor([2.0 * self._fx / (to_s * max(pw - 1, 1)), 2.0 * self._fy / (to_s * max(ph - 1, 1))],
                                     device=self.device, dtype=self.dtype)
        out = []
        for i in range(b):
            # the body map is smooth: computed every BODY_STRIDE paste px, interpolated in between
            coarse_pixels, size = self._coarse_grid(r0, r1, c0, c1)
            body = self.body.inverse(coarse_pixels, heads[i:i + 1])  # (1, h', w', 2) portrait px
            at_s = (body - torch.tensor([box.x0, box.y0], device=self.device, dtype=self.dtype)) * to_s
            fields = torch.cat([to_normalized(at_s, s, s), self._texture_grid(body), body - coarse_pixels], -1)
            fields = fields.permute(0, 3, 1, 2)
            fields = F.interpolate(fields, size=size, mode="bilinear", align_corners=True)
            grid_s = fields[:, 0:2].permute(0, 2, 3, 1)
            sample_s = lambda x: F.grid_sample(x, grid_s, mode="bilinear", padding_mode="zeros",  # noqa: E731
                                               align_corners=True)
            shift = sample_s(expression[i:i + 1])  # (1, 2, h, w), S px
            texture_grid = torch.addcmul(fields[:, 2:4], shift, shift_to_grid.view(1, 2, 1, 1)).permute(0, 2, 3, 1)
            # how far each pixel's source is from it (picture px): background that moved at all
            # -- with the head or the face -- is taken from the plate
            distance = (fields[:, 4:6] + shift / to_s).norm(dim=1, keepdim=True)
            moved = _smoothstep(distance / PLATE_AFTER_PX)
            layer = F.grid_sample(self._layer, texture_grid, mode="bilinear", padding_mode="border",
                                  align_corners=True)  # (1, 4, h, w): colour 0..255, matte
            colour, alpha = layer[:, :3], layer[:, 3:]
            if fill_delta is not None:
                colour = colour + sample_s(fill_delta[i:i + 1])
            if shot_parts:
                colour = self.shots.paste(colour, shot_parts, grid_s, frame=i)
            if refine_delta is not None:
                colour = colour + sample_s(refine_delta[i:i + 1])
            colour = torch.lerp(colour, self._plate[..., r0:r1, c0:c1], (1.0 - alpha) * moved)
            if self.scale < 1.0:  # back to picture resolution, the unchanged pixels untouched
                changed = (distance * 4.0).clamp(0.0, 1.0)
                for delta in (fill_delta, refine_delta):
                    if delta is not None:
                        changed = torch.maximum(changed, sample_s(delta[i:i + 1]).abs().amax(1, keepdim=True).clamp(0, 1))
                colour, window = self._to_picture(torch.cat([colour, changed], 1), r0, r1, c0, c1)
                y0, y1, x0, x1 = window
                colour = torch.lerp(self._orig[..., y0 - reg.y0:y1 - reg.y0, x0 - reg.x0:x1 - reg.x0],
                                    colour[:, :3], colour[:, 3:])
            out.append(colour.clamp_(0.0, 255.0).add_(0.5).to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy())
        if self.scale >= 1.0:
            window = (reg.y0 + r0, reg.y0 + r1, reg.x0 + c0, reg.x0 + c1)
        return window, np.stack(out)

    def _coarse_grid(self, r0: int, r1: int, c0: int, c1: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """Picture px (h', w', 2) of every BODY_STRIDE-th paste pixel of the window, first and last
        included (so bilinear interpolation with align_corners=True lands on every pixel), and
        the window's size (h, w)."""
        h, w = r1 - r0, c1 - c0
        ys = torch.linspace(r0, r1 - 1, max(2, -(-(h - 1) // BODY_STRIDE) + 1), device=self.device, dtype=self.dtype)
        xs = torch.linspace(c0, c1 - 1, max(2, -(-(w - 1) // BODY_STRIDE) + 1), device=self.device, dtype=self.dtype)
        ys = self.region.y0 + (ys + 0.5) / self._fy - 0.5
        xs = self.region.x0 + (xs + 0.5) / self._fx - 0.5
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1), (h, w)

    def _texture_grid(self, points: torch.Tensor) -> torch.Tensor:
        """Picture px (..., 2) -> grid_sample coordinates of the paste-resolution layers."""
        reg = self.region
        ph, pw = reg.patch_size
        x = ((points[..., 0] - reg.x0 + 0.5) * self._fx - 0.5) * (2.0 / max(pw - 1, 1)) - 1.0
        y = ((points[..., 1] - reg.y0 + 0.5) * self._fy - 0.5) * (2.0 / max(ph - 1, 1)) - 1.0
        return torch.stack([x, y], -1)

    def _window(self, heads: np.ndarray) -> tuple[int, int, int, int]:
        """Paste-px rows/columns (r0, r1, c0, c1) of the region that can change in these frames:
        the head's box where it is and where each head pose moves it, and the face crop."""
        x0, y0, x1, y1 = self._head_box
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
        moved = np.einsum("nij,kj->nki", heads[:, :2, :2], corners) + heads[:, None, :2, 2]
        box = self.crop_box
        pts = np.concatenate([corners, moved.reshape(-1, 2), [[box.x0, box.y0], [box.x0 + box.side, box.y0 + box.side]]])
        lo, hi = pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0
        reg = self.region
        ph, pw = reg.patch_size
        c0 = int(np.clip(np.floor((lo[0] - reg.x0) * self._fx), 0, pw))
        c1 = int(np.clip(np.ceil((hi[0] - reg.x0) * self._fx) + 1, 0, pw))
        r0 = int(np.clip(np.floor((lo[1] - reg.y0) * self._fy), 0, ph))
        r1 = int(np.clip(np.ceil((hi[1] - reg.y0) * self._fy) + 1, 0, ph))
        return r0, r1, c0, c1

    def _to_picture(self, patch: torch.Tensor, r0: int, r1: int, c0: int, c1: int):
        """A paste-resolution patch (1, C, r1 - r0, c1 - c0) resampled at the picture pixels it
        covers: (patch at picture resolution, (y0, y1, x0, x1) picture window)."""
        reg = self.region
        x0 = reg.x0 + int(np.floor(c0 / self._fx))
        x1 = min(reg.x1, reg.x0 + int(np.ceil(c1 / self._fx)))
        y0 = reg.y0 + int(np.floor(r0 / self._fy))
        y1 = min(reg.y1, reg.y0 + int(np.ceil(r1 / self._fy)))
        xs = torch.arange(x0, x1, device=self.device, dtype=self.dtype)
        ys = torch.arange(y0, y1, device=self.device, dtype=self.dtype)
        gx = ((xs - reg.x0 + 0.5) * self._fx - 0.5 - c0) * (2.0 / max(c1 - c0 - 1, 1)) - 1.0
        gy = ((ys - reg.y0 + 0.5) * self._fy - 0.5 - r0) * (2.0 / max(r1 - r0 - 1, 1)) - 1.0
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
        up = F.grid_sample(patch, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return up, (y0, y1, x0, x1)

    def render(self, target_points: np.ndarray, target_pupils: np.ndarray | None = None, *,
               head: np.ndarray | None = None, refine: RefineFn | None = None) -> np.ndarray:
        """One full frame (H, W, 3) uint8 for one target (68, 2) in picture coordinates."""
        pupils = None if target_pupils is None else np.asarray(target_pupils, np.float32)[None]
        heads = None if head is None else np.asarray(head, np.float64)[None]
        return self.render_batch(np.asarray(target_points, np.float32)[None], pupils, heads=heads, refine=refine)[0]


def _clipped_region(box: tuple[float, float, float, float], shape: tuple[int, int], scale: float) -> PasteRegion | None:
    """The integer picture rectangle covering `box` (x0, y0, x1, y1), clipped to the picture."""
    h, w = shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2])) + 1), min(h, int(np.ceil(box[3])) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return PasteRegion(x0, y0, x1, y1, scale)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at (width, height), area-filtered when it shrinks."""
    import cv2

    if (image.shape[1], image.shape[0]) == tuple(size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
