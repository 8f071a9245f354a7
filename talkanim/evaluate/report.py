"""Writing the evaluation: report.md, results.json, chart.png and grid.png, each atomically.

Pure formatting over the `results` dict that `talkanim.evaluate.evaluate` builds (see its
docstring for the layout); nothing here runs a method.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from talkanim.io import atomic_output

# Zakharov et al. 2019, Table 1 (VoxCeleb1, fine-tuned), as summarized in PAPER_NOTES.md.
PAPER_REPORTED = {
    1: {"fid": 43.0, "ssim": 0.67, "csim": 0.15},
    8: {"fid": 38.0, "ssim": 0.71, "csim": 0.17},
    32: {"fid": 29.5, "ssim": 0.74, "csim": 0.19},
}

# column, header, format, direction
TABLE_COLUMNS = [
    ("ssim", "SSIM ↑", "{:.3f}"), ("l1", "L1 ↓", "{:.4f}"), ("psnr", "PSNR ↑", "{:.2f}"),
    ("csim", "CSIM ↑", "{:.3f}"), ("akd", "AKD px ↓", "{:.2f}"),
    ("ssim_mouth", "SSIM mouth ↑", "{:.3f}"), ("l1_mouth", "L1 mouth ↓", "{:.4f}"),
    ("ssim_eyes", "SSIM eyes ↑", "{:.3f}"), ("l1_eyes", "L1 eyes ↓", "{:.4f}"),
    ("ssim_frame", "SSIM frame ↑", "{:.3f}"), ("l1_frame", "L1 frame ↓", "{:.4f}"),
]
CROSS_COLUMNS = [("csim_source", "CSIM to source ↑", "{:.3f}"), ("mouth_gain", "mouth gain (1)", "{:.2f}"),
                 ("mouth_r", "mouth r ↑", "{:.3f}"), ("blink_recall", "blink recall ↑", "{:.2f}"),
                 ("eye_r", "eye r ↑", "{:.3f}"), ("hair_distortion", "hair distortion % ↓", "{:.2f}"),
                 ("hair_distortion_worst", "worst frame % ↓", "{:.2f}"),
                 ("background_drift", "background drift % ↓", "{:.2f}"),
                 ("target_mouth_gain", "target mouth gain", "{:.2f}"), ("target_mouth_r", "target mouth r", "{:.3f}"),
                 ("target_eye_r", "target eye r", "{:.3f}"), ("mouth_gain_dlib", "mouth gain, dlib", "{:.2f}"),
                 ("mouth_r_dlib", "mouth r, dlib", "{:.3f}")]


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` all-or-nothing."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_json(path: Path, data: dict) -> None:
    """Write `data` as indented JSON, all-or-nothing (NaN becomes null)."""
    write_text(path, json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n")


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def markdown_report(results: dict) -> str:
    """report.md: a table per T (method x metrics, mean over clips), cross-reenactment, paper's numbers."""
    cfg = results["config"]
    lines = ["# talkanim evaluate", ""]
    lines.append(f"Clips: {len(results['clips'])} ({', '.join(Path(c['clip']).name for c in results['clips'])}). "
                 f"Shots T = {', '.join(map(str, cfg['shots']))}; methods: {', '.join(cfg['methods'])}; "
                 f"driver: every {cfg['every']} frame(s), at most {cfg['max_frames'] or 'all'} per clip; "
                 f"device {cfg['device']}; {results['timing']['seconds']:.1f} s.")
    lines.append("")
    lines.append("Self-reenactment: T shots spread over the first third of each clip, driver = the rest of "
                 "the clip (same frames for every T; a clip with camera cuts is first cut to its longest "
                 "continuous shot). Each method renders the driver frame from the "
                 f"{cfg.get('shot_blend', 1)} shot(s) nearest in pose/expression, blended by nearness, "
                 "as `animate --shot` does (the first shot is the portrait and gives hair and background; "
                 "the others lend their face interior), given the frame's true landmarks (absolute motion). Scored on "
                 f"the {cfg['crop_size']} px face crop (box = {cfg['crop_scale']}× the REAL frame's landmark "
                 "box, same box for generated and real). L1 in [0,1] units; SSIM skimage (7×7, RGB); "
                 "CSIM = cosine of dlib's 128-d face descriptors, measured on "
                 f"{cfg['csim_frames']} evenly spread driver frames per clip (≈75 ms a face); AKD = mean "
                 "distance of dlib's 68 landmarks on generated vs real crop, px at 256. Mouth/eye columns: "
                 "L1/SSIM inside the lip hull / eye+brow hulls of the real landmarks (dilated).")
    lines.append("")
    for name, info in results["methods"].items():
        if not info["available"]:
            lines.append(f"- **{name}**: not available: {info['reason']}")
    if any(not i["available"] for i in results["methods"].values()):
        lines.append("")
    summary = results["summary"]
    for t in cfg["shots"]:
        lines.append(f"## T = {t}")
        lines.append("")
        lines.append("| method | " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " | clips |")
        lines.append("|---" * (len(TABLE_COLUMNS) + 2) + "|")
        for name in cfg["methods"]:
            row = summary.get(str(t), {}).get(name)
            if row is not None and row.get("error"):
                lines.append(f"| {name} | failed: {row['error']} |" + " |" * len(TABLE_COLUMNS))
                continue
            if row is None or not row.get("available", False):
                reason = results["methods"].get(name, {}).get("reason") or "no result"
                lines.append(f"| {name} | not available: {reason} |" + " |" * len(TABLE_COLUMNS))
                continue
            cells = [_fmt(row.get(k), f) for k, _, f in TABLE_COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('clips', 0)} |")
        paper = PAPER_REPORTED.get(t)
        notes = sorted({f"{name}: {c['results'][str(t)][name]['note']}" for c in results["clips"]
                        for name in cfg["methods"] if not c.get("error")
                        and c["results"].get(str(t), {}).get(name, {}).get("note")})
        if paper:
            lines.append(f"| *paper (theirs, VoxCeleb1)* | {paper['ssim']:.2f} | – | – | {paper['csim']:.2f}¹ | – "
                         f"| – | – | – | – | FID {paper['fid']} |")
        if notes:
            lines.append("")
            lines.append("Notes: " + "; ".join(notes))
        lines.append("")
    lines.append("¹ Zakharov et al. 2019, Table 1 (fine-tuned, VoxCeleb1), as reported in their paper — their "
                 "numbers, their data and their face-recognition network, not measured here. Their CSIM uses a "
                 "different embedding, so only its trend over T compares with ours, not its value.")
    lines.append("")
    lines.extend(_versus_lines(results.get("versus_baseline") or {}))
    if results.get("cross"):
        lines.append("## Cross-reenactment (portrait driven by another person's clip, relative motion)")
        lines.append("")
        lines.append("What a viewer sees, measured from outside (`talkanim/evaluate/viewer.py`), with the "
                     "landmarks the evaluation's tracker finds on the output frames against those it found on "
                     "the driver: CSIM of the output to the source portrait; mouth gain (the output's "
                     "mouth-opening range over the driver's, both relative to face size; 1 = as wide) and "
                     "Pearson r; blink recall (share of the driver's closed-eye frames where the output's eyes "
                     "are closed too, ±1 frame) and eye-opening r; hair distortion (RMS of the optical flow on "
                     "hair and head outline left after the head's similarity and a smooth quadratic field, % "
                     "of face width; a rigidly moved portrait scores ~0.05) and its worst frame; background "
                     "drift (median flow on the background, % of face width). Copy is static: its r is the "
                     "noise floor. 'target' columns: the same r on the retargeted landmarks themselves, i.e. "
                     "what motion transfer asked for before any rendering. 'dlib' columns: the mouth's gain "
                     "and r read by a second reader, dlib's HOG detector and 68-point predictor, on the driver "
                     "and on the output (a face mesh and dlib read painted mouths differently).")
        lines.append("")
        lines.append("| method | " + " | ".join(h for _, h, _ in CROSS_COLUMNS) + " | pairs |")
        lines.append("|---" * (len(CROSS_COLUMNS) + 2) + "|")
        for name, row in results.get("cross_summary", {}).items():
            if row.get("error"):
                lines.append(f"| {name} | failed: {row['error']} |" + " |" * len(CROSS_COLUMNS))
                continue
            if not row.get("available", False):
                lines.append(f"| {name} | not available |" + " |" * len(CROSS_COLUMNS))
                continue
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(k), f) for k, _, f in CROSS_COLUMNS)
                         + f" | {row.get('pairs', 0)} |")
        lines.append("")
    errors = [c for c in results["clips"] if c.get("error")] + [c for c in results.get("cross", []) if c.get("error")]
    if errors:
        lines.append("## Skipped")
        lines.append("")
        for c in errors:
            lines.append(f"- {Path(c.get('portrait', c.get('clip'))).name}: {c['error']}")
        lines.append("")
    lines.append("## Per clip")
    lines.append("")
    for c in results["clips"]:
        if c.get("cuts"):
            lines.append(f"- {Path(c['clip']).name}: camera cuts at frames {', '.join(map(str, c['cuts']))}; "
                         f"scored on its longest shot, frames {c['span'][0]}-{c['span'][1] - 1}")
    if any(c.get("cuts") for c in results["clips"]):
        lines.append("")
    lines.append("| clip | T | method | SSIM | L1 | CSIM | AKD |")
    lines.append("|---|---|---|---|---|---|---|")
    for c in results["clips"]:
        for t, per in (c.get("results") or {}).items():
            for name, row in per.items():
                if row.get("available") and not row.get("error"):
                    lines.append(f"| {Path(c['clip']).name} | {t} | {name} | {_fmt(row.get('ssim'), '{:.3f}')} | "
                                 f"{_fmt(row.get('l1'), '{:.4f}')} | {_fmt(row.get('csim'), '{:.3f}')} | "
                                 f"{_fmt(row.get('akd'), '{:.2f}')} |")
    lines.append("")
    lines.append("Files: `results.json` (per clip, per T, per method), `chart.png` (metric vs T), "
                 "`grid.png` (rows: driver frames; columns: source shot | real | each method).")
    return "\n".join(lines) + "\n"


