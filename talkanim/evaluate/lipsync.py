"""Lip-sync protocol: given a clip's own audio, does the predicted mouth move like the mouth
tracked in its video? (DESIGN.md, "Speech"; issue 17.)

Both mouths live in the speech stage's template frame: the tracked one with head pose removed
and offset from the clip's own rest shape, the predicted one as the model gives it, so the
person's face shape does not count, only motion. Per clip, over frames where a face was found:

- `r`: Pearson correlation of mouth opening (inner-lip gap / eye distance), predicted vs real.
- `lag`: the shift (frames, -MAX_LAG..MAX_LAG) where their cross-correlation peaks; positive:
  the prediction comes late.
- `distance`: mean distance of the mouth-and-jaw landmarks, in eye distances (face size).
- `closure`: of the frames where the real lips close mid-speech (bilabials: opening within
  CLOSED of rest, with voice in the 0.2 s before and after), the share where the predicted lips
  are closed too (within one frame).
- `gain`: range of predicted opening (5th-95th percentile) over the real range.

A method "beats" another only head to head: per-clip differences, and on how many clips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkanim.landmarks import mouth_opening

MAX_LAG = 5  # frames
CLOSED = 0.025  # opening above rest, in eye distances, under which lips count as closed
SPEECH_AROUND_S = 0.2
METRICS = ("r", "lag", "distance", "closure", "gain")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def best_lag(pred: np.ndarray, real: np.ndarray, max_lag: int = MAX_LAG) -> int:
    """The shift k maximizing corr(pred[t + k], real[t]): positive when the prediction is late."""
    scores = []
    for k in range(-max_lag, max_lag + 1):
        a, b = (pred[k:], real[: len(real) - k]) if k >= 0 else (pred[:k], real[-k:])
        r = pearson(a, b)
        scores.append(-np.inf if np.isnan(r) else r)
    return int(np.argmax(scores)) - max_lag


def closures_in_speech(real_open: np.ndarray, rest_open: float, voice: np.ndarray, fps: float) -> np.ndarray:
    """Frames where the real lips are closed while the person is speaking around them."""
    closed = real_open - rest_open < CLOSED
    w = max(1, int(round(SPEECH_AROUND_S * fps)))
    speaking = voice > 0.5
    before = np.array([speaking[max(0, i - w):i].any() for i in range(len(voice))])
    after = np.array([speaking[i + 1:i + 1 + w].any() for i in range(len(voice))])
    return closed & before & after


def score_clip(pred_faces: np.ndarray, real_faces: np.ndarray, rest_open: float, voice: np.ndarray,
               valid: np.ndarray, fps: float, mouth_points: np.ndarray) -> dict:
    """The protocol's numbers for one clip (module docstring). Faces are (N, 68, 2) in the
    template frame; `rest_open` is the opening of the template's own mouth."""
    valid = np.asarray(valid, bool)
    pred_open = np.asarray(mouth_opening(pred_faces))
    real_open = np.asarray(mouth_opening(real_faces))
    iod = float(np.linalg.norm(real_faces[0, 36:42].mean(0) - real_faces[0, 42:48].mean(0)))
    p, q = pred_open[valid], real_open[valid]
    dist = np.linalg.norm(pred_faces[:, mouth_points] - real_faces[:, mouth_points], axis=-1).mean(axis=1) / iod
    bilabial = closures_in_speech(real_open, rest_open, voice, fps) & valid
    pred_closed = pred_open - rest_open < CLOSED
    near = pred_closed | np.r_[pred_closed[1:], False] | np.r_[False, pred_closed[:-1]]
    real_range = np.percentile(q, 95) - np.percentile(q, 5)
    return {
        "r": pearson(p, q),
        "lag": best_lag(p, q),
        "distance": float(dist[valid].mean()),
        "closure": float(near[bilabial].mean()) if bilabial.any() else float("nan"),
        "closure_frames": int(bilabial.sum()),
        "gain": float((np.percentile(p, 95) - np.percentile(p, 5)) / real_range) if real_range > 1e-6 else float("nan"),
        "frames": int(valid.sum()),
    }


