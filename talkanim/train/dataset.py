"""Episodes of the meta-learning stage, sampled as a pure function of (seed, step, rank).

An episode (PAPER_NOTES.md): video i, a target frame, and T other frames of the same video.
There is no iterator with hidden state: `sample_episodes(step, ...)` draws step `step`'s batch
from a generator seeded by (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would, and each rank takes its own slice of one global batch.

A prepared dataset is small (crops of a few dozen frames per video), so all shards are held in
memory as uint8 and converted to float per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from talkanim.model.sketch import draw_sketch
from talkanim.motion.shots import nearest_shots
from talkanim.train.prepare import load_manifest, load_shard


@dataclass
class EpisodeBatch:
    """B episodes; images in [0, 1] float32, points in crop pixels at the model resolution."""

    target: torch.Tensor  # (B, 3, S, S)
    target_points: torch.Tensor  # (B, 68, 2)
    target_pupils: torch.Tensor  # (B, 2, 2)
    shots: torch.Tensor  # (B, T, 3, S, S)
    shot_points: torch.Tensor  # (B, T, 68, 2)
    shot_pupils: torch.Tensor  # (B, T, 2, 2)
    video_index: torch.Tensor  # (B,) long: row of D's W (train videos), -1 for others
    source_slot: torch.Tensor  # (B,) long: the shot nearest the target in pose/expression
    target_sketch: torch.Tensor  # (B, 3, S, S) landmark image of the target
    shot_sketches: torch.Tensor  # (B, T, 3, S, S)

    def to(self, device: torch.device | str) -> "EpisodeBatch":
        return EpisodeBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    @property
    def source(self) -> torch.Tensor:
        """(B, 3, S, S): the shot the hybrid generator warps from."""
        return self.shots[torch.arange(len(self.shots)), self.source_slot]

    @property
    def source_points(self) -> torch.Tensor:
        return self.shot_points[torch.arange(len(self.shots)), self.source_slot]


@dataclass
class _Video:
    name: str
    images: torch.Tensor  # (F, 3, S, S) uint8
    points: torch.Tensor  # (F, 68, 2) float32
    pupils: torch.Tensor  # (F, 2, 2) float32
    sketches: torch.Tensor  # (F, 3, S, S) float32, drawn once: rasterizing is slow on a CPU
    train_index: int  # -1 outside the training split
    num_train_frames: int  # frames [0, num_train_frames) may be trained on; the rest are held


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, step, stream): independent streams, stable across runs."""
    mixed = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(stream)]).generate_state(2, np.uint32)
    return int((int(mixed[0]) << 31) ^ int(mixed[1]))


def nearest_shot(shot_points: torch.Tensor, target_points: torch.Tensor) -> torch.Tensor:
    """Index (B,) of the shot nearest each episode's target in pose/expression, by the same
    Procrustes distance animate uses (talkanim.motion.nearest_shots). shot_points (B,T,68,2)."""
    return torch.tensor([int(nearest_shots(shots.numpy(), target[None].numpy())[0])
                         for shots, target in zip(shot_points.cpu(), target_points.cpu())], dtype=torch.long)