VERSUS_COLUMNS = [("ssim", "Δ SSIM", "{:+.4f}"), ("l1", "Δ L1", "{:+.4f}"), ("csim", "Δ CSIM", "{:+.4f}"),
                  ("akd", "Δ AKD px", "{:+.2f}"), ("ssim_mouth", "Δ mouth SSIM", "{:+.4f}"),
                  ("l1_mouth", "Δ mouth L1", "{:+.4f}"), ("ssim_eyes", "Δ eyes SSIM", "{:+.4f}"),
                  ("l1_eyes", "Δ eyes L1", "{:+.4f}")]


def _versus_lines(versus: dict) -> list[str]:
    """The head-to-head section: each method minus the baseline, per T, with clips won."""
    if not versus or not any(versus["shots"].values()):
        return []
    base = versus["baseline"]
    lines = [f"## Against {base}", "",
             f"Each method minus {base} on the same clips, frames and shots: the mean over clips of the "
             "per-clip difference, and (in brackets) on how many clips the method was better. Positive "
             "Δ SSIM / Δ CSIM and negative Δ L1 / Δ AKD favour the method (the mouth and eye columns: the "
             "same measures inside those regions of the real frame's landmarks).", "",
             "| T | method | " + " | ".join(h for _, h, _ in VERSUS_COLUMNS) + " |",
             "|---|---" + "|---" * len(VERSUS_COLUMNS) + "|"]
    for t, per_method in versus["shots"].items():
        for name, row in per_method.items():
            cells = [f"{f.format(row[k]['delta'])} ({row[k]['better_clips']}/{row[k]['clips']})" if k in row else "–"
                     for k, _, f in VERSUS_COLUMNS]
            lines.append(f"| {t} | {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_chart(path: Path, results: dict) -> None:
    """chart.png: SSIM, L1, CSIM (and AKD) vs T, one line per available method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, summary = results["config"], results["summary"]
    shots = list(cfg["shots"])
    panels = [("ssim", "SSIM ↑"), ("l1", "L1 ↓"), ("csim", "CSIM ↑"), ("akd", "AKD px ↓")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), constrained_layout=True)
    for ax, (key, title) in zip(axes, panels):
        for name in cfg["methods"]:
            ys = [(summary.get(str(t), {}).get(name) or {}).get(key) for t in shots]
            if all(y is None for y in ys):
                continue
            ax.plot(shots, [np.nan if y is None else y for y in ys], marker="o", label=name)
        if key in ("ssim", "csim"):
            paper = [PAPER_REPORTED.get(t, {}).get(key) for t in shots]
            if key == "ssim" and any(p is not None for p in paper):
                ax.plot(shots, [np.nan if p is None else p for p in paper], "k--", marker="x",
                        label="paper (theirs)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(t) for t in shots])
        ax.set_xlabel("shots T")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _label(cell: np.ndarray, text: str) -> np.ndarray:
    cell = cell.copy()
    cv2.rectangle(cell, (0, 0), (cell.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(cell, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def grid_image(columns: dict[str, list[np.ndarray]], order: list[str], cell: int = 160,
               unavailable: dict[str, str] | None = None) -> np.ndarray:
    """Rows = frames, columns = `order` (e.g. source | real | methods); unavailable columns grey."""
    rows = max((len(v) for v in columns.values()), default=0)
    out_rows = []
    for r in range(rows):
        cells = []
        for name in order:
            crops = columns.get(name)
            if crops and r < len(crops):
                c = cv2.resize(crops[r], (cell, cell), interpolation=cv2.INTER_AREA)
            else:
                c = np.full((cell, cell, 3), 96, np.uint8)
                if r == 0 and unavailable and name in unavailable:
                    cv2.putText(c, "not available", (8, cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                                (255, 255, 255), 1, cv2.LINE_AA)
            if r == 0:
                c = _label(c, name)
            cells.append(c)
        out_rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(out_rows, axis=0) if out_rows else np.zeros((cell, cell, 3), np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, all-or-nothing."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(buf.tobytes())
