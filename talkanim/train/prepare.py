"""`talkanim prepare`: talking-head videos -> a training set of aligned face crops.

Per video: track the 68 landmarks over every frame, keep `frames_per_video` frames spread evenly
over the frames where a face was found in its longest continuous camera shot (an episode takes
all its frames as one person; across a cut that may be someone else), crop each around its own
landmarks (the render stage's crop geometry, so training sees the crops that animation
produces) and store the crops (uint8) with their landmarks and pupils in crop coordinates, one
safetensors shard per video. A `manifest.json`, written last, lists the videos, their
identities and the train/validation split (by identity, so no person is on both sides).

Layout of DATASET_DIR:
    manifest.json
    shards/00000.safetensors   images (F,3,S,S) uint8, points (F,68,2) f32, pupils (F,2,2) f32,
                               frame_index (F,) int64 (position in the source video)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from talkanim.errors import NoFaceError
from talkanim.io import atomic_output, iter_frames, probe_video, watch_cuts
from talkanim.landmarks.types import LandmarkTrack
from talkanim.render.crop import crop_image, face_crop_box

MANIFEST_VERSION = 1
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}

# (video path) -> landmarks of every frame, with the video's camera cuts. Injected so tests and
# other backends can swap it.
Tracker = Callable[[Path], LandmarkTrack]
# progress(videos done, videos total, message)
Progress = Callable[[int, int, str], None]


@dataclass
class VideoEntry:
    """One prepared video as the manifest records it."""

    index: int  # position in the manifest
    name: str  # "<parent>/<stem>", unique within the dataset
    source: str  # the video path it came from
    identity: str  # who is in it (one person per video)
    split: str  # "train" or "val"
    train_index: int | None  # row of the discriminator's W (train videos only)
    shard: str  # path relative to the dataset folder
    num_frames: int
    source_frames: int  # frames in the video
    valid_frames: int  # frames where a face was found, in the shot the frames come from
    fps: float
    sha256: str  # of the shard file
    span: tuple[int, int] | None = None  # [start, stop) of that camera shot (None: the whole video)


@dataclass
class PrepareReport:
    """What `prepare_dataset` did."""

    out_dir: Path
    manifest: Path
    videos: list[VideoEntry]
    skipped: list[tuple[str, str]]  # (video, reason)
    image_size: int
    seconds: float
    identities: dict[str, list[str]] = field(default_factory=dict)  # split -> identities

    @property
    def num_train(self) -> int:
        return sum(v.split == "train" for v in self.videos)


def find_videos(paths: Iterable[Path]) -> list[Path]:
    """Expand folders (recursively) into the video files they hold, sorted; files pass through."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file()))
        else:
            out.append(p)
    return out


def default_identity(video: Path) -> str:
    """One identity per video file unless told otherwise: '<parent folder>/<stem>'."""
    return f"{video.parent.name}/{video.stem}"


def prepare_dataset(
    videos: list[Path],
    out_dir: Path,
    *,
    image_size: int,
    frames_per_video: int = 32,
    crop_scale: float | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    min_frames: int = 8,
    progress: Progress | None = None,
    tracker: Tracker | None = None,
    identity_fn: Callable[[Path], str] = default_identity,
) -> PrepareReport:
    """Turn talking-head videos into a training set in `out_dir` (see the module docstring).

    Videos that cannot be read, have no face, or fewer than `min_frames` frames with a face are
    skipped and listed in the report (and the manifest). `crop_scale` defaults to the render
    stage's (`RenderConfig().crop_scale`). Identities are split into train/val by `seed`:
    `val_fraction` of them (at least one when there are two or more) go to validation.
    """
    from talkanim.config import RenderConfig

    start = time.perf_counter()
    crop_scale = RenderConfig().crop_scale if crop_scale is None else float(crop_scale)
    tracker = tracker or default_tracker()
    out_dir = Path(out_dir)
    shard_dir = out_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    videos = find_videos(videos)

    kept: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    names: set[str] = set()
    for n, video in enumerate(videos):
        if progress:
            progress(n, len(videos), f"preparing {video.name}")
        try:
            result = _prepare_video(video, tracker, image_size, frames_per_video, crop_scale, min_frames)
        except _Skip as why:
            skipped.append((str(video), str(why)))
            continue
        name = _unique(f"{video.parent.name}/{video.stem}", names)
        shard_rel = f"shards/{len(kept):05d}.safetensors"
        with atomic_output(out_dir / shard_rel) as tmp:
            save_file(result["tensors"], str(tmp), metadata={"video": str(video), "name": name})
        kept.append(dict(name=name, source=str(video), identity=identity_fn(video), shard=shard_rel,
                         num_frames=int(result["tensors"]["images"].shape[0]),
                         source_frames=result["source_frames"], valid_frames=result["valid_frames"],
                         fps=result["fps"], sha256=_sha256(out_dir / shard_rel), span=result["span"]))
    if progress:
        progress(len(videos), len(videos), "writing manifest")

    # Stale shards from an earlier run into the same folder would confuse nobody (the manifest
    # names its shards) but waste space.
    wanted = {e["shard"] for e in kept}
    for old in shard_dir.glob("*.safetensors"):
        if f"shards/{old.name}" not in wanted:
            old.unlink()

    split = split_identities(sorted({e["identity"] for e in kept}), val_fraction, seed)
    entries: list[VideoEntry] = []
    train_index = 0
    for i, e in enumerate(kept):
        s = split[e["identity"]]
        entries.append(VideoEntry(index=i, split=s, train_index=train_index if s == "train" else None, **e))
        train_index += s == "train"
    identities = {s: sorted({e.identity for e in entries if e.split == s}) for s in ("train", "val")}
    manifest = {
        "version": MANIFEST_VERSION,
        "image_size": image_size,
        "crop_scale": crop_scale,
        "frames_per_video": frames_per_video,
        "seed": seed,
        "val_fraction": val_fraction,
        "videos": [asdict(e) for e in entries],
        "identities": identities,
        "skipped": [{"video": v, "reason": r} for v, r in skipped],
    }
    # The manifest is written last and atomically: a folder with a manifest is complete.
    with atomic_output(out_dir / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return PrepareReport(out_dir=out_dir, manifest=out_dir / "manifest.json", videos=entries, skipped=skipped,
                         image_size=image_size, seconds=time.perf_counter() - start, identities=identities)


def split_identities(identities: Sequence[Hashable], val_fraction: float, seed: int) -> dict[Hashable, str]:
    """identity -> "train" | "val": a seeded shuffle, `val_fraction` of them to validation.

    At least one identity stays in train; at least one goes to validation when there are two or
    more identities and `val_fraction` > 0.
    """
    order = list(identities)
    np.random.default_rng(seed).shuffle(order)
    n_val = int(round(val_fraction * len(order)))
    if val_fraction > 0 and len(order) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, len(order) - 1) if order else 0
    return {ident: ("val" if k < n_val else "train") for k, ident in enumerate(order)}


