"""`talkanim prepare-speech`: talking clips -> a speech -> mouth training set, split by person.

Per clip: the landmarks of every frame (the landmark stage's tracker, any backend, cached),
the audio features at 100 Hz, and a face descriptor that groups clips of the same person.
Clips are skipped, with the reason in the manifest, when they have no audio, digital silence
only, no face, or a face that does not talk (its tracked mouth never opens past
`MIN_MOUTH_RANGE`: the audio is someone else's, or music).

Splits are by person, never by clip: `test` holds the people of clips whose licence may not
train shipped weights (evaluated only), `val` a seeded share of the others (for choosing
the checkpoint), `train` the rest.

Layout of DATASET:
    manifest.json        clips (name, source, person, split, licence, fps, frames), skipped
    clips.safetensors    per clip k: k.points (N,68,2) k.valid (N,) k.log_mel (T,40) k.level (T,)
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from talkanim.errors import InputError, TalkanimError
from talkanim.io import atomic_output
from talkanim.landmarks import mouth_opening
from talkanim.speech.clips import SpeechClip, cached_tracker, clip_audio, load_clip
from talkanim.speech.face import mean_shape, to_canonical
from talkanim.speech.features import StatsAccumulator

MANIFEST_VERSION = 1
TRAIN_LICENCES = ("MIT", "Apache-2.0", "CC-BY-4.0")
MIN_MOUTH_RANGE = 0.04  # 95th percentile of mouth opening / eye distance below this: not talking
SAME_PERSON = 0.35  # dlib descriptor distance under which two clips show the same person

Progress = Callable[[int, int, str], None]


@dataclass
class SpeechPrepareReport:
    out_dir: Path
    manifest: Path
    clips: list[dict]
    skipped: list[tuple[str, str]]
    seconds: float
    people: dict[str, list[str]] = field(default_factory=dict)  # split -> people


def read_licences(manifest_tsv: Path) -> dict[Path, str]:
    """{absolute path: licence} from a MANIFEST.tsv with `path` and `license` columns (paths
    relative to its folder)."""
    folder = Path(manifest_tsv).resolve().parent
    with open(manifest_tsv, newline="", encoding="utf-8") as f:
        return {(folder / row["path"]).resolve(): row.get("license", "").strip()
                for row in csv.DictReader(f, delimiter="\t") if row.get("path")}


def group_people(descriptors: list[np.ndarray | None], threshold: float = SAME_PERSON) -> list[int]:
    """Person index of each clip: clips whose face descriptors are within `threshold` are joined
    (single linkage); a clip without a descriptor is its own person."""
    n = len(descriptors)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = descriptors[i], descriptors[j]
            if a is not None and b is not None and float(np.linalg.norm(a - b)) < threshold:
                parent[root(j)] = root(i)
    roots = sorted({root(i) for i in range(n)})
    return [roots.index(root(i)) for i in range(n)]


def _descriptor(path: Path, clip: SpeechClip) -> np.ndarray | None:
    """Mean dlib face descriptor of four valid frames spread over the clip."""
    from talkanim.evaluate.identity import get_analyzer
    from talkanim.io import iter_frames

    analyzer = get_analyzer()
    valid = np.flatnonzero(clip.valid)
    if len(valid) == 0:
        return None
    wanted = set(valid[np.linspace(0, len(valid) - 1, 4).round().astype(int)].tolist())
    found = []
    frames = iter_frames(path)
    try:
        for i, frame in enumerate(frames):
            if i in wanted:
                found.append(analyzer.descriptor(frame, analyzer.box_from_points(clip.points[i])))
            if i >= max(wanted):
                break
    finally:
        frames.close()
    return np.mean(found, axis=0) if found else None


def _skip_reason(clip: SpeechClip, template: np.ndarray | None) -> str | None:
    if clip.stats.silent:
        return "the audio is digital silence"
    if clip.valid.sum() < 8:
        return "fewer than 8 frames with a face"
    reference = template if template is not None else mean_shape(clip.points[clip.valid][::5])
    opening = mouth_opening(to_canonical(clip.points[clip.valid], reference))
    top = float(np.percentile(opening, 95))
    if top < MIN_MOUTH_RANGE:
        return f"the face does not talk (mouth opening reaches {top:.3f} of the eye distance, < {MIN_MOUTH_RANGE})"
    return None


def prepare_speech_dataset(
    videos: Iterable[Path],
    out_dir: Path,
    *,
    backend: str = "dlib",
    cache_dir: Path | None = Path("runs/tracks"),
    licences: Path | None = None,
    train_licences: tuple[str, ...] = TRAIN_LICENCES,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: Progress | None = None,
) -> SpeechPrepareReport:
    """Prepare talking clips (files or folders) into `out_dir` (see the module docstring).

    `licences`: a MANIFEST.tsv naming each clip's licence; clips whose licence is not in
    `train_licences` (and every clip of their people) go to the test split. Without it every
    clip may train. `backend`: the landmark backend of the targets; tracks are cached under
    `cache_dir/backend/`.
    """
    from talkanim.train.prepare import default_identity, find_videos, split_identities

    started = time.perf_counter()
    paths = find_videos(videos)
    if not paths:
        raise InputError("no videos to prepare")
    licence_of = read_licences(licences) if licences else {}
    tracker = cached_tracker(backend, cache_dir)
    kept: list[tuple[Path, SpeechClip, np.ndarray | None]] = []
    skipped: list[tuple[str, str]] = []
    for n, path in enumerate(paths):
        if progress:
            progress(n, len(paths), path.name)
        try:
            audio = clip_audio(path)
            if audio[2].silent:
                skipped.append((str(path), "the audio is digital silence"))
                continue
            clip = load_clip(path, tracker, audio)
        except TalkanimError as error:
            skipped.append((str(path), str(error)))
            continue
        reason = _skip_reason(clip, None)
        if reason:
            skipped.append((str(path), reason))
            continue
        kept.append((path, clip, _descriptor(path, clip)))
    if progress:
        progress(len(paths), len(paths), "splitting")
    if not kept:
        raise InputError("no clip could be prepared: " + "; ".join(r for _, r in skipped))

    person_of = group_people([d for _, _, d in kept])
    names = [default_identity(p) for p, _, _ in kept]
    people = sorted(set(person_of))
    label = {k: names[person_of.index(k)] for k in people}  # a person is named after their first clip
    licence = [licence_of.get(p.resolve(), "") if licence_of else "" for p, _, _ in kept]
    test_people = {person_of[i] for i in range(len(kept)) if licence_of and licence[i] not in train_licences}
    pool = [k for k in people if k not in test_people]
    val_people = {k for k, part in split_identities(pool, val_fraction, seed).items() if part == "val"}

    def split(k: int) -> str:
        return "test" if k in test_people else "val" if k in val_people else "train"

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    entries = []
    for i, (path, clip, _) in enumerate(kept):
        tensors[f"{i}.points"] = torch.from_numpy(clip.points)
        tensors[f"{i}.valid"] = torch.from_numpy(clip.valid.astype(np.uint8))
        tensors[f"{i}.log_mel"] = torch.from_numpy(clip.log_mel)
        tensors[f"{i}.level"] = torch.from_numpy(clip.level)
        entries.append({"index": i, "name": names[i], "source": str(path), "person": label[person_of[i]],
                        "split": split(person_of[i]), "licence": licence[i], "fps": clip.fps,
                        "frames": clip.num_frames, "valid_frames": int(clip.valid.sum()),
                        "seconds": round(clip.stats.seconds, 3), "level_ref": clip.stats.level_ref})
    from safetensors.torch import save_file

    with atomic_output(out_dir / "clips.safetensors") as tmp:
        save_file(tensors, str(tmp))
    by_split = {s: sorted({e["person"] for e in entries if e["split"] == s}) for s in ("train", "val", "test")}
    manifest = {"version": MANIFEST_VERSION, "backend": backend, "seed": seed, "val_fraction": val_fraction,
                "train_licences": list(train_licences) if licence_of else None, "clips": entries,
                "people": by_split, "skipped": [{"video": v, "reason": r} for v, r in skipped]}
    with atomic_output(out_dir / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1))
    return SpeechPrepareReport(out_dir, out_dir / "manifest.json", entries, skipped,
                               time.perf_counter() - started, by_split)


def load_speech_dataset(dataset: Path) -> tuple[dict, list[SpeechClip]]:
    """(manifest, clips) of a prepared dataset; each clip's audio statistics are recomputed from
    its stored features (the same fixed-memory histograms `speak` uses)."""
    from safetensors.torch import load_file

    dataset = Path(dataset)
    path = dataset / "manifest.json"
    if not path.is_file():
        raise InputError(f"not a prepared speech dataset (no manifest.json): {dataset}")
    manifest = json.loads(path.read_text())
    tensors = load_file(str(dataset / "clips.safetensors"))
    clips = []
    for entry in manifest["clips"]:
        k = entry["index"]
        log_mel, level = tensors[f"{k}.log_mel"].numpy(), tensors[f"{k}.level"].numpy()
        acc = StatsAccumulator()
        acc.add(log_mel, level)
        acc.num_samples = int(round(entry["seconds"] * 16000))
        clips.append(SpeechClip(Path(entry["source"]), float(entry["fps"]), tensors[f"{k}.points"].numpy(),
                                tensors[f"{k}.valid"].numpy().astype(bool), log_mel, level, acc.result()))
    return manifest, clips