def clip_prediction(model, which: str, clip) -> tuple[np.ndarray, np.ndarray]:
    """(predicted template faces (N, 68, 2), voice (N,)) for a clip's own audio, as `speak`
    computes them (features normalized by the clip's statistics, mouth at rest in pauses)."""
    from talkanim.speech.clips import at_frames, frame_times
    from talkanim.speech.features import normalize
    from talkanim.speech.stream import voice_activity

    features = normalize(clip.log_mel, clip.level, clip.stats)
    predict = model.predictor(which)
    rest = model.basis.rest_coefs()
    voice100 = voice_activity(clip.level, clip.stats)
    coefs = rest + (predict(features) - rest) * voice100[:, None]
    at = frame_times(clip.num_frames, clip.fps)
    coefs, voice = at_frames(coefs, at), at_frames(voice100, at)
    deltas = model.basis.deltas(coefs) - model.basis.deltas(rest[None])
    faces = np.repeat(model.basis.template[None], clip.num_frames, axis=0)
    from talkanim.speech.face import MOUTH_POINTS

    faces[:, MOUTH_POINTS] += deltas
    return faces, voice


def real_faces(model, clip) -> np.ndarray:
    """The clip's tracked mouth in the template frame: template + (tracked - clip's rest)."""
    from talkanim.speech.clips import mouth_targets, smooth3
    from talkanim.speech.face import MOUTH_POINTS

    deltas, _ = mouth_targets(clip.points, clip.valid, model.basis.template)
    faces = np.repeat(model.basis.template[None], clip.num_frames, axis=0)
    faces[:, MOUTH_POINTS] += smooth3(deltas)
    return faces


def score_methods(model, clip, methods: tuple[str, ...] = ("learned", "loudness")) -> dict:
    """{method: scores} for one clip."""
    from talkanim.speech.face import MOUTH_POINTS

    real = real_faces(model, clip)
    rest_open = float(mouth_opening(model.basis.template))
    out = {}
    for name in methods:
        if name == "learned" and model.net is None:
            continue
        pred, voice = clip_prediction(model, name, clip)
        out[name] = score_clip(pred, real, rest_open, voice, clip.valid, clip.fps, MOUTH_POINTS)
    return out


def summarize(per_clip: list[dict], methods: tuple[str, ...]) -> dict:
    """Mean of each metric over clips (|lag| for the lag), and the head-to-head of the first
    method against the second: mean per-clip difference and clips won."""
    out: dict = {}
    for name in methods:
        rows = [c["scores"][name] for c in per_clip if name in c.get("scores", {})]
        if not rows:
            continue
        row = {"clips": len(rows)}
        for key in METRICS:
            vals = np.array([abs(r[key]) if key == "lag" else r[key] for r in rows], np.float64)
            vals = vals[np.isfinite(vals)]
            row[key] = float(vals.mean()) if len(vals) else None
        row["lag_within_1"] = float(np.mean([abs(r["lag"]) <= 1 for r in rows]))
        out[name] = row
    if len(methods) == 2 and all(m in out for m in methods):
        a, b = methods
        pairs = [(c["scores"][a], c["scores"][b]) for c in per_clip if a in c.get("scores", {})]
        versus = {}
        for key, higher in (("r", True), ("distance", False), ("closure", True)):
            diffs = [x[key] - y[key] for x, y in pairs if np.isfinite(x[key]) and np.isfinite(y[key])]
            if diffs:
                versus[key] = {"delta": float(np.mean(diffs)), "better_clips": int(sum(d > 0 if higher else d < 0 for d in diffs)),
                               "clips": len(diffs)}
        out["versus"] = {"method": a, "baseline": b, **versus}
    return out


@dataclass
class LipsyncReport:
    report_md: Path
    results_json: Path
    results: dict
    seconds: float


Progress = Callable[[str, int, "int | None"], None]


