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

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkanim.config import RenderConfig
from talkanim.errors import InputError
from talkanim.landmarks.measures import eye_centres
from talkanim.landmarks.types import Face
from talkanim.motion.geometry import STABLE_POINTS, fit_similarities
from talkanim.motion.retarget import TEMPLES_TO_CHEEKS, transfer_pupils
from talkanim.render.body import BodyFrame, BodyWarp
from talkanim.render.crop import CropBox, crop_image, face_crop_box
from talkanim.render.eyelids import EYES as EYE_POINTS, closed_eye_layer, closure
from talkanim.render.mouth import MouthFiller
from talkanim.render.paste import PasteRegion, to_tensor
from talkanim.render.plate import HOLE_GROWTH, HOLE_THRESHOLD, background_plate, clean_matte, landmark_matte, pinned_edges
from talkanim.render.shots import ShotSources
from talkanim.render.warp import FOREHEAD, face_anchors, face_warp, moving_vertices, to_normalized

# refine(warped (B,3,S,S) in [0,1], target points (B,68,2) crop px at S, target pupils (B,2,2) crop px)
RefineFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# Background that moved by more than this many picture px is replaced by the plate (less: a
# sub-pixel drift nobody sees, and the portrait's own pixels are exact).
PLATE_AFTER_PX = 1.0