def load_manifest(dataset: Path) -> dict[str, Any]:
    """The manifest of a prepared dataset (raises FileNotFoundError with a clear message)."""
    path = Path(dataset) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"not a prepared dataset (no manifest.json): {dataset}")
    return json.loads(path.read_text())


def load_shard(dataset: Path, entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of one video's shard (safetensors only: no pickle is ever loaded)."""
    return load_file(str(Path(dataset) / entry["shard"]))


# ---------------------------------------------------------------------------------------------
class _Skip(Exception):
    """A video that cannot contribute; the message is the reason in the report."""


def _prepare_video(video: Path, tracker: Tracker, size: int, frames_per_video: int, crop_scale: float,
                   min_frames: int) -> dict[str, Any]:
    if not video.is_file():
        raise _Skip("file not found")
    try:
        track = tracker(video)
    except NoFaceError:
        raise _Skip("no face found") from None
    except Exception as exc:  # noqa: BLE001 - any reader/detector failure skips this video only
        raise _Skip(f"cannot track landmarks: {exc.__class__.__name__}: {exc}") from None
    valid = np.flatnonzero(np.asarray(track.valid, bool))
    if len(valid) == 0:
        raise _Skip("no face found")
    spans = track.camera_shots()
    span = max(spans, key=len)
    valid = valid[(valid >= span.start) & (valid < span.stop)]
    if len(valid) < min_frames:
        where = " in its longest continuous shot" if len(spans) > 1 else ""
        raise _Skip(f"too few frames with a face{where} ({len(valid)} < {min_frames})")
    # Evenly over the frames with a face: consecutive frames are near-duplicates.
    pick = np.unique(np.round(np.linspace(0, len(valid) - 1, min(frames_per_video, len(valid)))).astype(int))
    wanted = valid[pick]
    wanted_set = {int(i): k for k, i in enumerate(wanted)}

    images = np.zeros((len(wanted), 3, size, size), np.uint8)
    points = np.zeros((len(wanted), 68, 2), np.float32)
    pupils = np.zeros((len(wanted), 2, 2), np.float32)
    found = 0
    for i, frame in enumerate(iter_frames(video)):
        k = wanted_set.get(i)
        if k is None:
            continue
        box = face_crop_box(track.points[i], crop_scale)
        images[k] = crop_image(frame, box, size).transpose(2, 0, 1)
        points[k] = box.to_crop(track.points[i], size)
        pupils[k] = box.to_crop(track.pupils[i], size)
        found += 1
        if found == len(wanted):
            break
    if found < len(wanted):
        raise _Skip(f"video ended early: decoded {found} of {len(wanted)} sampled frames")
    return {
        "tensors": {"images": torch.from_numpy(images), "points": torch.from_numpy(points),
                    "pupils": torch.from_numpy(pupils), "frame_index": torch.from_numpy(wanted.astype(np.int64))},
        "source_frames": int(track.num_frames), "valid_frames": int(len(valid)), "fps": float(track.fps),
        "span": (span.start, span.stop) if len(spans) > 1 else None,
    }


def default_tracker(backend: str = "auto") -> Tracker:
    """The landmark stage's tracker (offline backend by default), raw landmarks (no smoothing:
    smoothing lags, and each crop should sit on its own frame's face)."""

    def track(video: Path) -> LandmarkTrack:
        from talkanim.config import TrackConfig
        from talkanim.landmarks import make_detector, track_frames

        info = probe_video(video)
        detector = make_detector(backend)
        cuts: list[int] = []
        return track_frames(watch_cuts(iter_frames(video, info=info), cuts), detector, fps=info.fps,
                            size=(info.width, info.height), config=TrackConfig(backend=backend, smooth=False),
                            cuts=cuts)

    return track


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}-{k}"
    taken.add(out)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

