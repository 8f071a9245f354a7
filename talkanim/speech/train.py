"""`talkanim train-speech`: fit the speech -> mouth models on a prepared dataset (dataset.py).

1. Template: the Procrustes mean face of the training people (`face.mean_shape`).
2. Targets: each frame's mouth-and-jaw offsets from its clip's rest shape, head pose removed,
   smoothed over 3 frames (no lag), compressed by PCA (`face.fit_basis`).
3. Baseline: the loudness envelope mapped linearly to the coefficients (least squares on the
   training frames; its smoothing and lead chosen the same way).
4. Network: `SpeechMouthNet` on random windows of training speech, loss = squared error of the
   coefficients at the video frames. Every `eval_every` steps it is scored on the validation
   people with the lip-sync protocol; the best check is kept.
5. Default: the learned model becomes the default only when, on the validation people, its
   mouth-opening correlation beats the baseline's on average and on most clips; otherwise the
   baseline stays the default and the run says so.

Writes RUN/speech.safetensors (template, basis, both predictors, the default) and
RUN/metrics.json (per-clip and mean lip-sync scores of both methods on val and test people).

`cross_validate` (`train-speech --folds K`) compares settings more surely than one validation
split can: each train or validation person is held out once, and the network is scored against
the baseline on all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from talkanim.config import SpeechTrainConfig
from talkanim.errors import InputError
from talkanim.evaluate.lipsync import score_methods, summarize
from talkanim.io import atomic_output
from talkanim.speech.clips import at_frames, frame_times, mouth_targets, smooth3
from talkanim.speech.dataset import load_speech_dataset
from talkanim.speech.face import fit_basis, mean_shape
from talkanim.speech.features import N_MELS, normalize
from talkanim.speech.mouth import LoudnessMouth, SpeechModel, SpeechMouthNet

Progress = Callable[[int, int, dict], None]


@dataclass
class SpeechTrainResult:
    weights: Path
    metrics: Path
    default: str
    summary: dict
    seconds: float


@dataclass
class _Clip:
    """A clip ready for training: normalized features (T, C) and target coefficients (N, K)."""

    name: str
    person: str
    split: str
    fps: float
    features: np.ndarray
    coefs: np.ndarray
    valid: np.ndarray
    raw: object  # the SpeechClip, for scoring


def fit_loudness(clips: list[_Clip], leads=range(-4, 9), smooth: int = 5) -> LoudnessMouth:
    """The baseline: least squares of the coefficients on [1, envelope], lead chosen the same way."""
    best = None
    for lead in leads:
        probe = LoudnessMouth(np.zeros((clips[0].coefs.shape[1], 2)), smooth=smooth, lead=lead)
        xs, ys = [], []
        for c in clips:
            env = _envelope_of(probe, c.features)
            at = at_frames(env, frame_times(len(c.coefs), c.fps))
            xs.append(np.stack([np.ones_like(at), at], 1)[c.valid])
            ys.append(c.coefs[c.valid])
        x, y = np.concatenate(xs), np.concatenate(ys)
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        err = float(((x @ w - y) ** 2).mean())
        if best is None or err < best[0]:
            best = (err, LoudnessMouth(w.T.astype(np.float64), smooth=smooth, lead=lead))
    return best[1]


def _envelope_of(mouth: LoudnessMouth, features: np.ndarray) -> np.ndarray:
    """The smoothed, shifted envelope that `mouth` maps (weights [0, 1] give it back)."""
    unit = LoudnessMouth(np.array([[0.0, 1.0]]), smooth=mouth.smooth, lead=mouth.lead)
    return unit(features)[:, 0]


def _windows(clips: list[_Clip], rng: np.random.Generator, batch: int, window: int):
    """A batch of random windows: features (B, W, C), and per example the target frames'
    positions in the window, coefficients and a mask."""
    lengths = np.array([len(c.features) for c in clips], np.float64)
    picks = rng.choice(len(clips), size=batch, p=lengths / lengths.sum())
    feats = np.zeros((batch, window, clips[0].features.shape[1]), np.float32)
    max_frames = int(window / 100.0 * max(c.fps for c in clips)) + 2
    pos = np.zeros((batch, max_frames), np.float32)
    target = np.zeros((batch, max_frames, clips[0].coefs.shape[1]), np.float32)
    mask = np.zeros((batch, max_frames), np.float32)
    for b, k in enumerate(picks):
        c = clips[k]
        start = int(rng.integers(0, max(1, len(c.features) - window + 1)))
        part = c.features[start:start + window]
        feats[b, : len(part)] = part
        at = frame_times(len(c.coefs), c.fps) - start
        inside = np.flatnonzero((at >= 0) & (at <= len(part) - 1) & c.valid)[:max_frames]
        pos[b, : len(inside)] = at[inside]
        target[b, : len(inside)] = c.coefs[inside]
        mask[b, : len(inside)] = 1.0
    return feats, pos, target, mask


def _colour(feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmentation: each window as if recorded through another channel (a random spectral
    tilt and per-band offsets of the standardized log-mel; pauses stay as they are)."""
    b = len(feats)
    tilt = rng.normal(0, 0.3, (b, 1, 1)) * np.linspace(-1, 1, N_MELS)[None, None]
    offset = rng.normal(0, 0.15, (b, 1, N_MELS))
    out = feats.copy()
    out[..., :N_MELS] += (tilt + offset).astype(np.float32)
    return out