def _undo_heads(heads: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (B, K, 2) in the output picture taken back by each frame's head pose (B, 3, 3):
    where they sit in the portrait's own pose."""
    inverse = np.linalg.inv(heads)
    return np.einsum("nij,nkj->nki", inverse[:, :2, :2], points) + inverse[:, None, :2, 2]


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
        self.warp = face_warp(self.source_points_crop, self.source_pupils_crop, s, device=self.device, dtype=dtype)
        # fixed: the expression happens in the portrait's pose
        self._forehead = self.warp.source_vertices[FOREHEAD].copy()
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
        crop = lambda a: np.ascontiguousarray(a[reg.y0:reg.y1, reg.x0:reg.x1])  # noqa: E731
        matte_u8 = np.round(matte * 255.0).astype(np.uint8)
        # colour and matte in one 4-channel image, sampled together at paste resolution
        self._layer = _resized(np.dstack([crop(image), crop(matte_u8)]), (pw, ph))
        self._plate = _resized(crop(self.plate), (pw, ph))
        self._orig = crop(image)
        # the portrait with its eyes filled in with lid skin, and where the eyes are (eyelids.py)
        self._eyes = _resized(crop(closed_eye_layer(image, face.points)), (pw, ph)) if self.config.eyelids else None
        # the body map is smooth and the face warp is piecewise affine on a raster of S/2 per
        # crop side: both are sampled about every two S pixels and interpolated in between
        self._stride = max(1, int(2.0 * box.side * self.scale / s))
        # where the output can differ from the portrait before the head moves: the person's
        # layer inside the body's reach (and the plate's hole around it), and the face crop
        grow = HOLE_GROWTH * face.size + 2.0
        # ... for the head alone, and for the whole body when the torso moves too
        self._head_box = _person_box(matte, self.body.head_box(), grow, box)
        self._body_box = _person_box(matte, self.body.support_box(), grow, box)
        anchors, fence = face_anchors(s)  # the shots' warps: the crop's ring and border
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

    def outline_heads(self, targets: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """The head poses (B, 3, 3) shifted so the head carries the targets' face outline.

        A head similarity is fitted on eyes and nose; when a head turns or nods, the outline's
        sides (temples to cheeks) slide against them, often by a tenth of the face's width.
        Left to the face warp, that slide shears the hair between the outline and the warp's
        fixed ring. The hair sits on the skull whose silhouette the outline is, so the whole
        head follows the outline's mean slide (`RenderConfig.head_follows_outline` of it, at
        most `head_follows_outline_at_most` face widths) and the warp moves the eyes, nose and
        mouth across the face instead. The cap: a driver behind a microphone slid its outline a
        median 12 % (up to 31 %); followed all the way, the Mona Lisa's eyes, carried that far
        across her face, read eye r -0.15 against the driver's (0.88 unfollowed, 0.54 capped at 5 %)."""
        share = self.config.head_follows_outline
        if share == 0.0:
            return heads
        undone = _undo_heads(heads, np.asarray(targets, np.float64)[:, TEMPLES_TO_CHEEKS])
        source = np.asarray(self.face.points, np.float64)
        slide = share * (undone - source[TEMPLES_TO_CHEEKS]).mean(axis=1)
        most = self.config.head_follows_outline_at_most * np.linalg.norm(source[16] - source[0])
        length = np.linalg.norm(slide, axis=1, keepdims=True)
        slide *= np.minimum(1.0, most / np.maximum(length, 1e-9))
        shift = np.repeat(np.eye(3)[None], len(heads), axis=0)
        shift[:, :2, 2] = slide
        return heads @ shift

    def expression_crop(self, targets: np.ndarray, pupils: np.ndarray | None = None,
                        heads: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The targets' expression in the portrait's own pose, in crop px at S: points (B, 68, 2)
        and pupils (B, 2, 2). This is what the face warp, the shots and a network work on."""
        targets, pupils = self._targets(targets, pupils)
        heads = self.head_poses(targets) if heads is None else np.asarray(heads, np.float64).reshape(-1, 3, 3)
        s = self.size
        return (self.crop_box.to_crop(_undo_heads(heads, targets), s),
                self.crop_box.to_crop(_undo_heads(heads, pupils), s))

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
        # a head that would fold the neck or an edge moves less; the face warp takes the rest
        # of the way to the targets, so the face still lands where the driver's is
        heads = self.body.limit(self.outline_heads(targets, heads))
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
        # how shut each eye is: what the warp samples inside it comes from the closed-eye layer
        shut = closure(self.source_points_crop, t_crop) if self._eyes is not None else np.zeros((b, 2))
        # everything below runs per frame on the CPU, in OpenCV (the output goes to the encoder)
        shifts = (smap - self._identity).float().cpu().numpy()  # (B, S, S, 2): the face warp's shift, S px
        as_hwc = lambda d: None if d is None else np.ascontiguousarray(d.permute(0, 2, 3, 1).float().cpu().numpy())  # noqa: E731
        fill_hwc, refine_hwc = as_hwc(fill_delta), as_hwc(refine_delta)
        active = _support(fill_delta, refine_delta, shot_parts)  # where the corrections touch, S px

        r0, r1, c0, c1 = self._window(heads)
        reg = self.region
        if r1 <= r0 or c1 <= c0:
            return (reg.y0, reg.y0, reg.x0, reg.x0), np.zeros((b, 0, 0, 3), np.uint8)
        plate = self._plate[r0:r1, c0:c1]
        # where each window pixel's portrait point is under each frame's body map: one batched
        # inverse on the coarse grid (per frame, its many small torch ops cost ~6 ms a frame)
        pixels = self._coarse_grid(r0, r1, c0, c1)
        bodies = self.body.inverse(torch.from_numpy(pixels).to(self.device, self.dtype), heads)
        # the face warp fades out towards the edges the person touches, as the head's motion does
        pinned = self.body.edge_weight(bodies).float().cpu().numpy()[..., None]
        bodies = bodies.float().cpu().numpy()
        # at paste = picture resolution each frame is blended straight into its place in the batch
        out = np.empty((b, r1 - r0, c1 - c0, 3), np.uint8) if self.scale >= 1.0 else [None] * b
        for i in range(b):
            tex, moved, changed, coarse_at_s = self._maps(bodies[i], pinned[i], shifts[i], pixels, r1 - r0, c1 - c0)
            layer = cv2.remap(self._layer, tex, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            colour = cv2.cvtColor(layer, cv2.COLOR_RGBA2RGB)  # drops the matte (a strided numpy copy: 3.4 ms a frame)
            box = self._fine_box(coarse_at_s, active, tex.shape[:2])  # the window rows/columns the corrections reach
            if box is not None:
                y0, y1, x0, x1 = box
                sx, sy = self._fine_at_s(coarse_at_s, box)
                sub = colour[y0:y1, x0:x1].astype(np.float32)
                if fill_hwc is not None:
                    sub += _remap(fill_hwc[i], sx, sy)
                if shot_parts:
                    sub = self.shots.paste(sub, shot_parts, (sx, sy), frame=i)
                if refine_hwc is not None:
                    sub += _remap(refine_hwc[i], sx, sy)
                colour[y0:y1, x0:x1] = np.clip(sub + 0.5, 0, 255).astype(np.uint8)
            for eye in np.flatnonzero(shut[i] > 0.0):
                lid = self._fine_box(coarse_at_s, _eye_box(t_crop[i], eye), tex.shape[:2])
                if lid is None:
                    continue
                ly0, ly1, lx0, lx1 = lid
                closed = cv2.remap(self._eyes, tex[ly0:ly1, lx0:lx1], None, cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
                weight = closed[..., 3:].astype(np.float32) * np.float32(shut[i, eye] / 255.0)
                sub = colour[ly0:ly1, lx0:lx1].astype(np.float32)
                colour[ly0:ly1, lx0:lx1] = np.clip(sub + (closed[..., :3] - sub) * weight + 0.5, 0, 255).astype(np.uint8)
            # background that moved (with the head or the face) is taken from the plate
            mix = np.subtract(np.float32(255.0), layer[..., 3], dtype=np.float32)  # not the person,
            mix *= moved  # times how far the pixel's source moved
            frame = cv2.blendLinear(plate, colour, mix, np.subtract(np.float32(1.0), mix),
                                    dst=out[i] if self.scale >= 1.0 else None)
            if self.scale < 1.0:  # back to picture resolution, the pixels that did not change untouched
                if box is not None:
                    changed[y0:y1, x0:x1] = 1.0
                out[i], window = self._to_picture(frame, changed, r0, r1, c0, c1)
        if self.scale >= 1.0:
            return (reg.y0 + r0, reg.y0 + r1, reg.x0 + c0, reg.x0 + c1), out
        return window, np.stack(out)

    def _coarse_grid(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Picture px (nh, nw, 2) float32 of a grid every `stride` paste pixels over the window
        (r0, r1, c0, c1), reaching one cell past it on each side so that interpolating it up
        never extrapolates; coarse sample c sits at window pixel (c + 0.5) k - 0.5 - k, where
        cv2.resize puts it."""
        k, reg = self._stride, self.region
        h, w = r1 - r0, c1 - c0
        nh, nw = int(np.ceil((h - 0.5) / k + 1.5)), int(np.ceil((w - 0.5) / k + 1.5))
        rows = r0 + (np.arange(nh) + 0.5) * k - 0.5 - k
        cols = c0 + (np.arange(nw) + 0.5) * k - 0.5 - k
        ys = reg.y0 + (rows + 0.5) / self._fy - 0.5  # paste px -> picture px
        xs = reg.x0 + (cols + 0.5) / self._fx - 0.5
        return np.stack(np.meshgrid(xs, ys), -1).astype(np.float32)

    def _maps(self, body: np.ndarray, pinned: np.ndarray, shift: np.ndarray, pixels: np.ndarray, h: int, w: int):
        """For the window's (h, w) paste pixels, one frame: where to sample the layers (texture
        px, one (h, w, 2) map for cv2.remap); how far that source is from the pixel, as the
        plate's share of the background there over 255 (0 where it stays, 1 / 255 from
        PLATE_AFTER_PX on, smoothly between) and, below picture resolution, as whether the
        pixel changed (0 to 1 within a quarter pixel; else None), both (h, w); and the pixels'
        positions in the expression crop at S on the coarse grid (nh, nw, 2; `_fine_at_s`
        interpolates them where they are needed); float32.

        From the frame's body map on the coarse grid `pixels` (`body`: the portrait points
        there; `pinned` (nh, nw, 1): the edges' fade) and its face warp's `shift`, interpolated
        up: the body map is smooth and the face warp is already bilinear between its raster
        points (the distance's functions are taken on the coarse grid too: a full-window pass
        each cost ~1 ms a frame)."""
        k, reg, box, s = self._stride, self.region, self.crop_box, self.size
        nh, nw = pixels.shape[:2]
        to_s = s / box.side
        at_s = ((body - (box.x0, box.y0)) * to_s).astype(np.float32)
        moved = _remap(shift, at_s[..., 0], at_s[..., 1]) * pinned  # the face warp's shift there, S px
        source = body + moved / to_s
        tex_x = (source[..., 0] - reg.x0 + 0.5) * self._fx - 0.5
        tex_y = (source[..., 1] - reg.y0 + 0.5) * self._fy - 0.5
        distance = np.linalg.norm(source - pixels, axis=-1)
        up = lambda a: cv2.resize(np.dstack(a).astype(np.float32), (nw * k, nh * k),  # noqa: E731
                                  interpolation=cv2.INTER_LINEAR)[k:k + h, k:k + w]
        far = np.minimum(distance / PLATE_AFTER_PX, 1.0)
        plate = up([far * far * (3.0 - 2.0 * far) / 255.0])  # smoothstep
        changed = up([np.minimum(distance * 4.0, 1.0)]) if self.scale < 1.0 else None
        # one two-channel map for cv2.remap, which reads the strided view without a copy
        return up([tex_x, tex_y]), plate, changed, at_s

    def _fine_at_s(self, coarse_at_s: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The expression-crop positions x, y (two (y1 - y0, x1 - x0) float32) of the window
        pixels in `box` (y0, y1, x0, x1): the coarse grid interpolated up as `_maps` does, on
        the cells around the box only. Resizing by k is the same at every multiple of k, and a
        cell more on each side keeps cv2's border clamping out: the values equal a crop of the
        whole window's."""
        k = self._stride
        y0, y1, x0, x1 = box
        nh, nw = coarse_at_s.shape[:2]
        # window pixel i is resized index i + k, at coarse coordinate (i + k + 0.5) / k - 0.5
        first = lambda i: max(int(np.floor((i + k + 0.5) / k - 0.5)) - 1, 0)  # noqa: E731
        last = lambda i, n: min(int(np.floor((i + k + 0.5) / k - 0.5)) + 3, n)  # noqa: E731
        cy0, cy1, cx0, cx1 = first(y0), last(y1 - 1, nh), first(x0), last(x1 - 1, nw)
        part = cv2.resize(np.ascontiguousarray(coarse_at_s[cy0:cy1, cx0:cx1]), ((cx1 - cx0) * k, (cy1 - cy0) * k),
                          interpolation=cv2.INTER_LINEAR)
        part = part[y0 + k - cy0 * k:y1 + k - cy0 * k, x0 + k - cx0 * k:x1 + k - cx0 * k]
        return part[..., 0], part[..., 1]

    def _fine_box(self, coarse_at_s: np.ndarray, active, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """The window rows/columns (y0, y1, x0, x1) that can fall in the expression-crop box
        `active` (x0, y0, x1, y1, S px): read off the coarse grid (testing every window pixel
        cost ~4 ms a frame). The fine map interpolates its cell's four corners bilinearly, so a
        pixel can only fall in the box if its cell's corners' bounding box meets it; the rows and
        columns of such cells, and a pixel more, hold every pixel that does."""
        if active is None:
            return None
        x, y = coarse_at_s[..., 0], coarse_at_s[..., 1]
        corners = lambda a: (a[:-1, :-1], a[1:, :-1], a[:-1, 1:], a[1:, 1:])  # noqa: E731
        x_lo, x_hi = np.minimum.reduce(corners(x)), np.maximum.reduce(corners(x))
        y_lo, y_hi = np.minimum.reduce(corners(y)), np.maximum.reduce(corners(y))
        meets = (x_hi >= active[0]) & (x_lo <= active[2]) & (y_hi >= active[1]) & (y_lo <= active[3])
        rows, cols = np.flatnonzero(meets.any(axis=1)), np.flatnonzero(meets.any(axis=0))
        if rows.size == 0:
            return None
        # cell c spans window pixels [(c - 0.5) k - 0.5, (c + 0.5) k - 0.5) (see _coarse_grid)
        k = self._stride
        span = lambda first, last, n: (max(int(np.floor((first - 0.5) * k - 0.5)) - 1, 0),  # noqa: E731
                                       min(int(np.ceil((last + 0.5) * k - 0.5)) + 1, n))
        (y0, y1), (x0, x1) = span(rows[0], rows[-1], shape[0]), span(cols[0], cols[-1], shape[1])
        return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None

    def _window(self, heads: np.ndarray) -> tuple[int, int, int, int]:
        """Paste-px rows/columns (r0, r1, c0, c1) of the region that can change in these frames:
        the head's box where it is and where each head pose moves it, and the face crop."""
        x0, y0, x1, y1 = self._head_box
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
        moved = np.einsum("nij,kj->nki", heads[:, :2, :2], corners) + heads[:, None, :2, 2]
        box = self.crop_box
        pts = np.concatenate([corners, moved.reshape(-1, 2), [[box.x0, box.y0], [box.x0 + box.side, box.y0 + box.side]]])
        torso = self.body.torso_shifts(heads)
        if np.abs(torso).max() > 0.0:  # the body comes along: its box, where it was and went
            x0, y0, x1, y1 = self._body_box
            body = np.array([[x0, y0], [x1, y1]], np.float64)
            pts = np.concatenate([pts, body, (body[None] + torso[:, None]).reshape(-1, 2)])
        lo, hi = pts.min(axis=0) - 2.0, pts.max(axis=0) + 2.0
        reg = self.region
        ph, pw = reg.patch_size
        c0 = int(np.clip(np.floor((lo[0] - reg.x0) * self._fx), 0, pw))
        c1 = int(np.clip(np.ceil((hi[0] - reg.x0) * self._fx) + 1, 0, pw))
        r0 = int(np.clip(np.floor((lo[1] - reg.y0) * self._fy), 0, ph))
        r1 = int(np.clip(np.ceil((hi[1] - reg.y0) * self._fy) + 1, 0, ph))
        return r0, r1, c0, c1

    def _to_picture(self, patch: np.ndarray, changed: np.ndarray, r0: int, r1: int, c0: int, c1: int):
        """A paste-resolution patch (r1 - r0, c1 - c0, 3) at the picture pixels it covers, blended
        over the original where it `changed`: (patch at picture resolution, (y0, y1, x0, x1))."""
        reg = self.region
        x0 = reg.x0 + int(np.floor(c0 / self._fx))
        x1 = min(reg.x1, reg.x0 + int(np.ceil(c1 / self._fx)))
        y0 = reg.y0 + int(np.floor(r0 / self._fy))
        y1 = min(reg.y1, reg.y0 + int(np.ceil(r1 / self._fy)))
        xs = ((np.arange(x0, x1) - reg.x0 + 0.5) * self._fx - 0.5 - c0).astype(np.float32)
        ys = ((np.arange(y0, y1) - reg.y0 + 0.5) * self._fy - 0.5 - r0).astype(np.float32)
        map_x, map_y = np.broadcast_to(xs[None, :], (len(ys), len(xs))), np.broadcast_to(ys[:, None], (len(ys), len(xs)))
        map_x, map_y = np.ascontiguousarray(map_x), np.ascontiguousarray(map_y)
        up = cv2.remap(patch, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.remap(changed, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        original = self._orig[y0 - reg.y0:y1 - reg.y0, x0 - reg.x0:x1 - reg.x0]
        return cv2.blendLinear(up, original, weight, np.float32(1.0) - weight), (y0, y1, x0, x1)

    def render(self, target_points: np.ndarray, target_pupils: np.ndarray | None = None, *,
               head: np.ndarray | None = None, refine: RefineFn | None = None) -> np.ndarray:
        """One full frame (H, W, 3) uint8 for one target (68, 2) in picture coordinates."""
        pupils = None if target_pupils is None else np.asarray(target_pupils, np.float32)[None]
        heads = None if head is None else np.asarray(head, np.float64)[None]
        return self.render_batch(np.asarray(target_points, np.float32)[None], pupils, heads=heads, refine=refine)[0]


def _person_box(matte: np.ndarray, within: tuple[float, float, float, float], grow: float, crop: CropBox) -> np.ndarray:
    """(x0, y0, x1, y1) around the person's pixels inside `within`, grown by `grow` px (the
    face crop's box when there are none)."""
    person = matte > HOLE_THRESHOLD
    x0, y0, x1, y1 = (int(np.floor(within[0])), int(np.floor(within[1])), int(np.ceil(within[2])), int(np.ceil(within[3])))
    person[:y0], person[y1:], person[:, :x0], person[:, x1:] = False, False, False, False
    rows, cols = np.nonzero(person.any(axis=1))[0], np.nonzero(person.any(axis=0))[0]
    if not rows.size:
        return np.array([crop.x0, crop.y0, crop.x0 + crop.side, crop.y0 + crop.side])
    return np.array([cols[0] - grow, rows[0] - grow, cols[-1] + 1 + grow, rows[-1] + 1 + grow])


def _clipped_region(box: tuple[float, float, float, float], shape: tuple[int, int], scale: float) -> PasteRegion | None:
    """The integer picture rectangle covering `box` (x0, y0, x1, y1), clipped to the picture."""
    h, w = shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2])) + 1), min(h, int(np.ceil(box[3])) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return PasteRegion(x0, y0, x1, y1, scale)


def _remap(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`field` (S, S, C) float32 sampled at (x, y) (h, w) px, zero outside: (h, w, C)."""
    out = cv2.remap(field, np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(*x.shape, field.shape[-1])


def _support(fill: torch.Tensor | None, refine: torch.Tensor | None, shots: list) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) S px bounding where the corrections at S are non-zero, or None."""
    masks = [d.abs().amax(dim=(0, 1)) > 0 for d in (fill, refine) if d is not None]
    masks += [part.alpha.amax(dim=(0, 1)) > 0 for part in shots]
    if not masks:
        return None
    active = torch.stack(masks).any(dim=0)
    rows = torch.nonzero(active.any(dim=1)).flatten()
    cols = torch.nonzero(active.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return float(cols[0]) - 1.0, float(rows[0]) - 1.0, float(cols[-1]) + 1.0, float(rows[-1]) + 1.0


def _eye_box(points: np.ndarray, eye: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around an eye of `points` (68, 2), an eye's width of margin around it."""
    p = np.asarray(points, np.float64)[EYE_POINTS[eye][0]]
    margin = np.linalg.norm(p[3] - p[0])
    return (*(p.min(axis=0) - margin), *(p.max(axis=0) + margin))


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at (width, height), area-filtered when it shrinks."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
