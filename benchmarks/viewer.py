"""What a viewer sees, on paintings and photos driven by other people's clips: the measures of
`talkanim.evaluate.viewer` (mouth gain, blinks followed, hair moving as one body, background
drift) for fixed portrait x driver pairs, with the targets of the believable-motion issue.

    python -m benchmarks.viewer                 # seven pairs, ~150 driver frames each
    python -m benchmarks.viewer --quick         # two pairs, 60 frames: a smoke run
    python -m benchmarks.viewer --sheet out.png # also a contact sheet of the first pair
    python -m benchmarks.viewer --json          # the rows as JSON

Every pair is rendered as `talkanim animate` renders it (warp only, mesh landmarks, the
portrait's person matte) and measured from outside. Needs the shared data folder
(TALKANIM_DATA, default ../shared/data); nobody here trained on these portraits or tuned on
these pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/viewer.py`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# (portrait, driver): paintings, a drawing and photos; drivers that tilt, nod, blink and talk.
PAIRS = (
    ("portraits/OpenTalker__SadTalker/art_14.png", "videos/KwaiVGI__LivePortrait/d6.mp4"),
    ("portraits/KwaiVGI__LivePortrait/s9.jpg", "videos/smeetrs__deep_avsr/00001.mp4"),
    ("portraits/KwaiVGI__LivePortrait/s10.jpg", "videos/OpenTalker__SadTalker/WDA_KatieHill_000.mp4"),
    ("portraits/OpenTalker__SadTalker/art_19.png", "videos/KwaiVGI__LivePortrait/d3.mp4"),
    ("portraits/KwaiVGI__LivePortrait/s12.jpg", "videos/OpenTalker__SadTalker/WDA_AlexandriaOcasioCortez_000.mp4"),
    ("portraits/OpenTalker__SadTalker/art_4.png", "videos/OpenTalker__video-retalking/face_3.mp4"),
    ("portraits/OpenTalker__SadTalker/people_0.png", "videos/KwaiVGI__LivePortrait/d14.mp4"),
)
# measure, header, format, target (text), test (value -> met)
COLUMNS = (
    ("mouth_gain", "mouth gain", "{:.2f}", "0.8-1.25", lambda v: 0.8 <= v <= 1.25),
    ("mouth_r", "mouth r", "{:.2f}", ">= 0.8", lambda v: v >= 0.8),
    ("blink_recall", "blink recall", "{:.2f}", ">= 0.8", lambda v: v >= 0.8),
    ("eye_r", "eye r", "{:.2f}", ">= 0.7", lambda v: v >= 0.7),
    ("hair_distortion", "hair distortion %", "{:.2f}", "<= 1.0", lambda v: v <= 1.0),
    ("hair_distortion_worst", "worst frame %", "{:.2f}", "<= 1.5", lambda v: v <= 1.5),
    ("background_drift", "background drift %", "{:.2f}", "<= 0.2", lambda v: v <= 0.2),
    ("csim_source", "CSIM to portrait", "{:.3f}", "(info)", None),
    # the retargeted landmarks' own gain: what the renderer is asked for, before rendering
    ("target_mouth_gain", "target mouth gain", "{:.2f}", "(info)", None),
    # the same gain read by dlib instead of the face mesh, each against its own reading of the driver
    ("mouth_gain_dlib", "mouth gain, dlib", "{:.2f}", "(info)", None),
)


def data_dir() -> Path | None:
    path = Path(os.environ.get("TALKANIM_DATA", ROOT.parent / "shared" / "data")).resolve()
    return path if (path / "MANIFEST.tsv").is_file() else None


def measure_pair(portrait: Path, driver: Path, frames: int, detector) -> dict:
    """Drive `portrait` by the first `frames` frames of `driver` and measure what a viewer sees."""
    from talkanim.evaluate.methods import WarpMethod
    from talkanim.evaluate.protocol import cross_reenact, load_clip
    from talkanim.io import probe_video

    info = probe_video(driver)
    indices = list(range(min(frames, info.num_frames)))
    clip = load_clip(driver, set(indices), detector, last=indices[-1])
    result = cross_reenact(portrait, clip, indices, {"warp": WarpMethod()}, detector)
    row = result.results["warp"]
    if row.get("error"):
        raise RuntimeError(row["error"])
    return row


def contact_sheet(portrait: Path, driver: Path, out: Path, frames: int) -> None:
    """`talkanim animate` on the pair, then every 25th frame tiled 3x2 (as the team's brief asks)."""
    import subprocess

    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "pair.mp4"
        subprocess.run([sys.executable, "-m", "talkanim", "animate", str(portrait), str(driver), "-o", str(video),
                        "-q", "--model", "none"], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-vf",
                        "select='not(mod(n,25))',scale=-2:320,tile=3x2", "-frames:v", "1", str(out)], check=True)


def markdown(rows: list[dict]) -> str:
    head = "| pair | " + " | ".join(h for _, h, _, _, _ in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "–" for key, _, fmt, _, _ in COLUMNS]
        lines.append(f"| {row['pair']} | " + " | ".join(cells) + " |")
    means = {key: [r[key] for r in rows if r.get(key) is not None] for key, *_ in COLUMNS}
    mean_cells = []
    for key, _, fmt, _, test in COLUMNS:
        values = means[key]
        # the worst frame is judged over all pairs; the rest on the mean over pairs
        value = (max(values) if key == "hair_distortion_worst" else float(np.mean(values))) if values else None
        mark = "" if value is None or test is None else (" ✔" if test(value) else " ✘")
        mean_cells.append(fmt.format(value) + mark if value is not None else "–")
    lines.append("| **all pairs** (worst frame: max) | " + " | ".join(mean_cells) + " |")
    lines.append("| target | " + " | ".join(t for _, _, _, t, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.viewer", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two pairs, 60 frames each")
    parser.add_argument("--frames", type=int, default=None, help="driver frames per pair (default 150, quick 60)")
    parser.add_argument("--sheet", type=Path, default=None, help="write a contact sheet of the first pair here")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    data = data_dir()
    if data is None:
        print("shared data not found (set TALKANIM_DATA): nothing to measure", file=sys.stderr)
        return 0
    from talkanim.landmarks import make_detector

    pairs = PAIRS[:2] if args.quick else PAIRS
    frames = args.frames or (60 if args.quick else 150)
    detector = make_detector("auto")
    rows = []
    for portrait, driver in pairs:
        started = time.perf_counter()
        name = f"{Path(portrait).stem} × {Path(driver).stem}"
        try:
            row = measure_pair(data / portrait, data / driver, frames, detector)
        except Exception as err:  # one pair's failure is reported, the others still run
            row = {"error": f"{type(err).__name__}: {err}"}
        row.update(pair=name, seconds=round(time.perf_counter() - started, 1))
        rows.append(row)
        print(f"{name}: " + (row["error"] if "error" in row else ", ".join(
            f"{key} {row[key]:.2f}" for key, *_ in COLUMNS if row.get(key) is not None)), file=sys.stderr, flush=True)
    if args.sheet:
        contact_sheet(data / pairs[0][0], data / pairs[0][1], args.sheet, frames)
    print(json.dumps(rows, indent=1) if args.json else markdown([r for r in rows if "error" not in r]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