def evaluate_lipsync(videos: list[Path], out_dir: Path, *, weights: Path | None = None, backend: str | None = None,
                     cache_dir: Path | None = None, progress: Progress | None = None,
                     log: Callable[[str], None] | None = None) -> LipsyncReport:
    """Score the speech -> mouth models (learned, loudness baseline) on clips' own audio; write
    report.md and results.json in `out_dir`. A clip that cannot be used is listed and skipped.
    `backend`: the landmarks that track the reference mouths; None: those the weights' targets
    were tracked with (a mesh and dlib place the inner lips differently)."""
    from talkanim.errors import InputError
    from talkanim.evaluate import report as R
    from talkanim.speech.clips import cached_tracker, load_clip
    from talkanim.speech.mouth import speech_model

    started = time.perf_counter()
    model = speech_model(weights)
    backend = backend or model.info.get("backend") or "dlib"  # weights from before it was recorded: dlib
    tracker = cached_tracker(backend, cache_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = ("learned", "loudness") if model.net is not None else ("loudness",)
    per_clip = []
    for n, path in enumerate(videos):
        entry: dict = {"clip": str(path)}
        try:
            clip = load_clip(Path(path), tracker)
            entry["scores"] = score_methods(model, clip, methods)
            entry["fps"] = clip.fps
        except Exception as error:  # one bad clip never stops the others
            entry["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
            if log:
                log(f"{Path(path).name}: skipped: {entry['error']}")
        per_clip.append(entry)
        if progress:
            progress("lipsync", n + 1, len(videos))
    if not any("scores" in c for c in per_clip):
        raise InputError("no clip could be evaluated: " + "; ".join(c.get("error", "") for c in per_clip))
    results = {"config": {"weights": str(weights) if weights else "shipped", "backend": backend,
                          "max_lag": MAX_LAG, "closed": CLOSED, "default": model.default},
               "summary": summarize(per_clip, methods), "clips": per_clip,
               "timing": {"seconds": round(time.perf_counter() - started, 2)}}
    rep = LipsyncReport(out_dir / "report.md", out_dir / "results.json", results, results["timing"]["seconds"])
    R.write_json(rep.results_json, results)
    R.write_text(rep.report_md, markdown(results))
    return rep


def markdown(results: dict) -> str:
    """report.md of the lip-sync protocol."""
    def fmt(v, f="{:.3f}"):
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f.format(v)

    cfg, summary = results["config"], results["summary"]
    lines = ["# talkanim evaluate --lipsync", "",
             f"Clips: {len(results['clips'])}; landmarks: {cfg['backend']}; speech weights: {cfg['weights']} "
             f"(default mouth: {cfg['default']}); {results['timing']['seconds']:.0f} s.", "",
             "Each clip's own audio drives the speech -> mouth model; its video's tracked mouth (head pose removed, "
             "offset from the clip's own rest shape) is the reference. r: correlation of mouth opening; |lag|: "
             f"frames where cross-correlation peaks (within ±{cfg['max_lag']}); distance: mouth-and-jaw landmarks, "
             "in eye distances; closure: share of real mid-speech lip closures (bilabials) the prediction closes "
             "too (±1 frame); gain: predicted opening range / real.", "",
             "| method | r ↑ | |lag| frames ↓ | lag within ±1 | distance ↓ | closure ↑ | gain (→1) | clips |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in summary.items():
        if name == "versus":
            continue
        lines.append(f"| {name} | {fmt(row['r'])} | {fmt(row['lag'], '{:.2f}')} | {fmt(row['lag_within_1'], '{:.2f}')} | "
                     f"{fmt(row['distance'], '{:.4f}')} | {fmt(row['closure'])} | {fmt(row['gain'], '{:.2f}')} | {row['clips']} |")
    versus = summary.get("versus")
    if versus:
        lines += ["", f"## {versus['method']} against {versus['baseline']}", "",
                  "Mean per-clip difference (method − baseline) and clips where the method is better:", ""]
        for key in ("r", "distance", "closure"):
            if key in versus:
                v = versus[key]
                lines.append(f"- {key}: {v['delta']:+.3f} (better on {v['better_clips']} of {v['clips']} clips)")
    lines += ["", "## Per clip", "", "| clip | method | r | lag | distance | closure (frames) | gain |", "|---|---|---|---|---|---|---|"]
    for c in results["clips"]:
        if "error" in c:
            lines.append(f"| {Path(c['clip']).name} | skipped: {c['error']} | | | | | |")
            continue
        for name, s in c["scores"].items():
            lines.append(f"| {Path(c['clip']).name} | {name} | {fmt(s['r'])} | {s['lag']:+d} | {fmt(s['distance'], '{:.4f}')} | "
                         f"{fmt(s['closure'])} ({s['closure_frames']}) | {fmt(s['gain'], '{:.2f}')} |")
    return "\n".join(lines) + "\n"