class EpisodeDataset:
    """The videos of one split of a prepared dataset, ready to sample episodes from.

    `image_size` resizes crops (and scales landmarks) when the dataset was prepared at another
    resolution. The last `held_frames` frames of every video are excluded from sampling and form
    the held-out set for `held_episodes`.
    """

    def __init__(self, dataset: Path, split: str = "train", *, image_size: int | None = None,
                 held_frames: int = 0, min_train_frames: int = 2):
        self.root = Path(dataset)
        self.manifest = load_manifest(self.root)
        self.split = split
        self.image_size = int(image_size or self.manifest["image_size"])
        self.num_train_videos = sum(e["split"] == "train" for e in self.manifest["videos"])
        self.videos: list[_Video] = []
        for entry in self.manifest["videos"]:
            if split != "all" and entry["split"] != split:
                continue
            t = load_shard(self.root, entry)
            images, points, pupils = t["images"], t["points"].float(), t["pupils"].float()
            if images.shape[-1] != self.image_size:
                ratio = self.image_size / images.shape[-1]
                images = F.interpolate(images.float(), size=(self.image_size,) * 2, mode="bilinear",
                                       antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
                # Pixel centres at integers: x' = (x + 0.5) * r - 0.5.
                points, pupils = (points + 0.5) * ratio - 0.5, (pupils + 0.5) * ratio - 0.5
            n = images.shape[0]
            held = min(held_frames, max(0, n - min_train_frames))
            ti = entry.get("train_index")
            sketches = torch.cat([draw_sketch(points[i:i + 16], self.image_size, pupils[i:i + 16])
                                  for i in range(0, n, 16)])
            self.videos.append(_Video(entry["name"], images.contiguous(), points, pupils, sketches,
                                      -1 if ti is None else int(ti), n - held))
        if not self.videos:
            raise ValueError(f"no {split!r} videos in dataset {self.root}")

    def __len__(self) -> int:
        return len(self.videos)

    def sample_episodes(self, step: int, batch_size: int, shots: int, *, seed: int,
                        rank: int = 0, world_size: int = 1) -> EpisodeBatch:
        """Step `step`'s episodes for `rank`: its slice of a global batch of
        batch_size * world_size episodes drawn from a generator seeded by (seed, step)."""
        g = torch.Generator().manual_seed(step_seed(seed, step))
        total = batch_size * world_size
        vids = torch.randint(len(self.videos), (total,), generator=g).tolist()
        picks = []
        for v in vids:
            n = self.videos[v].num_train_frames
            order = torch.randperm(n, generator=g)
            if n >= shots + 1:
                target, shot_ix = order[0], order[1:shots + 1]
            else:  # short video: shots repeat, but never as the target
                target = order[0]
                others = order[1:] if n > 1 else order
                shot_ix = others[torch.randint(len(others), (shots,), generator=g)]
            picks.append((v, int(target), shot_ix.tolist()))
        mine = picks[rank * batch_size:(rank + 1) * batch_size]
        return self._gather(mine)

    def held_episodes(self, shots: int, max_videos: int | None = None) -> EpisodeBatch:
        """A fixed evaluation batch: for each video (up to `max_videos`), every held frame as a
        target, with `shots` training frames spread evenly over the video as its shots."""
        picks = []
        for v, video in enumerate(self.videos[:max_videos]):
            n = video.num_train_frames
            shot_ix = np.round(np.linspace(0, n - 1, shots)).astype(int).tolist()
            targets = range(n, video.images.shape[0]) if n < video.images.shape[0] else [n - 1]
            picks.extend((v, t, shot_ix) for t in targets)
        return self._gather(picks)

    def _gather(self, picks: list[tuple[int, int, list[int]]]) -> EpisodeBatch:
        def img(v: int, ix) -> torch.Tensor:
            return self.videos[v].images[ix].float() / 255.0

        target = torch.stack([img(v, t) for v, t, _ in picks])
        tp = torch.stack([self.videos[v].points[t] for v, t, _ in picks])
        tq = torch.stack([self.videos[v].pupils[t] for v, t, _ in picks])
        shots = torch.stack([img(v, s) for v, _, s in picks])
        sp = torch.stack([self.videos[v].points[s] for v, _, s in picks])
        sq = torch.stack([self.videos[v].pupils[s] for v, _, s in picks])
        vi = torch.tensor([self.videos[v].train_index for v, _, _ in picks], dtype=torch.long)
        tk = torch.stack([self.videos[v].sketches[t] for v, t, _ in picks])
        sk = torch.stack([self.videos[v].sketches[s] for v, _, s in picks])
        return EpisodeBatch(target, tp, tq, shots, sp, sq, vi, nearest_shot(sp, tp), tk, sk)


# ---------------------------------------------------------------------------------------------
# The hybrid generator's input: a source crop warped onto the target's landmarks. Training takes
# the warp as a function (what the renderer gives the network, by default) so tests can swap in
# a cheaper one.
# warp_fn(images (B,3,S,S), src_points (B,68,2), dst_points (B,68,2)) -> (B,3,S,S)


def default_warp_fn():
    """What `animate` hands the network: the renderer's face warp with its mouth fill."""
    return renderer_warp


@torch.no_grad()
def renderer_warp(images: torch.Tensor, src_points: torch.Tensor, dst_points: torch.Tensor) -> torch.Tensor:
    """Each crop warped to the target landmarks as the renderer warps a portrait's face crop
    (pupils among the moving vertices, anchors beside the jaw), with the newly opened mouth
    painted by the renderer's mouth fill: the network learns to correct what it will be given,
    a painted cavity and teeth included, not a bare warp it never sees at run time."""
    from talkanim.landmarks.measures import eye_centres
    from talkanim.render.mouth import MouthFiller
    from talkanim.render.warp import face_warp, moving_vertices, to_normalized

    size = images.shape[-1]
    src = src_points.detach().cpu().numpy().astype(np.float32)
    dst = dst_points.detach().cpu().numpy().astype(np.float32)
    crops = (images.detach().cpu().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for i in range(images.shape[0]):
        warp = face_warp(src[i], eye_centres(src[i]), size)
        grid = to_normalized(warp.sample_map(moving_vertices(dst[i][None], eye_centres(dst[i])[None])), size, size)
        warped = F.grid_sample(images[i:i + 1].float().cpu(), grid, mode="bilinear", padding_mode="border",
                               align_corners=True)
        out.append(MouthFiller(src[i], crops[i])(warped, dst[i][None]))
    return torch.cat(out).to(images.device, images.dtype)


@torch.no_grad()
def similarity_warp(images: torch.Tensor, src_points: torch.Tensor, dst_points: torch.Tensor) -> torch.Tensor:
    """A cheap global warp (least-squares affine taking the target landmarks to the source's),
    for tests that need a warp but not the renderer's."""
    size = images.shape[-1]
    a = torch.cat([dst_points, torch.ones_like(dst_points[..., :1])], -1).double()  # (B,68,3)
    # Affine fit (more freedom than a similarity, still global): source = [x y 1] @ M.
    m = torch.linalg.lstsq(a, src_points.double()).solution  # (B,3,2)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).to(images.device).view(1, -1, 3)
    src = (pix @ m).view(-1, size, size, 2)
    grid = (src * 2.0 / (size - 1) - 1.0).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