def _noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """A background the speech is mixed with: coloured noise (room, street) or a music-like bed
    of harmonic tones with changing pitch and loudness."""
    if rng.random() < 0.5:
        spectrum = np.fft.rfft(rng.standard_normal(samples))
        freqs = np.maximum(np.fft.rfftfreq(samples, 1 / 16000), 20.0)
        return np.fft.irfft(spectrum / freqs ** rng.uniform(0.0, 1.0), samples).astype(np.float32)
    t = np.arange(samples) / 16000
    out = np.zeros(samples)
    for _ in range(int(rng.integers(2, 6))):
        f0 = 110 * 2 ** rng.uniform(0, 3)
        beat = rng.uniform(0.5, 3.0)
        env = 0.6 + 0.4 * np.sin(2 * np.pi * beat * t + rng.uniform(0, 6.3))
        for h in range(1, 6):
            out += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h
    return out.astype(np.float32)


def noisy_copy(log_mel: np.ndarray, level: np.ndarray, stats, rng: np.random.Generator) -> np.ndarray:
    """Normalized features of the clip as if recorded over a background at 5-30 dB below the
    speech (mixed in the power domain, which is how the spectra of independent sounds add),
    normalized with the mixture's own statistics, as `speak` would see it."""
    from talkanim.speech.features import StatsAccumulator, stream_features

    blocks = list(stream_features([_noise(len(level) * 160, rng)]))
    n_mel = np.concatenate([m for m, _ in blocks])[: len(level)]
    n_lvl = np.concatenate([lv for _, lv in blocks])[: len(level)]
    gain = stats.level_ref - rng.uniform(5.0, 30.0) - float(np.median(n_lvl))
    mix = lambda a, b: 10 * np.log10(10 ** (a / 10) + 10 ** ((b + gain) / 10))  # noqa: E731
    mel, lvl = mix(log_mel, n_mel).astype(np.float32), mix(level, n_lvl).astype(np.float32)
    acc = StatsAccumulator()
    acc.add(mel, lvl)
    return normalize(mel, lvl, acc.result())


