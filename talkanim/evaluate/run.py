"""`evaluate(...)`: the whole protocol over some clips and portraits, written to a folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from talkanim.config import MotionConfig
from talkanim.errors import InputError, OutputError
from talkanim.evaluate import report as R
from talkanim.evaluate.identity import get_analyzer
from talkanim.devices import resolve_device
from talkanim.evaluate.protocol import (CROP_SCALE, CROP_SIZE, CROSS_METRICS, SELF_METRICS, _error_line,
                                        build_methods, cross_reenact, load_clip, plan_clip,
                                        self_reenact)

Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]


@dataclass
class EvaluationReport:
    """What `evaluate` wrote and measured. `results` is what results.json holds."""

    out_dir: Path
    report_md: Path
    results_json: Path
    chart_png: Path
    grid_png: Path
    results: dict = field(repr=False)
    seconds: float = 0.0

    def summary(self, t: int, method: str) -> dict | None:
        """Mean metrics over clips for one T and method (None when not run)."""
        return self.results["summary"].get(str(t), {}).get(method)

    @property
    def failed_clips(self) -> list[str]:
        return [c["clip"] for c in self.results["clips"] if c.get("error")]


def evaluate(
    videos: list[Path],
    out_dir: Path,
    *,
    shots: list[int] = [1, 8, 32],  # noqa: B006 - never mutated
    methods: list[str] = ["copy", "warp", "paper", "hybrid"],  # noqa: B006
    max_frames: int | None = None,
    every: int = 1,
    portraits: list[Path] = [],  # noqa: B006
    device: str = "auto",
    progress: Progress | None = None,
    log: Log | None = None,
    csim_frames: int = 8,
    weights: dict[str, Path] | None = None,
    finetune_steps: int | None = 0,
    grid_rows: int = 4,
    shot_blend: int = MotionConfig.shot_blend,
) -> EvaluationReport:
    """Run the quality protocol (DESIGN.md) and write report.md, results.json, chart.png, grid.png.

    videos: same-person clips for self-reenactment (people not in training); each is also a
    driver for every portrait (cross-reenactment). shots: the T values. methods: registered
    method names (copy, warp, paper, hybrid, ...); a method that cannot run (e.g. no weights)
    is reported as "not available: <reason>", never fatal. max_frames / every: subsample the
    driver part of each clip. csim_frames: driver frames per clip where CSIM is measured (dlib
    descriptors cost ~75 ms a face). weights: {"paper": path, "hybrid": path} overriding the
    shipped weights; finetune_steps: few-shot fine-tuning steps for the neural methods (0:
    feed-forward, None: the library default, ~1 min per shot set on CPU). shot_blend: how many
    of the nearest shots each driver frame is rendered from and blended (as `animate` does).
    progress(stage, done, total) with stage "track", "self" or "cross"; log(line) for messages.

    A clip that cannot be used (unreadable, too short, no face) is listed with its error and
    skipped; InputError is raised only when no clip could be evaluated.
    """
    started = time.perf_counter()
    shots = sorted({int(t) for t in shots})
    if not shots or shots[0] < 1:
        raise InputError(f"--shots must be positive integers, got {shots}")
    if not videos:
        raise InputError("evaluate needs at least one video")
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the report folder {out_dir}: {err.strerror or err}") from None
    dev = str(resolve_device(device))
    method_objs = build_methods(list(methods), weights=weights or {}, finetune_steps=finetune_steps)
    method_info = {}
    for name, m in method_objs.items():
        reason = m.unavailable_reason()
        method_info[name] = {"available": reason is None, "reason": reason}
        if reason and log:
            log(f"{name}: not available: {reason}")

    from talkanim.io import camera_shots, probe_video
    from talkanim.landmarks import make_detector
    from talkanim.landmarks.matte import PersonMatter

    detector = make_detector("auto", log=log)  # the face mesh: it sees blinks
    analyzer = get_analyzer()
    matter = PersonMatter()  # loaded once: every portrait's (and first shot's) person matte
    clips_out, self_results, loaded = [], [], []
    for path in videos:
        path = Path(path)
        entry: dict = {"clip": str(path)}
        try:
            info = probe_video(path)
            spans = camera_shots(path, info=info)
            span, cuts = max(spans, key=len), [r.start for r in spans[1:]]
            if cuts and log:
                log(f"{path.name}: {len(cuts)} camera cut(s); scored on its longest "
                    f"continuous shot, frames {span.start}-{span.stop - 1}")
            plan = plan_clip(span, shots, every=every, max_frames=max_frames)
            keep = set(plan.driver) | {i for idx in plan.shots.values() for i in idx}
            clip = load_clip(path, keep, detector, last=max(keep), progress=progress,
                             cuts=tuple(cuts))
            missing = sorted(keep - set(clip.frames))
            if missing:  # the container promised more frames than it holds
                raise InputError(f"{path.name}: frames {missing[0]}.. could not be decoded")
            res = self_reenact(clip, plan, method_objs, device=dev, csim_frames=csim_frames,
                               grid_rows=grid_rows, shot_blend=shot_blend, analyzer=analyzer,
                               matter=matter, progress=progress, log=log)
        except Exception as err:  # one bad clip never stops the others
            entry["error"] = _error_line(err)
            if log:
                log(f"{path.name}: skipped: {entry['error']}")
            clips_out.append(entry)
            continue
        entry.update({"frames": info.num_frames, "fps": info.fps, "size": [info.width, info.height],
                      "cuts": cuts, "span": [span.start, span.stop],
                      "shot_frames": {str(t): idx for t, idx in plan.shots.items()},
                      "driver_frames": plan.driver, "grid_frames": res.grid_frames,
                      "tracker_missing_frames": int((~clip.track.valid[plan.driver]).sum()),
                      "seconds": round(res.seconds, 2),
                      "results": {str(t): per for t, per in res.results.items()}})
        clips_out.append(entry)
        self_results.append(res)
        loaded.append((clip, plan))
    if not self_results:
        raise InputError("no clip could be evaluated: " + "; ".join(c["error"] for c in clips_out))

    # cross-reenactment: every portrait driven by every clip's driver frames
    cross_out = []
    total = len(portraits) * len(loaded)
    for p in portraits:
        for clip, plan in loaded:
            try:
                cr = cross_reenact(Path(p), clip, plan.driver, method_objs, detector, device=dev,
                                   csim_frames=csim_frames, analyzer=analyzer, matter=matter)
                cross_out.append({"portrait": str(p), "clip": str(clip.path), "results": cr.results})
            except Exception as err:
                cross_out.append({"portrait": str(p), "clip": str(clip.path), "error": _error_line(err)})
                if log:
                    log(f"{Path(p).name} x {clip.path.name}: skipped: {_error_line(err)}")
            if progress:
                progress("cross", len(cross_out), total)

    results = {
        "config": {"shots": shots, "methods": list(methods), "max_frames": max_frames, "every": every,
                   "csim_frames": csim_frames, "crop_size": CROP_SIZE, "crop_scale": CROP_SCALE,
                   "device": dev, "finetune_steps": finetune_steps, "shot_blend": shot_blend,
                   "portraits": [str(p) for p in portraits]},
        "methods": method_info,
        "summary": _summarize(clips_out, shots, list(methods)),
        "versus_baseline": versus_baseline(clips_out, shots, list(methods)),
        "clips": clips_out,
        "cross": cross_out,
        "cross_summary": _summarize_cross(cross_out, list(methods)),
        "paper_reported": {str(t): v for t, v in R.PAPER_REPORTED.items()},
        "timing": {"seconds": round(time.perf_counter() - started, 2)},
    }
    rep = EvaluationReport(out_dir, out_dir / "report.md", out_dir / "results.json", out_dir / "chart.png",
                           out_dir / "grid.png", results)
    # the grid shows the first evaluated clip at the smallest T (the one-portrait case)
    first = self_results[0]
    t0 = shots[0]
    order = ["source", "real"] + list(methods)
    unavailable = {n: i["reason"] for n, i in method_info.items() if not i["available"]}
    R.write_png(rep.grid_png, R.grid_image(first.grid.get(t0, {}), order, unavailable=unavailable))
    R.write_chart(rep.chart_png, results)
    results["timing"]["seconds"] = round(time.perf_counter() - started, 2)
    rep.seconds = results["timing"]["seconds"]
    R.write_json(rep.results_json, results)
    R.write_text(rep.report_md, R.markdown_report(results))
    return rep


def _summarize(clips: list[dict], shots: list[int], methods: list[str]) -> dict:
    """Mean over clips of each per-clip mean, per T and method."""
    out: dict = {}
    for t in shots:
        out[str(t)] = {}
        for name in methods:
            cells = [c["results"].get(str(t), {}).get(name, {}) for c in clips if not c.get("error")]
            rows = [r for r in cells if r.get("available") and not r.get("error")]
            if not rows:
                errors = [r["error"] for r in cells if r.get("error")]
                out[str(t)][name] = {"available": bool(errors), "error": errors[0]} if errors else {"available": False}
                continue
            row: dict = {"available": True, "clips": len(rows)}
            for key in SELF_METRICS:
                vals = [r[key] for r in rows if r.get(key) is not None]
                row[key] = float(np.mean(vals)) if vals else None
            out[str(t)][name] = row
    return out


# Metrics compared head to head, and whether higher is better.
# The mouth and eye regions are where a network has something to add to the warp (teeth, lids).
VERSUS_METRICS = {"ssim": True, "l1": False, "csim": True, "akd": False,
                  "ssim_mouth": True, "l1_mouth": False, "ssim_eyes": True, "l1_eyes": False}


def versus_baseline(clips: list[dict], shots: list[int], methods: list[str], baseline: str = "warp") -> dict:
    """Each method against `baseline` on the same clips, frames and shots, per T and metric:
    the mean over clips of (method - baseline) and on how many clips the method was better.

    Differences between methods are often far smaller than differences between clips (a hard
    clip moves every mean), so a paired comparison is what says whether one method beats
    another. Empty when the baseline was not run.
    """
    if baseline not in methods:
        return {}
    out: dict = {"baseline": baseline, "shots": {}}
    for t in shots:
        per_method: dict = {}
        for name in methods:
            if name == baseline:
                continue
            pairs = [(c["results"][str(t)].get(name, {}), c["results"][str(t)][baseline]) for c in clips
                     if not c.get("error") and baseline in c["results"].get(str(t), {})]
            row: dict = {}
            for key, higher_is_better in VERSUS_METRICS.items():
                diffs = [m[key] - b[key] for m, b in pairs
                         if m.get("available") and b.get("available") and m.get(key) is not None
                         and b.get(key) is not None]
                if diffs:
                    better = sum(d > 0 if higher_is_better else d < 0 for d in diffs)
                    row[key] = {"delta": float(np.mean(diffs)), "better_clips": int(better), "clips": len(diffs)}
            if row:
                per_method[name] = row
        out["shots"][str(t)] = per_method
    return out


def _summarize_cross(cross: list[dict], methods: list[str]) -> dict:
    out: dict = {}
    for name in methods:
        cells = [c["results"].get(name, {}) for c in cross if not c.get("error")]
        rows = [r for r in cells if r.get("available") and not r.get("error")]
        if not rows:
            errors = [r["error"] for r in cells if r.get("error")]
            out[name] = {"available": bool(errors), "error": errors[0]} if errors else {"available": False}
            continue
        row: dict = {"available": True, "pairs": len(rows)}
        for key in CROSS_METRICS:
            vals = [r[key] for r in rows if r.get(key) is not None]
            row[key] = float(np.mean(vals)) if vals else None
        out[name] = row
    return out