def _sample(outputs: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of outputs (B, T, K) at fractional positions (B, F) -> (B, F, K)."""
    lo = pos.floor().long().clamp(0, outputs.shape[1] - 1)
    hi = (lo + 1).clamp(max=outputs.shape[1] - 1)
    w = (pos - lo.float()).unsqueeze(-1)
    take = lambda idx: torch.gather(outputs, 1, idx.unsqueeze(-1).expand(-1, -1, outputs.shape[2]))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def train_speech(dataset: Path, out_dir: Path, config: SpeechTrainConfig | None = None,
                 progress: Progress | None = None, log: Callable[[str], None] | None = None) -> SpeechTrainResult:
    """Fit template, basis, baseline and network on `dataset`'s train people (module docstring)."""
    config = config or SpeechTrainConfig()
    started = time.perf_counter()
    manifest, raw = load_speech_dataset(dataset)
    if not any(e["split"] == "train" for e in manifest["clips"]):
        raise InputError(f"{dataset}: no clip in the train split")
    fit = _fit(manifest["clips"], raw, config, progress, log)
    model = fit.model
    summary = {split: summarize(rows, ("learned", "loudness")) for split, rows in fit.scored.items()}
    model.default = choose_default(summary.get("val"))
    model.info = {"dataset": str(dataset), "best_step": fit.best_step, "people": manifest["people"],
                  "summary": summary, "backend": manifest.get("backend"), "config": asdict(config)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "speech.safetensors"
    model.save(weights)
    metrics = {"config": asdict(config), "dataset": str(dataset), "best_step": fit.best_step, "history": fit.history,
               "default": model.default, "people": manifest["people"], "summary": summary, "clips": fit.scored,
               "loudness": {"lead": model.loudness.lead, "smooth": model.loudness.smooth},
               "seconds": round(time.perf_counter() - started, 1)}
    with atomic_output(out_dir / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=1, default=float))
    return SpeechTrainResult(weights, out_dir / "metrics.json", model.default, summary, metrics["seconds"])


def cross_validate(dataset: Path, config: SpeechTrainConfig | None = None, folds: int = 4,
                   progress: Progress | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Person-level k-fold cross-validation over the dataset's train and validation people.

    Seven validation people are few (the checks of one run wander by 0.06 in mean-opening r on
    them), and two seeds of one setting differed by 0.02 even over 37 held-out clips, as much as
    most changes of setting did. Here every train or validation person is held out once:
    fold k trains on the others for `config.steps` (no early stopping: nothing is chosen on the
    held-out people) and scores each held-out clip, learned against loudness, with the lip-sync
    protocol. The test people stay out of it. Returns {"folds", "config", "people" (per fold, the
    people trained on and held out), "clips" (per held-out clip), "summary"}.
    """
    config = config or SpeechTrainConfig()
    manifest, raw = load_speech_dataset(dataset)
    kept = [(c, e) for c, e in zip(raw, manifest["clips"]) if e["split"] in ("train", "val")]
    clips = [c for c, _ in kept]
    people = sorted({e["person"] for _, e in kept})
    if not 2 <= folds <= len(people):
        raise InputError(f"--folds must be between 2 and the {len(people)} train and validation people, got {folds}")
    fold_of = {p: i % folds for i, p in enumerate(np.random.default_rng(config.seed).permutation(people))}
    one_check = replace(config, eval_every=config.steps + 1)  # the last step only
    rows, splits = [], []
    for k in range(folds):
        entries = [{**e, "split": "val" if fold_of[e["person"]] == k else "train"} for _, e in kept]
        fold = _fit(entries, clips, one_check, log=log)
        rows += [{**row, "fold": k} for row in fold.scored["val"]]
        splits.append({split: sorted({e["person"] for e in entries if e["split"] == split}) for split in ("train", "val")})
        if progress:
            progress(k + 1, folds, {})
    return {"folds": folds, "config": asdict(config), "people": splits, "clips": rows,
            "summary": summarize(rows, ("learned", "loudness"))}


@dataclass
class _Fit:
    model: SpeechModel
    best_step: int
    history: list[dict]
    scored: dict[str, list[dict]]  # split -> per-clip lip-sync scores (val and test clips)


def _fit(entries: list[dict], raw: list, config: SpeechTrainConfig, progress: Progress | None = None,
         log: Callable[[str], None] | None = None) -> _Fit:
    """Template, basis, baseline and network on the clips whose entry says "train", the best
    check on the "val" clips kept; every val and test clip scored."""
    train_raw = [c for c, e in zip(raw, entries) if e["split"] == "train"]
    template = mean_shape(np.concatenate([c.points[c.valid][::3] for c in train_raw]))
    deltas = {}
    for c, e in zip(raw, entries):
        d, _ = mouth_targets(c.points, c.valid, template)
        deltas[e["name"]] = smooth3(d)
    basis = fit_basis(template, np.concatenate([deltas[e["name"]][c.valid] for c, e in zip(raw, entries)
                                                if e["split"] == "train"]), config.coefs)
    clips = [_Clip(e["name"], e["person"], e["split"], c.fps, normalize(c.log_mel, c.level, c.stats),
                   basis.project(deltas[e["name"]]), c.valid, c) for c, e in zip(raw, entries)]
    train = [c for c in clips if c.split == "train"]
    val = [c for c in clips if c.split == "val"]
    loudness = fit_loudness(train)
    rng = np.random.default_rng(config.seed)
    for _ in range(config.noisy_copies):  # the same speech and mouths over backgrounds
        train += [replace(c, features=noisy_copy(c.raw.log_mel, c.raw.level, c.raw.stats, rng))
                  for c in clips if c.split == "train"]
    if log:
        log(f"template and {config.coefs}-component mouth basis from {len(train)} train clips; loudness baseline "
            f"lead {loudness.lead} feature frames")

    torch.manual_seed(config.seed)
    net = SpeechMouthNet(coefs=config.coefs, channels=config.channels, kernel=config.kernel,
                         dilations=tuple(config.dilations), dropout=config.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    window = int(config.window_s * 100)
    model = SpeechModel(basis, loudness, net)
    spread = np.concatenate([c.coefs[c.valid] for c in train]).std(axis=0) + 1e-6
    # equalized: every component's error in units of its own spread; else landmark distance
    # (the big components, jaw and lip opening, dominate)
    scale = torch.from_numpy(spread if config.equalize_coefs else np.full_like(spread, spread.mean()))
    best = (-np.inf, None, 0)
    history = []
    for step in range(1, config.steps + 1):
        net.train()
        feats, pos, target, mask = _windows(train, rng, config.batch_size, window)
        if config.augment:
            feats = _colour(feats, rng)
        out = _sample(net(torch.from_numpy(feats)), torch.from_numpy(pos))
        err = ((out - torch.from_numpy(target)) / scale) ** 2
        m = torch.from_numpy(mask)
        loss = (err.mean(-1) * m).sum() / m.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % config.eval_every == 0 or step == config.steps:
            score = _val_score(model, val) if val else -float(loss)
            history.append({"step": step, "loss": loss.item(), "val_r": score})
            if score > best[0]:
                best = (score, {k: v.clone() for k, v in net.state_dict().items()}, step)
            if progress:
                progress(step, config.steps, {"loss": loss.item(), "val_r": score})
    net.load_state_dict(best[1])
    net.eval()
    scored = {}
    for c in clips:
        if c.split in ("val", "test"):
            scored.setdefault(c.split, []).append({"clip": c.name, "person": c.person,
                                                   "scores": score_methods(model, c.raw)})
    return _Fit(model, best[2], history, scored)


def _val_score(model: SpeechModel, val: list[_Clip]) -> float:
    """Mean mouth-opening correlation of the learned model over the validation clips."""
    rs = [score_methods(model, c.raw, ("learned",))["learned"]["r"] for c in val]
    rs = [r for r in rs if np.isfinite(r)]
    return float(np.mean(rs)) if rs else -np.inf


def choose_default(val_summary: dict | None) -> str:
    """"learned" when it beats the loudness baseline head to head on the validation people
    (higher mean correlation, and better on more than half of the clips), else "loudness"."""
    versus = (val_summary or {}).get("versus", {}).get("r")
    if not versus:
        return "loudness"
    wins = versus["better_clips"] * 2 > versus["clips"]
    return "learned" if versus["delta"] > 0 and wins else "loudness"
